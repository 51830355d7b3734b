"""Evaluation: the ELBO on a data set, the importance-sampled log-likelihood log p(x), the IWAE bound L_k.

The ELBO is a lower bound; the number papers report for a trained VAE is an
estimate of log p(x) itself.  Writing p(x) as an expectation under the encoder's
q(z|x) (importance sampling, with q as the proposal), ::

    p(x) = E_{z ~ q(z|x)} [ p(x, z) / q(z|x) ],

and estimating it with k draws z_1..z_k ~ q(z|x) gives, in log space, ::

    L_k-estimate = log 1/k sum_i w_i,      log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x).

By Jensen's inequality its expectation L_k is a lower bound on log p(x), with
L_1 = the ELBO <= L_k <= L_k' <= log p(x) for k <= k', and L_k -> log p(x) as
k -> infinity (Burda, Grosse & Salakhutdinov 2016, Theorem 1).  With k = 5000
it is the standard "test log-likelihood" of the VAE literature.
Derivation: docs/evaluation.md.

Memory: the log-weights of k samples for B examples need the decoder run on
k B latent codes.  Here the examples are taken ``batch_size`` at a time and the
samples ``chunk`` at a time, and the log-mean-exp is accumulated across chunks
(``np.logaddexp`` of per-chunk log-sum-exps), so peak memory depends on
batch_size x chunk, never on k or on the number of examples.
"""
import itertools
import math

import numpy as np

from minivae.utils.blas import one_blas_thread
from minivae.utils.memory import activation_count, check_fits
from minivae.utils.parallel import map_ahead, thread_pool
from minivae.utils.validation import check_attributes, check_bool, check_count, check_rng, check_stream
from minivae.utils.progress import Progress

MODEL_METHODS = ("check_data", "check_noise", "forward", "elbo")     # what evaluation calls

# default chunking: at most this many numbers in one (samples x examples x width) array;
# 2^19 float32 numbers are 2 MiB (docs/performance.md: evaluation)
CHUNK_ELEMENTS = 2 ** 19
# progress lines are written at most this often (seconds); tests may set it to 0
PROGRESS_SECONDS = 2.0


def evaluate_elbo(model, x, *, batch_size=1000, n_samples=1, estimator="B", rng=None):
    """Mean ELBO (nats per example) of ``model`` on x, in batches so memory stays bounded.

    x: (N, P) -> float.  ``rng`` draws eps (default ``np.random.default_rng(0)``,
    so the same model and data give the same number).
    """
    check_attributes(model, "model", MODEL_METHODS, "a minivae.VAE")
    x = model.check_data(x)             # before the loop: an empty x, or None, is refused here
    batch_size = check_count(batch_size, "batch_size")
    rng = np.random.default_rng(0) if rng is None else check_rng(rng)
    total = 0.0
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size]
        total += float(model.elbo(xb, n_samples=n_samples, estimator=estimator, rng=rng).sum())
    return total / len(x)


def log_weights(model, x, eps):
    """Importance log-weights log w = log p(x|z) + log p(z) - log q(z|x) for z = mu + sigma * eps.

    These are the terms of the VAE's estimator A (``estimator="A"``): their mean over
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
    x = check_attributes(model, "model", MODEL_METHODS, "a minivae.VAE").check_data(x)
    log_w, _ = log_weights_and_cache(model, x, model.check_noise(eps, x.shape[0]))
    return log_w


def log_weights_and_cache(model, x, eps, encoded=None):
    """:func:`log_weights` on validated x and eps, with the forward pass's cache (no checks).

    The one place the log-weight is summed; the score-function gradient
    estimator (minivae.topics.gradient_estimators) reuses it with the cache.
    ``encoded`` = (cache["h"], cache["encoder_cache"]) of an earlier call on
    the same x skips the encoder (see ``VAE.forward``): :func:`iwae_bound`
    encodes each batch once for all its chunks of samples.
    """
    # the VAE's own forward pass computes every term; the ELBO it returns is not needed here
    _, cache = model.forward(x, eps, estimator="A", encoded=encoded)
    return log_weights_from_cache(cache), cache


def log_weights_from_cache(cache):
    """log w = log p(x|z) + log p(z) - log q(z|x) from estimator A's terms, in float64.

    cache: a dict with "log_px_z", "log_pz" and "log_qz", each (L, B) (as in the cache of
    ``model.forward(x, eps, estimator="A")``)  ->  log_w: float64 (L, B).
    """
    # receives cache (estimator A's: log_px_z, log_pz, log_qz, each (L, B)); must leave log_w
    # BEGIN SOLUTION importance_sampled_log_likelihood
    # the three terms are added in float64, so the sum adds no float32 rounding of its own
    log_w = cache["log_px_z"].astype(np.float64) + cache["log_pz"] - cache["log_qz"]
    # END SOLUTION
    return log_w


def _forward_terms(model, x, eps, encoded):
    """The terms of log w for noise eps, from the model's forward pass (run by a worker)."""
    _, cache = model.forward(x, eps, estimator="A", encoded=encoded)
    return {k: cache[k] for k in ("log_px_z", "log_pz", "log_qz")}


def default_chunk(model, k, batch_size):
    """Samples per pass: as many as keep one (chunk, batch_size, width) array under CHUNK_ELEMENTS.

    width is the widest of x_dim and the hidden layers (why so small:
    docs/performance.md, "Evaluation").
    """
    width = max((model.x_dim, *model.hidden))
    return max(1, min(k, CHUNK_ELEMENTS // (batch_size * width)))


def iwae_bound(model, x, k, *, rng=None, batch_size=100, chunk=None, progress=None,
               return_se=False):
    """One draw of the IWAE estimate log 1/k sum_i w_i for every example (Burda et al. 2016, Sec. 3).

    Its expectation is the bound L_k: k = 1 gives estimator A of the ELBO
    (the same numbers as ``model.elbo(x, estimator="A", rng=rng)`` for the same rng),
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
        Samples per pass; default :func:`default_chunk`.
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
    x = check_attributes(model, "model", MODEL_METHODS, "a minivae.VAE").check_data(x)
    k = check_count(k, "k")
    batch_size = check_count(batch_size, "batch_size")
    if chunk is None:
        chunk = default_chunk(model, k, min(batch_size, len(x)))
    chunk = check_count(chunk, "chunk")
    rng = np.random.default_rng(0) if rng is None else check_rng(rng)
    check_stream(progress, "progress"), check_bool(return_se, "return_se")
    rows = chunk * min(batch_size, len(x))      # latent codes in one pass: its activations must fit
    check_fits(f"chunks of {chunk} samples for batches of {min(batch_size, len(x))} examples",
               activation_count(model.x_dim, model.z_dim, model.hidden, rows) * model.dtype.itemsize)

    N = len(x)
    estimate = np.empty(N)
    se = np.empty(N)
    report = Progress(progress, f"log-likelihood (k = {k}):", unit="examples", every=PROGRESS_SECONDS)
    # the forward passes of later chunks run on one worker per BLAS thread (minivae.utils.parallel);
    # eps is drawn, and log w summed, in chunk order, here: the result does not depend on them
    with one_blas_thread() as workers, thread_pool(workers) as pool:
        for start in range(0, N, batch_size):
            xb = x[start:start + batch_size]
            noise = (rng.standard_normal((min(chunk, k - done), len(xb), model.z_dim),
                                         dtype=model.dtype) for done in range(0, k, chunk))
            # the first chunk encodes the batch; q(z|x) does not change with eps, so the
            # other chunks reuse its encoding
            log_w, cache = log_weights_and_cache(model, xb, next(noise))
            encoded = cache["h"], cache["encoder_cache"]
            del cache                                          # free the chunk's arrays now
            later = (log_weights_from_cache(terms) for terms in
                     map_ahead(pool, lambda eps: _forward_terms(model, xb, eps, encoded), noise,
                               ahead=workers + 1))
            # running log sum_i w_i and log sum_i w_i^2 over the chunks seen so far
            log_sum_w = np.full(len(xb), -np.inf)
            log_sum_w2 = np.full(len(xb), -np.inf)
            for log_w in itertools.chain([log_w], later):                    # (chunk, B) each
                # logsumexp over the chunk's samples as logaddexp folded over them, in float64
                # must update log_sum_w and log_sum_w2 (B,): log sum w and log sum w^2 so far
                # BEGIN SOLUTION importance_sampled_log_likelihood
                log_sum_w = np.logaddexp(log_sum_w, np.logaddexp.reduce(log_w, axis=0))
                log_sum_w2 = np.logaddexp(log_sum_w2, np.logaddexp.reduce(2 * log_w, axis=0))
                # END SOLUTION
            # must write this batch's log 1/k sum_i w_i into estimate[start:start + len(xb)]
            # BEGIN SOLUTION importance_sampled_log_likelihood
            estimate[start:start + len(xb)] = log_sum_w - math.log(k)
            # END SOLUTION
            # delta method: Var(log mean w) ~ Var(w) / (k E[w]^2) = (sum w^2 / (sum w)^2 - 1/k)
            ratio = np.exp(log_sum_w2 - 2 * log_sum_w)                        # in [1/k, 1]
            se[start:start + len(xb)] = np.sqrt(np.maximum(ratio - 1.0 / k, 0.0))
            report.update(start + len(xb), N)
    report.finish(f"log-likelihood (k = {k}): {N} examples in {report.elapsed():.0f} s")
    if np.isnan(estimate).any():       # say why, as model.elbo does (an O(N) scan)
        b = int(np.argmax(np.isnan(estimate)))
        model.elbo(x[b:b + 1], estimator="A", eps=np.zeros((1, 1, model.z_dim)))
        raise ValueError(f"the estimate must be a number, got nan for example {b}: its "
                         "log-weights are NaN")
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

