"""The marginal likelihood p_theta(x) by Hybrid Monte Carlo: Kingma & Welling (2013), App. D.

For a latent space of a few dimensions the paper estimates log p_theta(x) without the
encoder, from samples of the true posterior p_theta(z|x) (Fig. 3):

1. draw L samples z(l) ~ p_theta(z|x) by Hybrid (Hamiltonian) Monte Carlo, which needs
   only the gradient  grad_z log p_theta(x, z) = grad_z log p(z) + grad_z log p_theta(x|z);
2. fit a density q(z) to them: here the Gaussian N(m, S) with the samples' mean and
   covariance (the paper leaves the density estimator open);
3. draw L new samples z(l) ~ p_theta(z|x) and estimate ::

       p_theta(x) ~= ( 1/L sum_l q(z(l)) / (p(z(l)) p_theta(x|z(l))) )^-1,

   which holds because E_{p(z|x)}[q(z) / p(x, z)] = int q(z) dz / p(x) = 1 / p(x).

Here the two sets of samples come from two halves of the chains, run side by side, so
q is independent of the samples it is evaluated on.  Everything is vectorised over the
B images and C chains per image (the state is z: (C, B, D)); the only Python loops are
over HMC iterations and leapfrog steps.  Derivation: docs/derivations.md, "Marginal
likelihood by Hybrid Monte Carlo".

The model is any :class:`minivae.vae.VAE`: the gradient is the VAE's own forward pass
and ``VAE.backward_to_encoder_output`` (the likelihood and decoder backward), with the
prior N(0, I) in place of the encoder's q.  The exact linear-Gaussian model enters as
``topics.linear_gaussian.vae_from_ppca``, a VAE whose decoder is that model, which is how
tests/test_marginal_likelihood.py checks the sampler and the estimator against the
exact posterior and log p(x).

HMC settings: App. D names Hybrid Monte Carlo (Duane, Kennedy, Pendleton & Roweth 1987);
App. E gives the estimator's settings (50 posterior samples for each of the first 1,000
training and test points, HMC with 4 leapfrog steps).  The defaults here depart from them:
10 leapfrog steps with a step size tuned for an acceptance rate of 90%, App. E's settings
for its MCEM baseline, and 500 draws per image (docs/reproduction.md, Fig. 3).  The step size is tuned per image
during burn-in by the dual averaging of Hoffman & Gelman (2014, Sec. 3.2) and then
fixed, and jittered by +-10% per iteration (Neal 2011, Sec. 5.4) against periodic
trajectories.

Shapes: B images, P = x_dim, D = z_dim, C chains per image, T draws per chain.
"""
import math

import numpy as np
from scipy.special import logsumexp

from minivae import distributions as dist
from minivae.utils.validation import (check_count, check_finite, check_number, check_numeric_array,
                                      check_rng, check_shape, check_type)
from minivae.utils.progress import Progress
from minivae.vae import VAE

# dual averaging constants of Hoffman & Gelman (2014, Sec. 3.2): gamma, t0, kappa
DA_GAMMA, DA_T0, DA_KAPPA = 0.05, 10.0, 0.75
JITTER = 0.1               # each iteration's step size is step * U(1 - JITTER, 1 + JITTER)
RIDGE = 1e-6               # added to q's covariance, relative to its mean variance


def _check_model(model):
    check_type(model, "model", VAE, "a minivae.VAE")


def _check_z(model, z, B, C="C", name="z"):
    """z: C chains for each of the B images, (C, B, z_dim), finite; in the model's dtype."""
    z = check_shape(check_numeric_array(z, name), name, (C, B, model.z_dim))
    return check_finite(z, name).astype(model.dtype, copy=False)


# ---------------------------------------------------------------------------
# log p(x, z) and its gradient in z
# ---------------------------------------------------------------------------

def log_joint_and_grad(model, x, z, check=True):
    """log p_theta(x, z) = log p(z) + log p_theta(x|z) for every chain, and its gradient in z.

    The forward is the VAE's own, with q(z|x) = N(0, I) given in place of the
    encoder's output: its reparameterised samples z = 0 + exp(0) * eps are then
    exactly eps = z, the chains' states.  The gradient in z is the VAE's backward
    (likelihood, then decoder) up to its z, plus the prior's -z::

        d log p(x, z) / dz = d log p_theta(x|z) / dz - z.

    Each z[c, b] enters only its own term, so this is also the gradient of the sum
    over all chains and images, which is what tests check by finite differences.

    Parameters
    ----------
    model : VAE
    x : array (B, P)
    z : array (C, B, D)
        C states (chains) per image.
    check : bool
        Validate x and z (HMC's inner loop passes False: it validated them once).

    Returns
    -------
    log_joint : array (C, B), model dtype
    dz : array (C, B, D), model dtype
        d log_joint[c, b] / d z[c, b].
    """
    if check:
        _check_model(model)
        x = model.check_data(x)
        z = _check_z(model, z, x.shape[0])
    C, B, D = z.shape
    # forward: the decoder's log p(x|z) from the VAE's pass, the prior from its density
    prior_as_q = np.zeros((B, 2 * D), dtype=model.dtype)         # [mu, logvar] = [0, 0]
    _, cache = model.forward(x, z, estimator="B", encoded=(prior_as_q, None))
    log_px_z = cache["log_px_z"]                                  # (C, B)
    log_prior, prior_cache = dist.standard_normal_log_density(z)  # (C, B)
    log_joint = log_px_z + log_prior

    # backward, the same names in reverse: d log_joint / d log_prior = d log_joint / d log_px_z = 1
    dlog_prior = np.ones((C, B), dtype=model.dtype)
    dz_prior = dist.standard_normal_log_density_backward(dlog_prior, prior_cache)
    # estimator B averages log p(x|z) over its C "samples": an upstream C per image gives
    # each chain's term the gradient 1.  (The decoder's parameter gradients come along
    # unused: the price of reusing the VAE's one backward.)
    record = {}
    model.backward_to_encoder_output(cache, np.full(B, C, dtype=model.dtype), record)
    dz = record["dz"] + dz_prior                                  # record["dz"]: d log p(x|z) / dz
    return log_joint, dz


# ---------------------------------------------------------------------------
# Hybrid Monte Carlo
# ---------------------------------------------------------------------------

def leapfrog(model, x, z, r, grad, step, n_steps):
    """``n_steps`` leapfrog steps of the dynamics of H(z, r) = ``-log p(x, z) + |r|^2 / 2``.

    The steps::

        r <- r + step/2 grad;  then n_steps times: z <- z + step r, grad <- grad_z log p(x, z),
        r <- r + step grad (step/2 on the last);   (Neal 2011, "MCMC using Hamiltonian dynamics")

    z, r, grad: (C, B, D); step: (B,) one step size per image.  Returns the new z, r,
    log p(x, z) (C, B) and its gradient.  Volume-preserving and reversible (with r
    negated), so the Metropolis test needs only the change in H.
    """
    step = step[None, :, None]                                    # broadcast over chains and D
    r = r + 0.5 * step * grad
    for s in range(n_steps):
        z = z + step * r
        log_joint, grad = log_joint_and_grad(model, x, z, check=False)
        r = r + (step if s < n_steps - 1 else 0.5 * step) * grad
    return z, r, log_joint, grad


def hmc_sample(model, x, *, n_chains=20, n_burn=100, n_draws=50, n_leapfrog=10,
               target_accept=0.9, z0=None, rng=None):
    """Draws from p_theta(z|x) for every image by Hybrid Monte Carlo, C chains per image at once.

    Each iteration draws a momentum r ~ N(0, I), runs :func:`leapfrog` from (z, r), and
    accepts the end point with probability min(1, exp(H(z, r) - H(z', r'))), chain by
    chain (Metropolis).  During the ``n_burn`` burn-in iterations the step size of each
    image is adapted by dual averaging (Hoffman & Gelman 2014, Sec. 3.2) so that the
    mean acceptance probability of its chains approaches ``target_accept``::

        Hbar_t = (1 - 1/(t + t0)) Hbar_{t-1} + (target - a_t) / (t + t0)
        log step_t = mu - sqrt(t) / gamma Hbar_t,    mu = log(10 step_0)
        log stepbar_t = t^-kappa log step_t + (1 - t^-kappa) log stepbar_{t-1}

    and stepbar is used, fixed, for the ``n_draws`` recorded iterations.  step_0 is the
    smallest standard deviation of the encoder's q(z|x), at most 1.

    Parameters
    ----------
    model : VAE
    x : array (B, P)
    n_chains, n_burn, n_draws, n_leapfrog : int
        C chains per image, burn-in and recorded iterations, leapfrog steps per iteration.
    target_accept : float in (0, 1)
    z0 : array (C, B, D), optional
        Starting states; default draws of the encoder's q(z|x) (its standard deviation
        capped at the prior's 1), so burn-in starts near the posterior.
    rng : numpy.random.Generator, optional
        Default ``np.random.default_rng(0)``.

    Returns
    -------
    draws : array (T, C, B, D)
        The states after each of the T = n_draws recorded iterations.
    info : dict
        "log_joint" (T, C, B): log p(x, z) at the draws; "step_size" (B,); "accept_rate"
        (B,): the fraction of accepted proposals over the recorded iterations.
    """
    _check_model(model)
    x = model.check_data(x)
    n_chains, n_draws, n_leapfrog = (check_count(value, name) for name, value in (
        ("n_chains", n_chains), ("n_draws", n_draws), ("n_leapfrog", n_leapfrog)))
    n_burn = check_count(n_burn, "n_burn", low=0)
    target = check_number(target_accept, "target_accept", low=0, high=1, low_inclusive=False,
                          high_inclusive=False)
    rng = np.random.default_rng(0) if rng is None else check_rng(rng)
    B, D, dtype = x.shape[0], model.z_dim, model.dtype

    mu_q, logvar_q = model.encode(x)
    sigma_q = np.minimum(np.exp(0.5 * logvar_q.astype(np.float64)), 1.0)     # (B, D)
    if z0 is None:
        z = (mu_q + sigma_q * rng.standard_normal((n_chains, B, D))).astype(dtype)
    else:
        z = _check_z(model, z0, B, n_chains, "z0")
    log_joint, grad = log_joint_and_grad(model, x, z, check=False)

    # dual averaging state, per image
    log_step = np.log(sigma_q.min(axis=1))
    mu_da, h_bar, log_step_bar = math.log(10.0) + log_step, np.zeros(B), log_step.copy()
    draws = np.empty((n_draws, n_chains, B, D), dtype=dtype)
    draws_log_joint = np.empty((n_draws, n_chains, B))
    accepted = np.zeros((n_chains, B))
    for t in range(1, n_burn + n_draws + 1):
        burning = t <= n_burn
        step = np.exp(log_step if burning else log_step_bar)
        step = (step * rng.uniform(1 - JITTER, 1 + JITTER, size=B)).astype(dtype)
        r = rng.standard_normal((n_chains, B, D), dtype=dtype)
        with np.errstate(over="ignore", invalid="ignore"):
            z_new, r_new, log_joint_new, grad_new = leapfrog(model, x, z, r, grad, step, n_leapfrog)
            # H = -log p(x, z) + |r|^2 / 2, in float64; a non-finite H' is a rejection
            h_old = -log_joint.astype(np.float64) + 0.5 * (r.astype(np.float64) ** 2).sum(axis=-1)
            h_new = -log_joint_new.astype(np.float64) + 0.5 * (r_new.astype(np.float64) ** 2).sum(axis=-1)
            log_ratio = np.where(np.isfinite(h_new), h_old - h_new, -np.inf)            # (C, B)
        accept = np.log(rng.uniform(size=(n_chains, B))) < log_ratio
        z = np.where(accept[..., None], z_new, z)
        grad = np.where(accept[..., None], grad_new, grad)
        log_joint = np.where(accept, log_joint_new, log_joint)
        if burning:
            a = np.exp(np.minimum(log_ratio, 0.0)).mean(axis=0)                         # (B,)
            h_bar = (1 - 1 / (t + DA_T0)) * h_bar + (target - a) / (t + DA_T0)
            log_step = mu_da - math.sqrt(t) / DA_GAMMA * h_bar
            eta = t ** -DA_KAPPA
            log_step_bar = eta * log_step + (1 - eta) * log_step_bar
        else:
            draws[t - n_burn - 1] = z
            draws_log_joint[t - n_burn - 1] = log_joint
            accepted += accept
    return draws, {"log_joint": draws_log_joint, "step_size": np.exp(log_step_bar),
                   "accept_rate": accepted.mean(axis=0) / n_draws}


# ---------------------------------------------------------------------------
# The estimator of App. D
# ---------------------------------------------------------------------------

def fit_gaussian(samples):
    """The Gaussian q = N(m, S) with the samples' mean and covariance, per image.

    samples: (N, B, D) -> m: (B, D), chol: (B, D, D), the lower Cholesky factor of
    S + RIDGE * mean(diag S) I (the ridge keeps S positive definite if the chains
    barely moved).
    """
    N, B, D = samples.shape
    samples = samples.astype(np.float64)
    m = samples.mean(axis=0)
    centred = samples - m
    S = np.einsum("nbi,nbj->bij", centred, centred) / (N - 1)
    scale = np.maximum(np.trace(S, axis1=1, axis2=2) / D, np.finfo(np.float64).tiny)
    S += RIDGE * scale[:, None, None] * np.eye(D)
    return m, np.linalg.cholesky(S)


def gaussian_log_density_full(z, m, chol):
    """log N(z; m, S) with S = chol chol^T:  ``-1/2 [D log 2 pi + log|S| + |chol^-1 (z - m)|^2]``.

    z: (N, B, D), m: (B, D), chol: (B, D, D) -> (N, B).
    """
    D = z.shape[-1]
    white = np.linalg.solve(chol, (z - m)[..., None])[..., 0]      # (N, B, D), batched over b
    log_det = 2 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(axis=-1)
    return -0.5 * (D * dist.LOG_2PI + log_det + (white * white).sum(axis=-1))


def hmc_log_likelihood(model, x, *, n_chains=20, n_burn=100, n_draws=50, n_leapfrog=10,
                       target_accept=0.9, batch_size=50, rng=None, progress=None,
                       return_info=False):
    """The App. D estimate of log p_theta(x) per image (Kingma & Welling 2013), by HMC.

    Runs :func:`hmc_sample` with ``n_chains`` chains per image; the first half of the
    chains gives L = (n_chains / 2) n_draws samples to fit q (:func:`fit_gaussian`), the
    second half L' = (n_chains - n_chains / 2) n_draws new samples to evaluate ::

        log p(x) ~= -log 1/L' sum_l exp(log q(z_l) - log p(x, z_l))     (a logsumexp).

    By Jensen's inequality the estimate is biased *up* by about se^2 / 2 (1 / p(x) is
    estimated without bias); chains that miss part of the posterior bias it down.

    Parameters
    ----------
    model : VAE
    x : array (N, P)
        For a Bernoulli model, binary (e.g. a fixed binarisation).
    n_chains : int >= 4
        Chains per image, split into the two halves.
    n_burn, n_draws, n_leapfrog, target_accept : see :func:`hmc_sample`
    batch_size : int
        Images per HMC run (n_chains * batch_size rows through the decoder).
    rng : numpy.random.Generator, optional
        Default ``np.random.default_rng(0)``.
    progress : text stream, optional
        Where to report progress; default silent.
    return_info : bool
        Also return a dict of per-image arrays: "se", the standard error of the
        estimate from the spread of the evaluation chains' means of q/p(x, z) (chains
        are independent, so autocorrelation within a chain is accounted for), delta
        method; "accept_rate" and "step_size" of :func:`hmc_sample`.

    Returns
    -------
    estimate : float64 array (N,)
    info : dict, only with ``return_info=True``
    """
    _check_model(model)
    x = model.check_data(x)
    n_chains = check_count(n_chains, "n_chains")
    if n_chains < 4:
        raise ValueError(f"n_chains must be an integer >= 4 (two halves of at least 2 chains, for "
                         f"the standard error), got {n_chains}")
    batch_size = check_count(batch_size, "batch_size")
    rng = np.random.default_rng(0) if rng is None else check_rng(rng)
    N, half = len(x), n_chains // 2
    out = {key: np.empty(N) for key in ("estimate", "se", "accept_rate", "step_size")}
    report = Progress(progress, "HMC log-likelihood:", unit="examples")
    for start in range(0, N, batch_size):
        part = slice(start, start + batch_size)
        draws, info = hmc_sample(model, x[part], n_chains=n_chains, n_burn=n_burn,
                                 n_draws=n_draws, n_leapfrog=n_leapfrog,
                                 target_accept=target_accept, rng=rng)
        T, _, B, D = draws.shape
        # stage 2 of App. D: q from the first half of the chains ...
        m, chol = fit_gaussian(draws[:, :half].reshape(T * half, B, D))
        # ... and log q(z) - log p(x, z) at the second half's draws: (T, C - half, B)
        evaluation = draws[:, half:].reshape(-1, B, D)
        log_ratio = (gaussian_log_density_full(evaluation, m, chol).reshape(T, -1, B)
                     - info["log_joint"][:, half:])
        log_mean_ratio = logsumexp(log_ratio, axis=(0, 1)) - math.log(log_ratio[..., 0].size)
        out["estimate"][part] = -log_mean_ratio
        # standard error from the independent chains' means, ratios scaled by their mean
        chain_means = np.exp(logsumexp(log_ratio, axis=0) - math.log(T) - log_mean_ratio)
        out["se"][part] = chain_means.std(axis=0, ddof=1) / math.sqrt(chain_means.shape[0])
        out["accept_rate"][part] = info["accept_rate"]
        out["step_size"][part] = info["step_size"]
        report.update(min(start + batch_size, N), N)
    report.finish(f"HMC log-likelihood: {N} examples in {report.elapsed():.0f} s")
    if return_info:
        return out.pop("estimate"), out
    return out["estimate"]
