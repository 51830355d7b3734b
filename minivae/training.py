"""Training: maximise the ELBO by minibatch stochastic gradient ascent (Kingma & Welling 2013, Alg. 1).

::

    for each epoch:
        shuffle the training set (seeded Generator)
        for each minibatch x of B examples:                 # train_step:
            binarise x (dynamic binarisation: fresh Bernoulli draws each time)
            loss, grads = model.loss_and_grads(x, ...)      # loss = -ELBO estimate
            optimizer.step(grads)                           # descent on -ELBO = ascent on ELBO
        test ELBO on the test set; record history; save a checkpoint

(The paper's minibatch size M is B here, as everywhere in minivae.)

**The model contract.**  :func:`train` trains any model that provides

* ``params``: a dict of named float arrays, which the optimiser updates in place;
* ``check_data(x, name)``: ``x`` validated and in the model's dtype, and
  ``likelihood`` ("bernoulli" data are binarised afresh at every step);
* ``loss_and_grads(x, *, n_samples, estimator, beta, rng, check)``: the loss
  (-ELBO estimate per example) and a dict of its gradients with the keys of
  ``params`` -- or, instead, a ``step`` function given to train,
  ``step(model, opt, xb, rng, beta) -> loss``, that takes one step itself
  (wake-sleep: :func:`minivae.topics.wake_sleep.train_step`).

A :class:`~minivae.vae.VAE` provides all of it; ``x_test`` (its ELBO every epoch)
and ``checkpoint_path`` need a VAE.  Two hooks change the run without a second
loop: ``lr_schedule(epoch)`` sets the learning rate of each epoch (Burda et al.'s
schedule, :func:`minivae.experiments.reproduce.burda_lr`), and ``on_epoch`` /
``on_step`` are called after every epoch / step (to measure, report, or stop).

Everything random comes from one Generator seeded by ``seed``, and its state
is saved in every checkpoint, so a run interrupted and resumed ends with
exactly the parameters of an uninterrupted run.  The bookkeeping for that
lives in :class:`minivae.runs.run_control.RunControl`.

What can go wrong, and what happens (docs/reliability.md lists the tests):

* a bad argument or data set: a TypeError/ValueError before anything is
  trained or written, saying what was expected and what was given;
* Ctrl-C or SIGTERM: the current step finishes, a checkpoint is saved and
  train returns with ``history["interrupted"]`` True;
* a NaN or inf loss or gradient: that step is not applied, the last good
  state is saved, and :class:`TrainingDiverged` names the step, the last
  finite loss and the likely causes.
"""
import functools
import math
import sys
import time

import numpy as np

from minivae import optim
from minivae.utils.validation import (check_attributes, check_choice, check_count, check_float_data,
                                      check_number, check_unit_scale)
from minivae.data.preprocessing import bernoulli_binarize, fixed_binarization
from minivae.evaluate import evaluate_elbo
from minivae.utils.progress import Progress
from minivae.runs.run_control import (RunControl, TrainingDiverged, check_checkpoint_path, check_resume,
                                      data_fingerprint)
from minivae.vae import ESTIMATORS

__all__ = ["train", "train_step", "beta_schedule", "geometric_lr", "StepRejected", "TrainingDiverged"]


def beta_schedule(epoch, warmup_epochs):
    """KL warm-up: beta rises linearly from 1/warmup to 1 over the first ``warmup_epochs`` epochs.

    epoch counts from 0; warmup_epochs = 0 means beta = 1 throughout (the ELBO).
    """
    if warmup_epochs <= 0:
        return 1.0
    return min(1.0, (epoch + 1) / warmup_epochs)


def geometric_lr(epoch, lr, lr_final, epochs):
    """Learning-rate decay: lr at epoch 0, falling geometrically to lr_final at the last epoch.

    lr_e = lr * (lr_final / lr) ** (e / (epochs - 1)), e = 0, ..., epochs - 1 (a one-epoch run
    uses lr).  The same factor every epoch, so the rate falls by equal ratios, as Burda et
    al.'s (2016) steps of 10^(-1/7) do, without their steps.
    """
    return lr * (lr_final / lr) ** (epoch / max(epochs - 1, 1))


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


def train(model, x_train, x_test=None, *, epochs=30, batch_size=100, optimizer="adam", lr=1e-3,
          lr_final=None, n_samples=1, estimator="B", warmup_epochs=0, binarize_data=True, seed=0, weight_decay=0.0,
          checkpoint_path=None, resume=None, verbose=None, stream=None, optimizer_options=None,
          step=None, lr_schedule=None, on_epoch=None, on_step=None):
    """Train ``model`` in place by Algorithm 1; return the history (a dict of per-epoch lists).

    Parameters
    ----------
    model : VAE, or a model of the contract in the module docstring
    x_train : array (N, P); x_test : array (N_test, P), optional
        Training data (Bernoulli: grey levels in [0, 1]); data whose ELBO is recorded every epoch.
    epochs, batch_size, n_samples, seed : int
        Passes over the data; minibatch size B (the paper's M); L samples per example; the
        seed of the Generator behind shuffling, binarisation and eps.
    optimizer : {"sgd", "momentum", "adagrad", "adam"}; lr : float; optimizer_options : dict
    lr_final : float, optional
        Decay the learning rate from ``lr`` to ``lr_final`` over the epochs (:func:`geometric_lr`).
    estimator : {"B", "A", "iwae"}; warmup_epochs : int (:func:`beta_schedule`)
    weight_decay : float
        lambda of a N(0, I/lambda) prior on every parameter (Kingma & Welling 2013, Sec. 5: 1).
    binarize_data : bool
        Bernoulli models: fresh binary draws of every batch, one fixed binarisation of x_test.
    checkpoint_path : path; resume : dict
        Written every epoch, on Ctrl-C/SIGTERM and on divergence; ``checkpoint.load(path)`` of
        this run (same model, settings, data; ``epochs`` may grow) continues it exactly.
    verbose : bool; stream : file
        Progress lines to ``stream`` (stderr); by default only on a terminal.
    step, lr_schedule, on_epoch, on_step : callables, optional
        ``step(model, opt, xb, rng, beta) -> loss`` replaces :func:`train_step`;
        ``lr_schedule(epoch) -> lr`` (epochs from 0); ``on_epoch(epoch, history)`` after
        every epoch (from 1, its checkpoint saved); ``on_step(model, examples)`` after every
        step (examples seen by this call).  A true result of either stops training there,
        after saving a checkpoint (after on_epoch: the run ends with that epoch, as if it
        were the last; ``minivae train --time-limit`` stops this way).

    Returns
    -------
    history : dict
        ``epoch``, ``beta``, ``train_elbo`` (mean minibatch estimate), ``test_elbo`` (None
        without x_test), ``seconds``, ``examples_per_second``, ``interrupted`` (Ctrl-C/SIGTERM).

    Raises TypeError/ValueError for a bad argument, before anything is trained or written, and
    TrainingDiverged for a NaN or inf loss or gradient (that step is not applied).
    """
    x_train, x_test, opt, step, lr_schedule, settings = _prepare(
        model, x_train, x_test, epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr,
        lr_final=lr_final, lr_schedule=lr_schedule, n_samples=n_samples, estimator=estimator, warmup_epochs=warmup_epochs, seed=seed,
        binarize_data=binarize_data, weight_decay=weight_decay, optimizer_options=optimizer_options,
        step=step, checkpoint_path=checkpoint_path, resume=resume)
    N, rng = len(x_train), np.random.default_rng(seed)
    run = RunControl(model, opt, rng, n_train=N, batch_size=batch_size, settings=settings,
                     checkpoint_path=checkpoint_path, resume=resume)
    stream = sys.stderr if stream is None else stream
    progress = Progress(stream if (stream.isatty() if verbose is None else verbose) else None)
    with run:
        for epoch in range(run.epoch, epochs):
            beta = beta_schedule(epoch, warmup_epochs)
            if lr_schedule is not None:
                opt.lr = lr_schedule(epoch)
            tic = time.perf_counter()
            progress.restart(f"epoch {epoch + 1}/{epochs}")
            for xb in run.minibatches(x_train, epoch):
                try:
                    loss = step(model, opt, xb, rng, beta=beta)
                except StepRejected as error:
                    raise run.diverged(error.what, error.loss) from None
                done, mean_loss = run.step_done(loss, len(xb))
                progress.update(done, N, f"ELBO {-mean_loss:8.2f}  "
                                         f"{done / max(progress.elapsed(), 1e-9):7.0f} ex/s")
                # between steps, so a checkpoint holds whole steps
                stop = run.stop_requested or (on_step and on_step(model, run.examples) and "on_step")
                if stop:
                    progress.say(f"stopped by {stop} at epoch {epoch + 1}, step {run.batch + 1}"
                                 + (f"; resume from {checkpoint_path}" if checkpoint_path else ""))
                    return run.stop(stop)
            seconds = time.perf_counter() - tic
            test_elbo = None if x_test is None else evaluate_elbo(model, x_test, estimator=estimator)
            run.end_epoch(beta, test_elbo, seconds)
            progress.say(f"epoch {epoch + 1}/{epochs}  train ELBO {-run.total / N:8.2f}"
                         + ("" if test_elbo is None else f"  test ELBO {test_elbo:8.2f}")
                         + f"  {N / seconds:7.0f} ex/s  beta {beta:.2f}")
            if on_epoch is not None and on_epoch(epoch + 1, run.history):
                break                # the epoch is saved: the run ends here, as after its last
    return run.history


def _prepare(model, x_train, x_test, *, epochs, batch_size, optimizer, lr, lr_final, lr_schedule,
             n_samples, estimator, warmup_epochs, seed, binarize_data, weight_decay, optimizer_options, step,
             checkpoint_path, resume):
    """Check every argument of :func:`train` before anything is trained or written.

    Returns (x_train, x_test, optimiser, step, lr_schedule, settings): the data validated
    once as a whole in the model's dtype (x_test binarised once), the step function, the
    learning rate of each epoch (None: constant), and the settings a checkpoint records
    (a resume must have the same).
    """
    check_attributes(model, "model", ("params", "check_data", "likelihood")
                     + (("loss_and_grads",) if step is None else ()))
    epochs, batch_size = check_count(epochs, "epochs"), check_count(batch_size, "batch_size")
    n_samples, seed = check_count(n_samples, "n_samples"), check_count(seed, "seed", 0)
    warmup_epochs = check_count(warmup_epochs, "warmup_epochs", 0)
    weight_decay = check_number(weight_decay, "weight_decay", low=0)
    check_choice(estimator, "estimator", ESTIMATORS)
    if estimator == "iwae" and warmup_epochs:
        raise ValueError("warmup_epochs must be 0 with estimator='iwae' (the IWAE bound has no KL "
                         f"weight to warm up), got {warmup_epochs!r}")
    opt = optim.make_optimizer(optimizer, model.params, lr=lr, **(optimizer_options or {}))
    if lr_final is not None:
        check_number(lr_final, "lr_final", low=0, low_inclusive=False)
        if lr_schedule is not None:
            raise ValueError("lr_final must be None when an lr_schedule is given (both would set "
                             f"the learning rate), got {lr_final!r}")
        lr_schedule = functools.partial(geometric_lr, lr=opt.lr, lr_final=lr_final, epochs=epochs)
    x_train = model.check_data(check_float_data(x_train, "x_train"), "x_train")
    if model.likelihood == "gaussian":
        check_unit_scale(x_train, "x_train")
    if batch_size > len(x_train):
        raise ValueError(f"batch_size must be at most the training set's {len(x_train)} examples, "
                         f"got {batch_size!r}")
    binarize_data = bool(binarize_data) and model.likelihood == "bernoulli"
    if x_test is not None:
        x_test = model.check_data(check_float_data(x_test, "x_test"), "x_test")
        if model.likelihood == "gaussian":
            check_unit_scale(x_test, "x_test")
        if binarize_data:
            x_test = fixed_binarization(x_test, seed)
    settings = {"epochs": epochs, "batch_size": batch_size, "optimizer": optimizer, "lr": opt.lr,
                "n_samples": n_samples, "estimator": estimator, "warmup_epochs": warmup_epochs,
                "seed": seed, "binarize_data": binarize_data, "weight_decay": weight_decay}
    if lr_final is not None:            # a run with a constant rate records what it always did
        settings["lr_final"] = lr_final
    if resume is not None or checkpoint_path is not None:    # a resume onto other data is refused
        settings["data"] = data_fingerprint(x_train)
    if resume is not None:
        check_resume(resume, model, len(x_train), settings, opt)
    if checkpoint_path is not None:
        check_checkpoint_path(checkpoint_path)
    if step is None:
        step = functools.partial(train_step, n_samples=n_samples, estimator=estimator,
                                 binarize=binarize_data, weight_decay=weight_decay / len(x_train))
    return x_train, x_test, opt, step, lr_schedule, settings
