"""The checks behind :func:`minivae.runs.checkpoint.load`: every entry, against the model it describes.

A checkpoint is read by a program that trusts nothing in it.  After the
parameters (checked in minivae.runs.checkpoint), every other entry must be what
``minivae.train`` itself could have written for *that* model:

* the optimiser state: the entries of its optimiser, every buffer of its
  parameter's shape and dtype, finite, Adam's v and Adagrad's h >= 0, every
  setting by its constructor's rule (minivae.optim.check_state_dict), and the
  learning rate and name the training settings say;
* the training state: the settings by train's own rules, the position
  (epoch, batch) inside the run, the optimiser's step count equal to the
  steps before that position, a history of one well-formed row per finished
  epoch, a Generator state NumPy can load, and mid-epoch a shuffle order that
  is a permutation of the training indices.

Before an entry is read, its uncompressed size (from the zip's directory) is
compared with the most the model allows (:func:`entry_limits`), so a small
file that would inflate to gigabytes is refused without inflating it.
"""
import inspect
import math

import numpy as np

from minivae import optim
from minivae.utils.validation import check_choice, check_count, check_number
from minivae.vae import ESTIMATORS


class CheckpointError(ValueError):
    """A file that is not a readable minivae checkpoint (truncated, corrupted, wrong version)."""


HEADER_BYTES = 1 << 16             # room for the .npy header of an entry (NumPy caps it at 10 kB)
TEXT_BYTES = {"format_version": HEADER_BYTES, "config": 1 << 20, "optim/name": HEADER_BYTES,
              "train_state": 64 << 20}   # JSON text, 4 bytes a character: ~100,000 epochs of history

SETTINGS = {"epochs": 1, "batch_size": 1, "n_samples": 1, "warmup_epochs": 0, "seed": 0}  # counts
HISTORY = ("epoch", "beta", "train_elbo", "test_elbo", "seconds", "examples_per_second")
TRAIN_STATE = ("epoch", "batch", "total", "rng", "history", "settings", "n_train")
OPTIONAL_TRAIN_STATE = ("last_loss",)


def entry_limits(model, optimizer_name, n_train):
    """The largest uncompressed size (bytes) of each array entry a checkpoint of ``model`` may hold."""
    limits = {f"param/{k}": p.nbytes + HEADER_BYTES for k, p in model.params.items()}
    if optimizer_name is not None:
        for key in optim.state_keys(optimizer_name, model.params):
            _, _, param = key.partition(".")               # "m.encoder.0.W" -> "encoder.0.W"
            limits[f"optim/{key}"] = HEADER_BYTES + (model.params[param].nbytes if param else 0)
    if n_train is not None:
        limits["train/order"] = HEADER_BYTES + 8 * n_train
    return limits


def _keys(what, given, required, optional=()):
    missing = [k for k in required if k not in given]
    unknown = sorted(k for k in given if k not in required and k not in optional)
    if missing or unknown:
        raise ValueError(f"{what} should have the keys {list(required)}; missing {missing}, "
                         f"unknown {unknown}")


def _numbers(name, values, length, low=None, high=None, optional=False):
    """A list of ``length`` finite numbers in [low, high] (None allowed if ``optional``)."""
    if not isinstance(values, list) or len(values) != length:
        raise ValueError(f"{name} should be a list of {length} numbers (one per finished epoch), "
                         f"got {type(values).__name__} of length {len(values) if isinstance(values, list) else '-'}")
    for i, value in enumerate(values):
        if not (optional and value is None):
            check_number(value, f"{name}[{i}]", low=low, high=high)


def check_train_state(state, model):
    """Raise TypeError/ValueError naming the field unless ``state`` is a position train() could write.

    Returns the number of optimiser steps before that position.
    """
    if not isinstance(state, dict):
        raise TypeError(f"train_state should be a JSON object, got {type(state).__name__}")
    _keys("train_state", state, TRAIN_STATE, OPTIONAL_TRAIN_STATE)
    settings = state["settings"]
    if not isinstance(settings, dict):
        raise TypeError(f"train_state['settings'] should be an object, got {type(settings).__name__}")
    _keys("train_state['settings']", settings, (*SETTINGS, "optimizer", "lr", "estimator", "binarize_data"),
          ("weight_decay", "data", "lr_final"))   # optional: older checkpoints; constant rates
    if not isinstance(settings.get("data", ""), str) or len(settings.get("data", "")) > 64:
        raise TypeError(f"settings['data'] should be the training data's fingerprint (a short "
                        f"string), got {settings['data']!r}"[:300])
    if "lr_final" in settings:
        check_number(settings["lr_final"], "settings['lr_final']", low=0, low_inclusive=False)
    if "weight_decay" in settings:
        check_number(settings["weight_decay"], "settings['weight_decay']", low=0)
    for name, low in SETTINGS.items():
        check_count(settings[name], f"settings[{name!r}]", low)
    check_choice(settings["optimizer"], "settings['optimizer']", optim.OPTIMIZERS)
    optim.SETTING_RULES["lr"](settings["lr"])
    check_choice(settings["estimator"], "settings['estimator']", ESTIMATORS)
    if not isinstance(settings["binarize_data"], bool):
        raise TypeError(f"settings['binarize_data'] should be true or false, got "
                        f"{settings['binarize_data']!r}")
    if settings["binarize_data"] and model.likelihood != "bernoulli":
        raise ValueError("settings['binarize_data'] is true, but only a Bernoulli model is "
                         f"trained on binarised data; this one is {model.likelihood}")

    n_train = check_count(state["n_train"], "train_state['n_train']", low=settings["batch_size"])
    n_batches = math.ceil(n_train / settings["batch_size"])
    epochs = settings["epochs"]
    epoch = check_count(state["epoch"], "train_state['epoch']", low=0)
    batch = check_count(state["batch"], "train_state['batch']", low=0)
    if epoch > epochs or batch > n_batches or (epoch == epochs and batch > 0):
        raise ValueError(f"train_state: position epoch {epoch}, batch {batch} is outside a run of "
                         f"{epochs} epochs of {n_batches} batches")
    check_number(state["total"], "train_state['total']")
    if state.get("last_loss") is not None:
        check_number(state["last_loss"], "train_state['last_loss']")
    _check_rng_state(state["rng"])

    history = state["history"]
    if not isinstance(history, dict):
        raise TypeError(f"train_state['history'] should be an object, got {type(history).__name__}")
    _keys("train_state['history']", history, HISTORY, ("interrupted",))
    if not isinstance(history.get("interrupted", False), bool):
        raise TypeError("history['interrupted'] should be true or false")
    if history["epoch"] != list(range(1, epoch + 1)):
        raise ValueError(f"history['epoch'] should be [1, ..., {epoch}] (the finished epochs), "
                         f"got {history['epoch']!r}"[:300])
    _numbers("history['beta']", history["beta"], epoch, low=0, high=1)
    _numbers("history['train_elbo']", history["train_elbo"], epoch)
    _numbers("history['test_elbo']", history["test_elbo"], epoch, optional=True)
    _numbers("history['seconds']", history["seconds"], epoch, low=0)
    _numbers("history['examples_per_second']", history["examples_per_second"], epoch, low=0)
    return epoch * n_batches + batch


def _check_rng_state(rng_state):
    """A state of NumPy's default bit generator (PCG64) that it accepts."""
    if not isinstance(rng_state, dict) or rng_state.get("bit_generator") != "PCG64":
        raise ValueError("train_state['rng'] should be the state of a PCG64 Generator "
                         "(np.random.default_rng().bit_generator.state)")
    try:
        np.random.PCG64().state = rng_state
    except Exception as error:    # NumPy's own checks: TypeError, ValueError, OverflowError, ...
        raise ValueError(f"train_state['rng'] is not a loadable PCG64 state: {error}") from None


def check_train_arrays(arrays, state):
    """Mid-epoch, ``arrays`` must hold the epoch's shuffle order: a permutation of 0..n_train-1."""
    if state["batch"] == 0:
        if arrays:
            raise ValueError(f"entries {sorted('train/' + k for k in arrays)} are unexpected: at "
                             "the start of an epoch train() saves no shuffle order")
        return
    if set(arrays) - {"order"}:
        raise ValueError(f"entries {sorted('train/' + k for k in set(arrays) - {'order'})} are "
                         "unexpected: train() saves only train/order")
    if "order" not in arrays:
        raise ValueError("train/order is missing: a checkpoint saved mid-epoch holds the epoch's "
                         "shuffle order")
    order = arrays["order"]
    if order.dtype.kind not in "iu":
        raise TypeError(f"train/order should hold integer indices, got dtype {order.dtype}")
    n = state["n_train"]
    if order.shape != (n,) or not np.array_equal(np.sort(order), np.arange(n)):
        raise ValueError(f"train/order should be a permutation of the {n} training indices "
                         f"0..{n - 1}, got an array of shape {order.shape}")


def check_optimizer_against(optimizer_state, state, steps):
    """The optimiser state must be the one of the training settings, ``steps`` steps in."""
    settings = state["settings"]
    name, lr = optimizer_state["name"].item(), optimizer_state["lr"].item()
    if settings.get("lr_final") is not None:      # a decaying rate: somewhere between the two
        low, high = sorted((settings["lr"], settings["lr_final"]))
        if name != settings["optimizer"] or not low <= lr <= high:
            raise ValueError(f"optim/name and optim/lr are {name!r} and {lr!r}, but the training "
                             f"settings say {settings['optimizer']!r} and a rate from {settings['lr']!r} "
                             f"to {settings['lr_final']!r}")
    elif name != settings["optimizer"] or lr != settings["lr"]:
        raise ValueError(f"optim/name and optim/lr are {name!r} and {lr!r}, but the training "
                         f"settings say {settings['optimizer']!r} and {settings['lr']!r}")
    # train() builds its optimiser with the constructor's defaults for all but lr
    defaults = inspect.signature(optim.OPTIMIZERS[name].__init__).parameters
    changed = [s for s in optim.OPTIMIZERS[name].settings
               if s != "lr" and optimizer_state[s].item() != defaults[s].default]
    if changed:
        raise ValueError("train() uses the defaults " + ", ".join(
            f"{s}={defaults[s].default!r}" for s in changed) + f" for {name}; this state has "
            + ", ".join(f"{s}={optimizer_state[s].item()!r}" for s in changed))
    if optimizer_state["t"].item() != steps:
        raise ValueError(f"optim/t is {optimizer_state['t'].item()}, but the position (epoch "
                         f"{state['epoch']}, batch {state['batch']}) comes after {steps} steps")
