"""Evaluation: the importance-sampled log-likelihood log p(x) and the IWAE bound L_k.

The ELBO is a lower bound; the number papers report for a trained VAE is an
estimate of log p(x) itself.  Writing p(x) as an expectation under the encoder's
q(z|x) (importance sampling, with q as the proposal),

    p(x) = E_{z ~ q(z|x)} [ p(x, z) / q(z|x) ],

and estimating it with k draws z_1..z_k ~ q(z|x) gives, in log space,

    L_k-estimate = log 1/k sum_i w_i,      log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x).

By Jensen's inequality its expectation L_k is a lower bound on log p(x), with
L_1 = the ELBO <= L_k <= L_k' <= log p(x) for k <= k', and L_k -> log p(x) as
k -> infinity (Burda, Grosse & Salakhutdinov 2016, Theorem 1).  With k = 5000
it is the standard "test log-likelihood" of the VAE literature.
Derivation: docs/evaluation.md.

Memory: the log-weights of k samples for B examples need the decoder run on
k B latent codes.  Here the examples are taken ``batch_size`` at a time and the
samples ``chunk`` at a time, and the log-mean-exp is accumulated across chunks
(``np.logaddexp`` of per-chunk ``logsumexp``), so peak memory depends on
batch_size x chunk, never on k or on the number of examples.
"""
import math
import time

import numpy as np
from scipy.special import logsumexp

from minivae.checks import check_count

# default chunking: at most this many numbers in one (samples x examples x width) array
CHUNK_ELEMENTS = 2 ** 22
# progress lines are written at most this often (seconds); tests may set it to 0
PROGRESS_SECONDS = 2.0


def log_weights(model, x, eps):
    """Importance log-weights log w = log p(x|z) + log p(z) - log q(z|x) for z = mu + sigma * eps.

    These are the terms of the VAE's estimator A (``kl="mc"``): their mean over
    samples is the ELBO estimate, their log-mean-exp the IWAE estimate.

    Parameters
    ----------
    model : VAE
    x : array (B, P)
    eps : array (L, B, D), standard normal noise

    Returns
    -------
    log_w : float64 array (L, B)
    """
    x = model.check_data(x)
    return _log_weights(model, x, model.check_noise(eps, x.shape[0]))


def _log_weights(model, x, eps):
    # the VAE's own forward pass computes every term; the ELBO it returns is not needed here
    # BEGIN SOLUTION importance_sampled_log_likelihood
    _, cache = model.forward(x, eps, kl="mc")
    # the three terms are added in float64, so the sum adds no float32 rounding of its own
    log_w = cache["log_px_z"].astype(np.float64) + cache["log_pz"] - cache["log_qz"]
    # END SOLUTION
    return log_w


def iwae_bound(model, x, k, *, rng=None, batch_size=100, chunk=None, progress=None,
               return_se=False):
    """One draw of the IWAE estimate log 1/k sum_i w_i for every example (Burda et al. 2016, Sec. 3).

    Its expectation is the bound L_k: k = 1 gives estimator A of the ELBO
    (the same numbers as ``model.elbo(x, kl="mc", rng=rng)`` for the same rng),
    and L_k increases to log p(x) as k grows.  To estimate the bound L_k itself,
    average the estimates of several independent calls (or of repeated rows).

    Parameters
    ----------
    model : VAE
    x : array (N, P)
        Data; for a Bernoulli model, binary (e.g. a fixed binarisation, as the
        training loop reports its test ELBO on).
    k : int >= 1
        Importance samples per example.
    rng : numpy.random.Generator, optional
        Draws the noise; default ``np.random.default_rng(0)`` (reproducible).
    batch_size : int
        Examples per pass.
    chunk : int, optional
        Samples per pass; default: as many as keep one (chunk, batch_size,
        width) array under ``CHUNK_ELEMENTS`` numbers, width = the widest of
        x_dim and the hidden layers.
    progress : text stream, optional
        Where to report progress (e.g. ``sys.stderr``); default: silent.
    return_se : bool
        Also return the delta-method standard error of each estimate,
        sqrt(Var(w) / (k E[w]^2)) with both moments estimated from the same k
        weights (docs/evaluation.md).  It is reliable only when the weights are
        not heavy-tailed; a large value means k is too small.

    Returns
    -------
    estimate : float64 array (N,)
        log 1/k sum_i w_i, in nats.
    se : float64 array (N,)
        Only with ``return_se=True``.
    """
    x = model.check_data(x)
    k = check_count("k", k)
    batch_size = check_count("batch_size", batch_size)
    if chunk is None:
        width = max((model.x_dim, *model.hidden))
        chunk = max(1, min(k, CHUNK_ELEMENTS // (min(batch_size, len(x)) * width)))
    chunk = check_count("chunk", chunk)
    rng = np.random.default_rng(0) if rng is None else rng

    N = len(x)
    estimate = np.empty(N)
    se = np.empty(N)
    report = _Progress(progress, N, k)
    for start in range(0, N, batch_size):
        xb = x[start:start + batch_size]
        # running log sum_i w_i and log sum_i w_i^2 over the chunks seen so far
        log_sum_w = np.full(len(xb), -np.inf)
        log_sum_w2 = np.full(len(xb), -np.inf)
        for done in range(0, k, chunk):
            eps = rng.standard_normal((min(chunk, k - done), len(xb), model.z_dim), dtype=model.dtype)
            log_w = _log_weights(model, xb, eps)                              # (chunk, B)
            # BEGIN SOLUTION importance_sampled_log_likelihood
            log_sum_w = np.logaddexp(log_sum_w, logsumexp(log_w, axis=0))
            log_sum_w2 = np.logaddexp(log_sum_w2, logsumexp(2 * log_w, axis=0))
            # END SOLUTION
        # BEGIN SOLUTION importance_sampled_log_likelihood
        estimate[start:start + len(xb)] = log_sum_w - math.log(k)
        # END SOLUTION
        # delta method: Var(log mean w) ~ Var(w) / (k E[w]^2) = (sum w^2 / (sum w)^2 - 1/k)
        ratio = np.exp(log_sum_w2 - 2 * log_sum_w)                            # in [1/k, 1]
        se[start:start + len(xb)] = np.sqrt(np.maximum(ratio - 1.0 / k, 0.0))
        report.update(start + len(xb))
    report.finish()
    if return_se:
        return estimate, se
    return estimate


def log_likelihood(model, x, k=5000, *, rng=None, batch_size=100, chunk=None, progress=None,
                   return_se=False):
    """Importance-sampled estimate of log p(x) per example: the IWAE estimate with many samples.

    log p(x) ~= log 1/k sum_{i=1}^k p(x|z_i) p(z_i) / q(z_i|x),  z_i ~ q(z|x)

    (Burda, Grosse & Salakhutdinov 2016, Sec. 3 and 5).  The estimate is
    consistent as k grows and, by Jensen's inequality, biased low
    by about Var(w) / (2 k E[w]^2) nats for finite k, so it is still a
    (stochastic) lower bound.  k = 5000 is the literature's standard.
    Arguments and return values as in :func:`iwae_bound`.

    Memory stays bounded for any k and any number of examples (see the
    module docstring); for k = 5000 over 10,000 MNIST images the measured peak
    and the command that measures it are in docs/evaluation.md.
    """
    return iwae_bound(model, x, k, rng=rng, batch_size=batch_size, chunk=chunk,
                      progress=progress, return_se=return_se)


class _Progress:
    """'log-likelihood: 300/1000 examples (30%), 12 s, about 28 s left' on a stream, throttled.

    On a terminal the line is rewritten in place; elsewhere a new line is
    written at most every PROGRESS_SECONDS.  Nothing is written for runs
    shorter than that, nor when ``stream`` is None.
    """

    def __init__(self, stream, total, k):
        self.stream, self.total, self.k = stream, total, k
        self.start = self.last = time.perf_counter()
        self.written = False

    def update(self, done):
        if self.stream is None:
            return
        now = time.perf_counter()
        if now - self.last < PROGRESS_SECONDS:
            return
        self.last = now
        elapsed = now - self.start
        left = elapsed * (self.total - done) / done
        live = getattr(self.stream, "isatty", lambda: False)()
        self.stream.write(("\r" if live else "") + f"log-likelihood (k = {self.k}): {done}/{self.total} "
                          f"examples ({100 * done / self.total:.0f}%), {elapsed:.0f} s, about {left:.0f} s left"
                          + ("" if live else "\n"))
        self.stream.flush()
        self.written = True

    def finish(self):
        if self.stream is not None and self.written:
            elapsed = time.perf_counter() - self.start
            live = getattr(self.stream, "isatty", lambda: False)()
            self.stream.write(("\r" if live else "") + f"log-likelihood (k = {self.k}): "
                              f"{self.total} examples in {elapsed:.0f} s" + " " * 20 + "\n")
            self.stream.flush()
