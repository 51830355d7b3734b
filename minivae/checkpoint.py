"""Checkpoints: a model, its optimiser state and the training position in one ``.npz`` file.

The file is a plain NumPy archive read with ``allow_pickle=False``, so
loading one can never run code.  Its entries:

    format_version         int, FORMAT_VERSION
    config                 JSON text: the VAE constructor arguments (VAE.config())
    param/<name>           every array of model.params
    optim/<key>            the optimiser's state_dict(), if given
    train_state            JSON text: where training stands (epoch, batch, history, ...)
    train/<key>            arrays of the training position (e.g. the epoch's shuffle order)

Writing is atomic: the archive goes to a temporary file in the same folder
and is then renamed over the target (``os.replace``), so a crash or Ctrl-C
during a save leaves the previous checkpoint intact, never half a file.
"""
import json
import os
import tempfile
import zipfile

import numpy as np

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A file that is not a readable minivae checkpoint (truncated, corrupted, wrong version)."""


def save(path, model, optimizer_state=None, train_state=None, train_arrays=None):
    """Write ``model`` (and optionally optimiser and training state) to ``path`` atomically."""
    arrays = {"format_version": np.array(FORMAT_VERSION),
              "config": np.array(json.dumps(model.config()))}
    arrays.update({f"param/{name}": value for name, value in model.params.items()})
    for key, value in (optimizer_state or {}).items():
        arrays[f"optim/{key}"] = np.asarray(value)
    if train_state is not None:
        arrays["train_state"] = np.array(json.dumps(train_state))
    for key, value in (train_arrays or {}).items():
        arrays[f"train/{key}"] = np.asarray(value)

    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load(path):
    """Read a checkpoint; return a dict with keys model, optimizer_state, train_state, train_arrays.

    optimizer_state and train_arrays are dicts of arrays (empty if not saved);
    train_state is a dict or None.  Raises FileNotFoundError for a missing
    file and CheckpointError (a ValueError) for anything unreadable.
    """
    from minivae.vae import VAE

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            entries = {key: archive[key] for key in archive.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as error:
        raise CheckpointError(f"{path} is not a readable minivae checkpoint "
                              f"(truncated or corrupted?): {error}") from None

    if "format_version" not in entries or "config" not in entries:
        raise CheckpointError(f"{path} is an .npz file but not a minivae checkpoint "
                              "(no format_version/config entries)")
    version = int(entries["format_version"])
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format version {version}; this minivae "
                              f"reads version {FORMAT_VERSION}")
    try:
        config = json.loads(str(entries["config"]))
        model = VAE(**config)
    except (ValueError, TypeError) as error:
        raise CheckpointError(f"{path} holds an invalid model config: {error}") from None

    params = {key[len("param/"):]: value for key, value in entries.items() if key.startswith("param/")}
    if sorted(params) != sorted(model.params):
        raise CheckpointError(f"{path}: parameters {sorted(params)} do not match the architecture "
                              f"in its config, which has {sorted(model.params)}")
    for name, value in params.items():
        if value.shape != model.params[name].shape or value.dtype != model.dtype:
            raise CheckpointError(f"{path}: parameter {name} has shape {value.shape} and dtype "
                                  f"{value.dtype}; the config needs {model.params[name].shape}, "
                                  f"{model.dtype}")
        model.params[name][...] = value      # in place: the model keeps its own arrays

    train_state = json.loads(str(entries["train_state"])) if "train_state" in entries else None
    return {
        "model": model,
        "optimizer_state": {k[len("optim/"):]: v for k, v in entries.items() if k.startswith("optim/")},
        "train_state": train_state,
        "train_arrays": {k[len("train/"):]: v for k, v in entries.items() if k.startswith("train/")},
    }
