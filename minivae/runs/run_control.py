"""What keeps a training run safe: checkpoints, stop requests, divergence, and resumes.

* :class:`RunControl`: the bookkeeping of one run of :func:`minivae.train`, so that
  the loop itself reads as Algorithm 1: the minibatches of each epoch (one shuffle per
  epoch from the run's Generator), the position and Generator state before every step,
  the checkpoint after every epoch and on a stop, the error on a divergence, and the
  state of a resumed run;
* :class:`StopRequest`: while training, Ctrl-C and SIGTERM ask the loop to stop
  between two steps (after saving a checkpoint) instead of killing it;
* :class:`TrainingDiverged`: the error raised when a loss or gradient is not
  finite, naming the step, the last finite loss and the likely causes;
* :func:`check_checkpoint_path`, :func:`check_resume`: a checkpoint can be
  written, and a resumed run continues *this* run exactly.

minivae.training uses all of them; docs/reliability.md lists the tests.
"""
import hashlib
import math
import os
import signal
import threading

import numpy as np

from minivae.runs import checkpoint


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
    changed = [k for k, v in settings.items()
               if k not in ("epochs", "data") and k in saved and saved[k] != v]
    # lr_final is recorded only when the rate decays, so a missing one is a constant rate
    if saved.get("lr_final") != settings.get("lr_final") and "lr_final" not in changed:
        changed.append("lr_final")
    if "lr_final" not in changed and saved.get("lr_final") is not None and \
            saved.get("epochs") != settings["epochs"]:
        raise ValueError(f"resume: the checkpoint's learning rate decays to lr_final="
                         f"{saved['lr_final']!r} over its {saved.get('epochs')!r} epochs, so epochs "
                         f"cannot change (got {settings['epochs']!r}): a longer run would have had "
                         "other learning rates in the epochs already trained")
    if changed:
        raise ValueError(
            "resume: the checkpoint was written by a run with "
            + ", ".join(f"{k}={saved.get(k)!r}" for k in changed) + "; this call has "
            + ", ".join(f"{k}={settings.get(k)!r}" for k in changed)
            + ". An exact continuation needs the same settings: pass those, or train "
              "resume['model'] as a new run (without resume=)")
    if "n_train" in state and state["n_train"] != N:
        raise ValueError(f"resume: the checkpoint was written while training on "
                         f"{state['n_train']} examples; x_train has {N}")
    if "data" in saved and "data" in settings and saved["data"] != settings["data"]:
        raise ValueError("resume: the checkpoint was written while training on other data "
                         f"(fingerprint {saved['data']}); x_train's is {settings['data']}. "
                         "A run continues on the data it started with")
    saved_model = resume["model"]
    if saved_model is not model and (
            saved_model.config() != model.config()
            or any(not np.array_equal(saved_model.params[k], model.params[k]) for k in model.params)):
        raise ValueError("resume: the model given is not the checkpoint's (different "
                         "architecture or parameters); pass model=resume['model']")
    if opt is not None:
        saved_opt = resume.get("optimizer_state") or {}
        # a decaying rate (lr_final) is the schedule's at the checkpoint's epoch (checked on load)
        scheduled = ("lr",) if settings.get("lr_final") is not None else ()
        differ = [s for s in opt.settings
                  if s in saved_opt and s not in scheduled and saved_opt[s].item() != getattr(opt, s)]
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


def data_fingerprint(x):
    """A short hash of the training data's values, shape and dtype: a resume onto other data is refused."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(repr((x.shape, x.dtype.str)).encode())
    digest.update(np.ascontiguousarray(x).data)
    return digest.hexdigest()


class RunControl:
    """The safety of one run of :func:`minivae.train`: position, checkpoints, stops, divergence.

    The loop asks it for each epoch's minibatches (:meth:`minibatches`: one shuffle
    per epoch, drawn from the run's Generator ``rng``), tells it each step's loss
    (:meth:`step_done`) and each finished epoch (:meth:`end_epoch`).  It keeps what a
    checkpoint needs to continue exactly: the next step (epoch, batch), the shuffle
    order, the Generator state *before* the step's draws, the running loss total and
    the history.  ``resume`` (a loaded checkpoint, already checked by
    :func:`check_resume`) restores all of it and the optimiser's state.  Used as a
    context manager, it turns Ctrl-C and SIGTERM into :attr:`stop_requested`.
    """

    def __init__(self, model, opt, rng, *, n_train, batch_size, settings, checkpoint_path=None,
                 resume=None):
        self.model, self.opt, self.rng, self.settings = model, opt, rng, settings
        self.N, self.batch_size = n_train, batch_size
        self.n_batches = math.ceil(n_train / batch_size)
        self.path = None if checkpoint_path is None else os.fspath(checkpoint_path)
        self.resumed = resume is not None
        self.history = {"epoch": [], "beta": [], "train_elbo": [], "test_elbo": [], "seconds": [],
                        "examples_per_second": []}
        self.epoch, self.batch, self.order, self.total, self.last_loss = 0, 0, None, 0.0, None
        self.rng_state, self.examples = None, 0     # examples seen by this call of train
        if resume is not None:
            opt.load_state_dict(resume["optimizer_state"])
            state = resume["train_state"]
            self.history = state["history"]
            rng.bit_generator.state = state["rng"]
            self.epoch, self.batch, self.total = state["epoch"], state["batch"], state["total"]
            self.last_loss = state.get("last_loss")
            self.order = resume["train_arrays"].get("order")
        self.history["interrupted"] = False
        # the file at checkpoint_path holds this run's state once this run (or the one it
        # resumes) wrote it; before that, a file there is another run's and is never named
        self.saved = self.resumed and os.path.exists(checkpoint_path or "")
        self._signals = StopRequest()

    def __enter__(self):
        self._signals.__enter__()
        return self

    def __exit__(self, *exc):
        return self._signals.__exit__(*exc)

    @property
    def stop_requested(self):
        """The name of the signal that asked the run to stop (SIGINT, SIGTERM), or None."""
        return self._signals.requested

    def minibatches(self, x, epoch):
        """Yield epoch ``epoch``'s minibatches of ``x``: rows order[b B:(b + 1) B] of one shuffle.

        The last one is shorter when B does not divide N.  After the last step the
        parameters are checked to be finite, before the epoch is recorded or saved.
        """
        self.epoch = epoch
        if self.batch == 0:
            self.rng_state = self.rng.bit_generator.state   # a resume at batch 0 reshuffles from here
            self.order, self.total = self.rng.permutation(self.N), 0.0
        for batch in range(self.batch, self.n_batches):
            self.batch = batch
            if batch > 0:
                self.rng_state = self.rng.bit_generator.state   # before this step's draws
            yield x[self.order[batch * self.batch_size:(batch + 1) * self.batch_size]]
        if not all_finite(self.model.params):
            raise self.diverged("the update made parameters non-finite", self.last_loss, intact=False)

    def step_done(self, loss, n):
        """Record a step's loss on ``n`` examples; return (examples done this epoch, mean loss)."""
        self.last_loss = loss
        self.total += loss * n
        self.examples += n
        done = min((self.batch + 1) * self.batch_size, self.N)
        return done, self.total / done

    def end_epoch(self, beta, test_elbo, seconds):
        """Record the finished epoch in the history and save the position "next: epoch + 1, step 0"."""
        for key, value in (("epoch", self.epoch + 1), ("beta", beta), ("train_elbo", -self.total / self.N),
                           ("test_elbo", test_elbo), ("seconds", seconds),
                           ("examples_per_second", self.N / seconds)):
            self.history[key].append(value)
        self.epoch, self.batch = self.epoch + 1, 0
        self.save()

    def stop(self, by):
        """Stop between two steps (``by``: a signal's name, or "on_step"): save the position after this step."""
        if not all_finite(self.model.params):
            raise self.diverged("the update made parameters non-finite", self.last_loss, intact=False)
        self.batch += 1
        self.rng_state = None
        self.save()
        self.history["interrupted"] = by != "on_step"
        return self.history

    def save(self, rng_state=None):
        """Write the checkpoint (if the run has a path): the position and the Generator state for it."""
        if self.path is None:
            return
        state = {"epoch": self.epoch, "batch": self.batch, "total": self.total,
                 "rng": self.rng.bit_generator.state if rng_state is None else rng_state,
                 "history": self.history, "settings": self.settings, "n_train": self.N,
                 "last_loss": self.last_loss}
        arrays = {} if self.order is None or self.batch == 0 else {"order": self.order}
        checkpoint.save(self.path, self.model, self.opt.state_dict(), state, arrays)
        self.saved = True

    def diverged(self, what, loss, intact=None):
        """Save the last good state if the model still holds it; return the error to raise.

        The failing step is never applied, so the model normally still holds the state
        before it, saved as "about to take this step" with the Generator as it was before
        the step's draws: resuming from it repeats the step exactly.  Only an update that
        overflowed the parameters themselves leaves the model unusable; then the file on
        disk is not overwritten: it holds the last state that was saved.
        """
        intact = all_finite(self.model.params) if intact is None else intact
        if intact:
            self.save(self.rng_state)
        return TrainingDiverged.at(
            what, epoch=self.epoch, batch=self.batch, n_batches=self.n_batches, loss=loss,
            last_loss=self.last_loss, intact=intact, saved=self.path if self.saved else None,
            first_step=self.last_loss is None and not self.resumed, resumed=self.resumed,
            lr=self.opt.lr, optimizer=self.opt.name)
