"""Training: maximise the ELBO by minibatch stochastic gradient ascent (Kingma & Welling 2013, Alg. 1).

    for each epoch:
        shuffle the training set (seeded Generator)
        for each minibatch x of M examples:
            binarise x (dynamic binarisation: fresh Bernoulli draws each time)
            loss, grads = model.loss_and_grads(x, ...)      # loss = -ELBO estimate
            optimizer.step(grads)                           # descent on -ELBO = ascent on ELBO
        validation ELBO on the test set; record history; save a checkpoint

Everything random comes from one Generator seeded by ``seed``, and its state
is saved in every checkpoint, so a run interrupted and resumed ends with
exactly the parameters of an uninterrupted run.
"""
import math
import signal
import sys
import threading
import time

import numpy as np

from minivae import checkpoint
from minivae.datasets import bernoulli_binarize
from minivae import optim


class TrainingDiverged(RuntimeError):
    """The loss became NaN or inf; the message names the step and likely causes."""


def beta_schedule(epoch, warmup_epochs):
    """KL warm-up: beta rises linearly from 1/warmup to 1 over the first ``warmup_epochs`` epochs.

    epoch counts from 0; warmup_epochs = 0 means beta = 1 throughout (the ELBO).
    """
    if warmup_epochs <= 0:
        return 1.0
    return min(1.0, (epoch + 1) / warmup_epochs)


def fixed_binarization(x_test, seed):
    """The one static binarisation of the test set that a run with ``seed`` reports ELBOs on."""
    return bernoulli_binarize(x_test, np.random.default_rng(seed + 1)).astype(x_test.dtype)


def evaluate_elbo(model, x, *, batch_size=1000, n_samples=1, kl="analytic", rng=None):
    """Mean ELBO (nats per example) of ``model`` on x, in batches so memory stays bounded."""
    rng = np.random.default_rng(0) if rng is None else rng
    total = 0.0
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size]
        total += float(model.elbo(xb, n_samples=n_samples, kl=kl, rng=rng).sum())
    return total / len(x)


class Progress:
    """One status line, rewritten in place on a terminal; one line per epoch otherwise (if verbose)."""

    def __init__(self, enabled, stream=None):
        self.stream = sys.stderr if stream is None else stream
        self.live = enabled and self.stream.isatty()
        self.enabled = enabled

    def batch(self, epoch, epochs, done, total, elbo, rate):
        if self.live:
            width = 24
            filled = int(width * done / total)
            bar = "#" * filled + "-" * (width - filled)
            self.stream.write(f"\repoch {epoch}/{epochs} [{bar}] {done}/{total}  "
                              f"ELBO {elbo:8.2f}  {rate:7.0f} ex/s")
            self.stream.flush()

    def epoch(self, line):
        if self.enabled:
            self.stream.write(("\r" if self.live else "") + line + " " * 8 + "\n")
            self.stream.flush()


def _check_train_args(x_train, epochs, batch_size, n_samples, warmup_epochs):
    for name, value, low in (("epochs", epochs, 1), ("batch_size", batch_size, 1),
                             ("n_samples", n_samples, 1), ("warmup_epochs", warmup_epochs, 0)):
        if int(value) != value or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if batch_size > len(x_train):
        raise ValueError(f"batch_size {batch_size} is larger than the training set ({len(x_train)} examples)")


def train(model, x_train, x_test=None, *, epochs=30, batch_size=100, optimizer="adam", lr=1e-3,
          n_samples=1, kl="analytic", warmup_epochs=0, binarize_data=True, seed=0,
          checkpoint_path=None, resume=None, verbose=None, stream=None):
    """Train ``model`` in place; return the history (a dict of per-epoch lists).

    Parameters
    ----------
    model : VAE
    x_train : array (N, P)
        Training data; for a Bernoulli model, grey levels in [0, 1].
    x_test : array (N_test, P), optional
        Validation data: its ELBO is computed after every epoch.
    epochs, batch_size : int
        Passes over the data and minibatch size M.
    optimizer : {"sgd", "momentum", "adagrad", "adam"}; lr : float
    n_samples : int
        L, Monte Carlo samples per example.
    kl : {"analytic", "mc"}
        Estimator B or A.
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
        ``minivae.checkpoint.load(path)`` of a checkpoint written by this
        function: training continues exactly where it stopped.
    verbose : bool, optional
        Progress output to ``stream`` (stderr).  Default: only on a terminal.

    Returns
    -------
    history : dict
        ``epoch``, ``beta``, ``train_elbo`` (mean of the minibatch estimates
        over the epoch, with that epoch's beta), ``valid_elbo`` (None without
        x_test), ``seconds``, ``examples_per_second``; plus ``interrupted``
        (True if Ctrl-C or SIGTERM stopped the run, after saving a checkpoint).
    """
    x_train = model.check_data(x_train, "x_train")          # validated once, in the model dtype
    _check_train_args(x_train, epochs, batch_size, n_samples, warmup_epochs)
    binarize_data = binarize_data and model.likelihood == "bernoulli"
    if x_test is not None:
        x_test = model.check_data(x_test, "x_test")
        if binarize_data:
            x_test = fixed_binarization(x_test, seed)

    N = len(x_train)
    n_batches = math.ceil(N / batch_size)
    rng = np.random.default_rng(seed)
    opt = optim.make_optimizer(optimizer, model.params, lr=lr)
    history = {"epoch": [], "beta": [], "train_elbo": [], "valid_elbo": [], "seconds": [],
               "examples_per_second": []}
    start_epoch, start_batch, order, total = 0, 0, None, 0.0
    if resume is not None:
        opt.load_state_dict(resume["optimizer_state"])
        state = resume["train_state"]
        history = state["history"]
        rng.bit_generator.state = state["rng"]
        start_epoch, start_batch, total = state["epoch"], state["batch"], state["total"]
        order = resume["train_arrays"].get("order")

    progress = Progress(sys.stderr.isatty() if verbose is None else verbose, stream)
    settings = {"epochs": epochs, "batch_size": batch_size, "optimizer": optimizer, "lr": lr,
                "n_samples": n_samples, "kl": kl, "warmup_epochs": warmup_epochs, "seed": seed}

    def save_checkpoint(epoch, batch):
        if checkpoint_path is not None:
            state = {"epoch": epoch, "batch": batch, "total": total, "rng": rng.bit_generator.state,
                     "history": history, "settings": settings}
            arrays = {} if order is None or batch == 0 else {"order": order}
            checkpoint.save(checkpoint_path, model, opt.state_dict(), state, arrays)

    last_loss, step = None, 0
    history["interrupted"] = False
    stop = _StopRequest()
    with stop:
        for epoch in range(start_epoch, epochs):
            beta = beta_schedule(epoch, warmup_epochs)
            tic = time.perf_counter()
            if start_batch == 0:
                order, total = rng.permutation(N), 0.0
            for batch in range(start_batch, n_batches):
                step = epoch * n_batches + batch
                xb = x_train[order[batch * batch_size:(batch + 1) * batch_size]]
                if binarize_data:
                    xb = bernoulli_binarize(xb, rng)   # float32 0/1, exact in any dtype
                loss, grads = model.loss_and_grads(xb, n_samples=n_samples, kl=kl, beta=beta, rng=rng)
                # a finite loss can still come with inf/NaN gradients: check both before stepping
                if not (math.isfinite(loss) and all(math.isfinite(g.sum()) for g in grads.values())):
                    # the bad step is not applied: the model and the checkpoint keep the last good state
                    save_checkpoint(epoch, batch)
                    raise TrainingDiverged(
                        f"the loss or its gradient became non-finite (loss {loss}) at epoch {epoch + 1}, step {step} "
                        f"(last finite loss: {last_loss}). The parameters were not updated with it"
                        + (f" and {checkpoint_path} holds the last good state" if checkpoint_path else "")
                        + f". Likely cause: the learning rate ({lr}) is too large for {optimizer!r}; "
                        "try a smaller one.")
                last_loss = loss
                opt.step(grads)
                total += loss * len(xb)
                done = min((batch + 1) * batch_size, N)
                if batch % 10 == 0 or batch == n_batches - 1:
                    progress.batch(epoch + 1, epochs, done, N, -total / done,
                                   done / max(time.perf_counter() - tic, 1e-9))
                if stop.requested:
                    # checked between steps, so the saved state is always a whole step
                    save_checkpoint(epoch, batch + 1)
                    history["interrupted"] = True
                    progress.epoch(f"stopped by {stop.requested} at epoch {epoch + 1}, step {step + 1}"
                                   + (f"; resume from {checkpoint_path}" if checkpoint_path else ""))
                    return history
            start_batch = 0
            seconds = time.perf_counter() - tic
            valid = None if x_test is None else evaluate_elbo(model, x_test, kl=kl)
            history["epoch"].append(epoch + 1)
            history["beta"].append(beta)
            history["train_elbo"].append(-total / N)
            history["valid_elbo"].append(valid)
            history["seconds"].append(seconds)
            history["examples_per_second"].append(N / seconds)
            progress.epoch(f"epoch {epoch + 1}/{epochs}  train ELBO {-total / N:8.2f}"
                           + ("" if valid is None else f"  test ELBO {valid:8.2f}")
                           + f"  {N / seconds:7.0f} ex/s  beta {beta:.2f}")
            save_checkpoint(epoch + 1, 0)
    return history


class _StopRequest:
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
