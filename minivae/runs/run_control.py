"""What keeps a training run safe: stop requests, divergence, and the checks before a resume.

* :class:`StopRequest`: while training, Ctrl-C and SIGTERM ask the loop to stop
  between two steps (after saving a checkpoint) instead of killing it;
* :class:`TrainingDiverged`: the error raised when a loss or gradient is not
  finite, naming the step, the last finite loss and the likely causes;
* :func:`check_checkpoint_path`, :func:`check_resume`: a checkpoint can be
  written, and a resumed run continues *this* run exactly.

minivae.training uses all of them; docs/reliability.md lists the tests.
"""
import os
import signal
import threading

import numpy as np


def all_finite(arrays):
    """True if every array of the dict holds only finite numbers."""
    return all(np.isfinite(a).all() for a in arrays.values())


class TrainingDiverged(RuntimeError):
    """The loss or its gradient became NaN or inf; the message names the step and likely causes.

    Attributes: ``epoch`` and ``step`` (both counted from 1), ``loss`` (the
    non-finite value), ``last_loss`` (the last finite one, None if the first
    step failed) and ``checkpoint_path`` (the file holding the last good
    state, None if there is none).
    """

    def __init__(self, message, *, epoch, step, loss, last_loss, checkpoint_path):
        super().__init__(message)
        self.epoch, self.step, self.loss = epoch, step, loss
        self.last_loss, self.checkpoint_path = last_loss, checkpoint_path

    @classmethod
    def at(cls, what, *, epoch, batch, n_batches, loss, last_loss, intact, saved, first_step, lr,
           optimizer, resumed=False):
        """The error for step ``batch`` of ``epoch`` (both from 0), with what went wrong and why.

        ``intact``: the model still holds the last good parameters; ``saved``: the
        checkpoint file this run wrote holding the last good state (or None);
        ``first_step``: no update came before, so the learning rate cannot have
        caused it; ``resumed``: the run continues a checkpoint.
        """
        if intact:
            state = ("The parameters were not updated with it"
                     + (f"; {saved} holds this last good state" if saved else ""))
        else:
            state = ("An update had overflowed some parameters to inf or NaN, so the model in "
                     "memory is unusable; " + (f"{saved} was not overwritten and holds the last "
                                               "state saved" if saved else "no checkpoint was saved"))
        if first_step:
            causes = ("It is the first step of this run, so no update caused it: the likely cause "
                      "is data far from unit scale, which overflows exp(logvar) (for a Gaussian "
                      "likelihood standardise it, (x - x.mean(0)) / x.std(0); pixels 0-255 are "
                      "far too large)")
        else:
            causes = (f"Likely causes: the learning rate ({lr}) is too large for {optimizer!r} "
                      "(try a 10 times smaller one), or data far from what the likelihood "
                      "expects (unnormalised values; pixels that are constant drive a learned "
                      "Gaussian variance to 0)")
        step = epoch * n_batches + batch + 1                   # counted from 1
        if last_loss is not None:
            last = f"last finite loss: {last_loss}"
        else:                          # a resumed run from a checkpoint that did not record it
            last = ("no finite loss since the resume" if resumed else "no step had a finite loss")
        return cls(f"{what} at step {step} (epoch {epoch + 1}, batch {batch + 1} of {n_batches}); "
                   f"{last}. {state}. {causes}.",
                   epoch=epoch + 1, step=step, loss=loss, last_loss=last_loss,
                   checkpoint_path=saved)


def check_checkpoint_path(path):
    """Fail before training, not after the first epoch, if ``path`` cannot be written."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"checkpoint_path must be a file path, got the directory {path!r} "
                         f"(did you mean {os.path.join(path, 'model.npz')!r}?)")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    if not os.access(folder, os.W_OK):
        raise PermissionError(f"checkpoint_path: cannot write into the folder {folder!r}")
    return path


def check_resume(resume, model, N, settings, opt=None):
    """Raise a ValueError unless ``resume`` can continue *this* run exactly.

    ``opt`` is the optimiser this run built: the checkpoint's optimiser settings
    (betas, eps, momentum) must be its own, or the resumed run would use others
    than it reports.
    """
    if not isinstance(resume, dict) or "train_state" not in resume or "model" not in resume:
        raise TypeError("resume must be the dict returned by minivae.runs.checkpoint.load(path), "
                        f"got {type(resume).__name__}")
    state = resume["train_state"]
    if state is None:
        raise ValueError("resume: this checkpoint holds a model but no training state (it was "
                         "written by VAE.save, not by train); to train that model further, pass "
                         "resume['model'] as the model and leave out resume=")
    missing = [k for k in ("epoch", "batch", "total", "rng", "history") if k not in state]
    if missing:
        raise ValueError(f"resume: the checkpoint's training state lacks {missing}; "
                         "it was not written by minivae.train")
    saved = state.get("settings", {})
    # epochs may change (to train longer); anything else would silently change the run
    changed = [k for k, v in settings.items() if k != "epochs" and k in saved and saved[k] != v]
    if changed:
        raise ValueError(
            "resume: the checkpoint was written by a run with "
            + ", ".join(f"{k}={saved[k]!r}" for k in changed) + "; this call has "
            + ", ".join(f"{k}={settings[k]!r}" for k in changed)
            + ". An exact continuation needs the same settings: pass those, or train "
              "resume['model'] as a new run (without resume=)")
    if "n_train" in state and state["n_train"] != N:
        raise ValueError(f"resume: the checkpoint was written while training on "
                         f"{state['n_train']} examples; x_train has {N}")
    saved_model = resume["model"]
    if saved_model is not model and (
            saved_model.config() != model.config()
            or any(not np.array_equal(saved_model.params[k], model.params[k]) for k in model.params)):
        raise ValueError("resume: the model given is not the checkpoint's (different "
                         "architecture or parameters); pass model=resume['model']")
    if opt is not None:
        saved_opt = resume.get("optimizer_state") or {}
        differ = [s for s in opt.settings if s in saved_opt and saved_opt[s].item() != getattr(opt, s)]
        if differ:
            raise ValueError("resume: the checkpoint's optimizer has "
                             + ", ".join(f"{s}={saved_opt[s].item()!r}" for s in differ)
                             + f"; this run's {opt.name} has "
                             + ", ".join(f"{s}={getattr(opt, s)!r}" for s in differ))
    order = resume["train_arrays"].get("order")
    if state["batch"] > 0 and (order is None or len(order) != N):
        raise ValueError(f"resume: the checkpoint stopped mid-epoch but holds no shuffle order "
                         f"for {N} examples; it was not written by this run")


class StopRequest:
    """While active, SIGINT (Ctrl-C) and SIGTERM set ``requested`` instead of killing the run.

    The loop checks it between steps and saves a checkpoint, so an interrupted
    run can be resumed exactly.  A second Ctrl-C stops at once.  Outside the
    main thread (where Python cannot install handlers) it does nothing.
    """

    def __init__(self):
        self.requested = None
        self.previous = {}

    def _handler(self, signum, frame):
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self.previous[signum] = signal.signal(signum, self._handler)
        return self

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        return False
