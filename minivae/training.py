"""Training: maximise the ELBO by minibatch stochastic gradient ascent (Kingma & Welling 2013, Alg. 1).

::

    for each epoch:
        shuffle the training set (seeded Generator)
        for each minibatch x of B examples:                 # train_step:
            binarise x (dynamic binarisation: fresh Bernoulli draws each time)
            loss, grads = model.loss_and_grads(x, ...)      # loss = -ELBO estimate
            optimizer.step(grads)                           # descent on -ELBO = ascent on ELBO
        validation ELBO on the test set; record history; save a checkpoint

(The paper's minibatch size M is B here, as everywhere in minivae.)

Everything random comes from one Generator seeded by ``seed``, and its state
is saved in every checkpoint, so a run interrupted and resumed ends with
exactly the parameters of an uninterrupted run.

What can go wrong, and what happens (docs/reliability.md lists the tests):

* a bad argument or data set: a TypeError/ValueError before anything is
  trained or written, saying what was expected and what was given;
* Ctrl-C or SIGTERM: the current step finishes, a checkpoint is saved and
  train returns with ``history["interrupted"]`` True;
* a NaN or inf loss or gradient: that step is not applied, the last good
  state is saved, and :class:`TrainingDiverged` names the step, the last
  finite loss and the likely causes.
"""
import math
import os
import sys
import time

import numpy as np

from minivae import optim
from minivae.runs import checkpoint
from minivae.utils.validation import check_choice, check_count, check_number
from minivae.data.preprocessing import bernoulli_binarize, fixed_binarization
from minivae.evaluate import evaluate_elbo
from minivae.utils.progress import Progress
from minivae.runs.run_control import (StopRequest, TrainingDiverged, all_finite, check_checkpoint_path,
                                 check_resume)
from minivae.vae import ESTIMATORS, VAE


def beta_schedule(epoch, warmup_epochs):
    """KL warm-up: beta rises linearly from 1/warmup to 1 over the first ``warmup_epochs`` epochs.

    epoch counts from 0; warmup_epochs = 0 means beta = 1 throughout (the ELBO).
    """
    if warmup_epochs <= 0:
        return 1.0
    return min(1.0, (epoch + 1) / warmup_epochs)


class StepRejected(Exception):
    """A training step whose loss or gradient was not finite; it was not applied.

    ``what`` says which (for the divergence message), ``loss`` is the loss of the step.
    """

    def __init__(self, what, loss):
        super().__init__(what)
        self.what, self.loss = what, loss


def train_step(model, opt, xb, rng, *, n_samples=1, estimator="B", beta=1.0, binarize=True,
               phase_seconds=None, weight_decay=0.0):
    """One step of Algorithm 1 on the minibatch xb (B, P): binarise, loss and gradients, update.

    The minibatch is one already validated as part of the whole training set,
    so neither the binarisation nor ``loss_and_grads`` scans its values again.
    Returns the loss (-ELBO estimate, nats per example).  Raises
    :class:`StepRejected` (and changes nothing) when the loss or a gradient is
    not finite.  ``phase_seconds``, an array of 3, gets the seconds of the
    three parts (data, loss_and_grads, optimiser) added to it (minivae bench).
    ``weight_decay`` = c adds c * param to every gradient: the N(0, I/lambda) prior on
    the parameters with c = lambda / N (see :func:`train`); the returned loss stays -ELBO.
    """
    t0 = time.perf_counter()
    if binarize:
        # float32 0/1, exact in any dtype; fresh Bernoulli draws every step
        xb = bernoulli_binarize(xb, rng, check=False)
    t1 = time.perf_counter()
    # NumPy's overflow warnings would only repeat, without the step, what the finiteness
    # checks report (here for the loss and gradients, in train for the updated parameters)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        loss, grads = model.loss_and_grads(xb, n_samples=n_samples, estimator=estimator, beta=beta, rng=rng,
                                           check=False)
        if weight_decay:
            # -(1/N) log p(theta) per example, p(theta) = N(0, I/lambda): its gradient is (lambda/N) theta
            grads = {k: g + weight_decay * model.params[k] for k, g in grads.items()}
        t2 = time.perf_counter()
        if not math.isfinite(loss):
            raise StepRejected(f"the loss became non-finite ({loss})", loss)
        try:
            opt.step(grads)          # refuses NaN/inf gradients before changing anything
        except optim.NonFiniteGradient as error:
            raise StepRejected(str(error), loss) from None
    if phase_seconds is not None:
        phase_seconds += (t1 - t0, t2 - t1, time.perf_counter() - t2)
    return loss


def _check_float_data(x, name):
    """``x`` as an array of dtype float32 or float64, or a TypeError naming the dtype it has.

    The finer checks (shape, NaN/inf, range) are the model's: VAE.check_data.
    """
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        hints = {"u": " (pixels 0-255? divide by 255: x / 255.0, or preprocessing.to_unit_interval)",
                 "i": " (pixels 0-255? divide by 255: x / 255.0)",
                 "b": " (binary images? x.astype(np.float32))",
                 "f": " (x.astype(np.float32))"}
        raise TypeError(f"{name} must be a float32 or float64 array, got dtype {x.dtype}"
                        + hints.get(x.dtype.kind, ""))
    return x


# A Gaussian likelihood with a learned variance starts at unit scale; data beyond this (pixels
# 0-255, raw prices) drives the first steps to losses of 1e7 and, in float32, to overflow,
# in float64 to an ELBO of -1e85 after a few epochs.  Refused before training, with advice.
GAUSSIAN_DATA_LIMIT = 100.0


def _check_gaussian_scale(model, x, name):
    """A ValueError if ``x`` (already validated) is far from unit scale, for a Gaussian model."""
    if model.likelihood == "gaussian":
        largest = float(np.abs(x).max())
        if largest > GAUSSIAN_DATA_LIMIT:
            raise ValueError(
                f"{name} has values up to {largest:g}, far from the unit scale a Gaussian "
                f"likelihood is trained at (|x| <= {GAUSSIAN_DATA_LIMIT:g}); standardise it, "
                "(x - x.mean(0)) / x.std(0) (pixels 0-255: divide by 255)")
    return x


def train(model, x_train, x_test=None, *, epochs=30, batch_size=100, optimizer="adam", lr=1e-3,
          n_samples=1, estimator="B", warmup_epochs=0, binarize_data=True, seed=0,
          checkpoint_path=None, resume=None, verbose=None, stream=None, weight_decay=0.0):
    """Train ``model`` in place; return the history (a dict of per-epoch lists).

    Parameters
    ----------
    model : VAE
    x_train : array (N, P)
        Training data; for a Bernoulli model, grey levels in [0, 1].
    x_test : array (N_test, P), optional
        Validation data: its ELBO is computed after every epoch.
    epochs, batch_size : int
        Passes over the data and minibatch size B (the paper's M).
    optimizer : {"sgd", "momentum", "adagrad", "adam"}; lr : float
    n_samples : int
        L, Monte Carlo samples per example.
    estimator : {"B", "A", "iwae"}
        Estimator B or A, or the IWAE bound L_k with k = n_samples (no warm-up).
    warmup_epochs : int
        KL warm-up length (see :func:`beta_schedule`); 0 for none.
    binarize_data : bool
        Bernoulli models only: dynamic binarisation of each training batch
        (new draws every time) and one fixed binarisation of x_test (seed + 1).
    seed : int
        Seeds the Generator behind shuffling, binarisation and eps.
    checkpoint_path : path, optional
        Written after every epoch, and when training is interrupted (Ctrl-C,
        SIGTERM) or diverges, with everything needed to resume.
    resume : dict, optional
        ``minivae.runs.checkpoint.load(path)`` of a checkpoint written by this
        function, with ``model=resume["model"]`` and the same settings as
        the run that wrote it (``epochs`` may be larger): training continues
        exactly where it stopped.  Other settings are a ValueError.
    verbose : bool, optional
        Progress output to ``stream`` (stderr).  Default: only on a terminal.
    weight_decay : float
        lambda >= 0 of a N(0, I/lambda) prior on every parameter (lambda = 1: the
        N(0, I) prior of Kingma & Welling 2013, Sec. 5), i.e. the MAP objective
        sum_i ELBO(x_i) + log p(theta).  Per example, as the loss is, that is
        mean ELBO + (1/N) log p(theta), so each step adds (lambda / N) theta to the
        gradient (N = len(x_train)).  The recorded ELBOs leave the prior out.

    Returns
    -------
    history : dict
        ``epoch``, ``beta``, ``train_elbo`` (mean of the minibatch estimates
        over the epoch, with that epoch's beta), ``valid_elbo`` (None without
        x_test), ``seconds``, ``examples_per_second``; plus ``interrupted``
        (True if Ctrl-C or SIGTERM stopped the run, after saving a checkpoint).

    Raises
    ------
    TypeError, ValueError
        Before any training, for a bad argument; the message says what was
        expected and what was given.
    TrainingDiverged
        The loss or a gradient became NaN or inf.  That step is not applied,
        so the model (and the checkpoint, if any) keep the last good state.
    """
    # every argument is checked before anything is trained or written
    if not isinstance(model, VAE):
        raise TypeError(f"model must be a minivae.VAE, got {type(model).__name__}")
    epochs = check_count(epochs, "epochs", 1)
    batch_size = check_count(batch_size, "batch_size", 1)
    n_samples = check_count(n_samples, "n_samples", 1)
    warmup_epochs = check_count(warmup_epochs, "warmup_epochs", 0)
    seed = check_count(seed, "seed", 0)
    weight_decay = check_number(weight_decay, "weight_decay", low=0)
    check_choice(estimator, "estimator", ESTIMATORS)
    if estimator == "iwae" and warmup_epochs:
        raise ValueError("the IWAE bound (estimator='iwae') has no KL weight to warm up: use warmup_epochs=0")
    opt = optim.make_optimizer(optimizer, model.params, lr=lr)      # checks optimizer and lr
    lr = opt.lr                                                     # a Python float
    # validated once as a whole, in the model dtype
    x_train = model.check_data(_check_float_data(x_train, "x_train"), "x_train")
    _check_gaussian_scale(model, x_train, "x_train")
    if batch_size > len(x_train):
        raise ValueError(f"batch_size {batch_size} is larger than the training set "
                         f"({len(x_train)} examples)")
    binarize_data = bool(binarize_data) and model.likelihood == "bernoulli"
    if x_test is not None:
        x_test = model.check_data(_check_float_data(x_test, "x_test"), "x_test")
        _check_gaussian_scale(model, x_test, "x_test")
        if binarize_data:
            x_test = fixed_binarization(x_test, seed)
    if checkpoint_path is not None:
        checkpoint_path = check_checkpoint_path(checkpoint_path)

    N = len(x_train)
    n_batches = math.ceil(N / batch_size)
    settings = {"epochs": epochs, "batch_size": batch_size, "optimizer": optimizer, "lr": lr,
                "n_samples": n_samples, "estimator": estimator, "warmup_epochs": warmup_epochs, "seed": seed,
                "binarize_data": binarize_data, "weight_decay": weight_decay}
    if resume is not None:
        check_resume(resume, model, N, settings, opt)
    rng = np.random.default_rng(seed)
    history = {"epoch": [], "beta": [], "train_elbo": [], "valid_elbo": [], "seconds": [],
               "examples_per_second": []}
    start_epoch, start_batch, order, total, last_loss = 0, 0, None, 0.0, None
    if resume is not None:
        opt.load_state_dict(resume["optimizer_state"])
        state = resume["train_state"]
        history = state["history"]
        rng.bit_generator.state = state["rng"]
        start_epoch, start_batch, total = state["epoch"], state["batch"], state["total"]
        last_loss = state.get("last_loss")
        order = resume["train_arrays"].get("order")

    stream = sys.stderr if stream is None else stream
    enabled = stream.isatty() if verbose is None else verbose
    progress = Progress(stream if enabled else None)

    # the checkpoint file holds this run's state once this run (or the one it resumes) wrote
    # it; before that, a file at checkpoint_path is another run's and is never named
    saved_by_this_run = [resume is not None and os.path.exists(checkpoint_path or "")]

    def save_checkpoint(epoch, batch, rng_state=None):
        """Save the position "next: step ``batch`` of ``epoch``" and the Generator state for it."""
        if checkpoint_path is not None:
            rng_state = rng.bit_generator.state if rng_state is None else rng_state
            state = {"epoch": epoch, "batch": batch, "total": total, "rng": rng_state,
                     "history": history, "settings": settings, "n_train": N,
                     "last_loss": last_loss}
            arrays = {} if order is None or batch == 0 else {"order": order}
            checkpoint.save(checkpoint_path, model, opt.state_dict(), state, arrays)
            saved_by_this_run[0] = True

    def diverged(epoch, batch, rng_state, loss, what):
        """Save the last good state if the model still holds it; return the error to raise."""
        # The failing step is never applied, so the model normally still holds the state
        # before it, saved as "about to take this step" with the Generator as it was before
        # the step's draws: resuming from it repeats the step exactly.  Only an update that
        # overflowed the parameters themselves leaves the model unusable; then the file on
        # disk is not overwritten: it holds the last state that was saved.
        intact = all_finite(model.params)
        if intact and checkpoint_path is not None:
            save_checkpoint(epoch, batch, rng_state)
        saved = checkpoint_path if saved_by_this_run[0] else None
        return TrainingDiverged.at(what, epoch=epoch, batch=batch, n_batches=n_batches, loss=loss,
                                   last_loss=last_loss, intact=intact, saved=saved,
                                   first_step=last_loss is None and resume is None,
                                   resumed=resume is not None,
                                   lr=lr, optimizer=optimizer)

    history["interrupted"] = False
    stop = StopRequest()
    with stop:
        for epoch in range(start_epoch, epochs):
            beta = beta_schedule(epoch, warmup_epochs)
            tic = time.perf_counter()
            if start_batch == 0:
                rng_state = rng.bit_generator.state       # a resume at batch 0 reshuffles from here
                order, total = rng.permutation(N), 0.0
            progress.restart(f"epoch {epoch + 1}/{epochs}")
            for batch in range(start_batch, n_batches):
                step = epoch * n_batches + batch
                if batch > 0:
                    rng_state = rng.bit_generator.state   # before this step's draws
                xb = x_train[order[batch * batch_size:(batch + 1) * batch_size]]
                try:
                    loss = train_step(model, opt, xb, rng, n_samples=n_samples, estimator=estimator, beta=beta,
                                      binarize=binarize_data, weight_decay=weight_decay / N)
                except StepRejected as error:
                    raise diverged(epoch, batch, rng_state, error.loss, error.what) from None
                last_loss = loss
                total += loss * len(xb)
                done = min((batch + 1) * batch_size, N)
                progress.update(done, N, f"ELBO {-total / done:8.2f}  "
                                         f"{done / max(progress.elapsed(), 1e-9):7.0f} ex/s")
                if stop.requested:
                    # checked between steps, so the saved state is always a whole step
                    if not all_finite(model.params):
                        raise diverged(epoch, batch, None, loss, "the update made parameters non-finite")
                    save_checkpoint(epoch, batch + 1)
                    history["interrupted"] = True
                    progress.say(f"stopped by {stop.requested} at epoch {epoch + 1}, step {step + 1}"
                                   + (f"; resume from {checkpoint_path}" if checkpoint_path else ""))
                    return history
            start_batch = 0
            if not all_finite(model.params):      # once per epoch, before it is saved
                raise diverged(epoch, n_batches - 1, None, last_loss,
                               "the update made parameters non-finite")
            seconds = time.perf_counter() - tic
            valid = None if x_test is None else evaluate_elbo(model, x_test, estimator=estimator)
            history["epoch"].append(epoch + 1)
            history["beta"].append(beta)
            history["train_elbo"].append(-total / N)
            history["valid_elbo"].append(valid)
            history["seconds"].append(seconds)
            history["examples_per_second"].append(N / seconds)
            progress.say(f"epoch {epoch + 1}/{epochs}  train ELBO {-total / N:8.2f}"
                           + ("" if valid is None else f"  test ELBO {valid:8.2f}")
                           + f"  {N / seconds:7.0f} ex/s  beta {beta:.2f}")
            save_checkpoint(epoch + 1, 0)
    return history
