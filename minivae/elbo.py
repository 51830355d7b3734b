"""The ELBO estimators' own terms, forward and backward (Kingma & Welling 2013, Eq. 6 and 7; IWAE).

The VAE (minivae.vae) computes log p(x|z) for L samples z of q(z|x) and hands it here::

    estimator B, estimator="B":  elbo = 1/L sum_l log p(x|z(l)) - beta KL(q(z|x) || N(0, I))
    estimator A, estimator="A":        elbo = 1/L sum_l [log p(x|z(l)) + beta (log p(z(l)) - log q(z(l)|x))]
    IWAE bound, estimator="iwae":       elbo = log 1/L sum_l w_l,  log w_l = log p(x|z(l)) + log p(z(l)) - log q(z(l)|x)

Each ``estimator_*_forward`` returns elbo (B,) and a dict the VAE adds to its cache;
each ``estimator_*_backward`` takes delbo (B,) and that cache and returns the
gradients of the estimator's own terms: dlog_px_z (L, B), dz, dmu and dlogvar
(B, D).  The VAE's backward takes them on through the likelihood, the decoder and
the reparameterisation.  Derivation: docs/derivations.md, "Gradient of the ELBO estimators"
and "Gradient of the IWAE bound" (Burda, Grosse & Salakhutdinov 2016).
"""
import numpy as np

from minivae import distributions as dist

def estimator_b_forward(log_px_z, mu, logvar, beta):
    """Estimator B: elbo = mean_l log_px_z - beta KL(q(z|x) || N(0, I)), the KL in closed form.

    log_px_z: (L, B); mu, logvar: (B, D); beta: float.  Returns elbo (B,) and a dict
    for the VAE's cache holding kl_qp (B,) and whatever estimator_b_backward needs.
    """
    # BEGIN SOLUTION estimator_b
    kl_qp, kl_cache = dist.kl_standard_normal(mu, logvar)
    elbo = log_px_z.mean(axis=0) - beta * kl_qp
    return elbo, {"kl_qp": kl_qp, "kl_cache": kl_cache}
    # END SOLUTION


def estimator_b_backward(delbo, cache):
    """Given delbo (B,) and the VAE's cache, return dlog_px_z (L, B), dz, dmu and dlogvar (B, D).

    dz is the gradient z gets from the estimator's own terms: 0 for estimator B (z
    appears only in log_px_z, whose gradient the VAE's backward takes on from here).
    ``cache["eps"]`` is (L, B, D) and ``cache["settings"]["beta"]`` is beta.
    Derivation: docs/derivations.md, "Gradient of the ELBO estimators".
    """
    # BEGIN SOLUTION estimator_b
    L, B, _ = cache["eps"].shape
    beta = cache["settings"]["beta"]
    dlog_px_z = np.broadcast_to(delbo / L, (L, B))   # the mean over L samples gives 1/L
    dkl_qp = -beta * delbo
    dmu, dlogvar = dist.kl_standard_normal_backward(dkl_qp, cache["kl_cache"])
    return dlog_px_z, 0, dmu, dlogvar
    # END SOLUTION


def estimator_a_forward(log_px_z, z, mu, logvar, beta):
    """Estimator A: elbo = mean_l [log_px_z + beta (log p(z) - log q(z|x))], all Monte Carlo.

    log_px_z: (L, B); z: (L, B, D); mu, logvar: (B, D); beta: float.  Returns elbo
    (B,) and a dict for the VAE's cache holding log_pz and log_qz (L, B),
    posterior_cache (the cache of gaussian_log_density(z, mu, logvar), which
    minivae.topics.gradient_estimators reuses) and whatever estimator_a_backward needs.
    """
    # BEGIN SOLUTION estimator_a
    log_pz, prior_cache = dist.standard_normal_log_density(z)
    log_qz, posterior_cache = dist.gaussian_log_density(z, mu, logvar)
    elbo = (log_px_z + beta * (log_pz - log_qz)).mean(axis=0)
    return elbo, {"log_pz": log_pz, "log_qz": log_qz, "prior_cache": prior_cache,
                  "posterior_cache": posterior_cache}
    # END SOLUTION


def estimator_a_backward(delbo, cache):
    """Given delbo (B,) and the VAE's cache, return dlog_px_z (L, B), dz (L, B, D), dmu, dlogvar (B, D).

    delbo may also be (L, B), one upstream gradient per sample (sample l of example b
    then gets delbo[l, b] / L): iwae_backward uses that for its importance weights.

    dz, dmu and dlogvar are the gradients from the estimator's own terms (log p(z)
    and log q(z|x)); the decoder's part of dz is added by the VAE's backward.
    Derivation: docs/derivations.md, "Gradient of the ELBO estimators".
    """
    # BEGIN SOLUTION estimator_a
    L, B, _ = cache["eps"].shape
    beta = cache["settings"]["beta"]
    dlog_px_z = np.broadcast_to(delbo / L, (L, B))   # the mean over L samples gives 1/L
    dlog_pz = beta * dlog_px_z
    dlog_qz = -beta * dlog_px_z
    dz = dist.standard_normal_log_density_backward(dlog_pz, cache["prior_cache"])
    dz_q, dmu, dlogvar = dist.gaussian_log_density_backward(dlog_qz, cache["posterior_cache"])
    return dlog_px_z, dz + dz_q, dmu, dlogvar
    # END SOLUTION


def log_mean_exp(log_w):
    """log 1/L sum_l exp(log_w[l]) over axis 0, stably, and the normalised weights.

    log_w: (L, B) -> (B,) and weights (L, B) = w_l / sum_l' w_l' (each column sums to 1).
    The largest log-weight of each column is subtracted before exp, so the largest
    term is exp(0) = 1 and nothing overflows; NumPy only (the student path has no SciPy).
    """
    L = log_w.shape[0]
    log_w_max = log_w.max(axis=0)                     # (B,)
    w_shifted = np.exp(log_w - log_w_max)             # (L, B), in (0, 1]
    sum_w = w_shifted.sum(axis=0)                     # (B,), in [1, L]
    weights = w_shifted / sum_w
    return log_w_max + np.log(sum_w) - np.log(L), weights


def iwae_forward(log_px_z, z, mu, logvar):
    """The IWAE bound's estimate: elbo = log 1/L sum_l w_l (Burda, Grosse & Salakhutdinov 2016, Eq. 8).

    log w_l = log p(x|z(l)) + log p(z(l)) - log q(z(l)|x): the terms of estimator A,
    combined by a log-mean-exp instead of a mean.  L = 1 gives estimator A exactly;
    its expectation L_k (k = L) rises towards log p(x) as L grows.

    log_px_z: (L, B); z: (L, B, D); mu, logvar: (B, D).  Returns elbo (B,) and a dict
    for the VAE's cache holding log_pz, log_qz, log_w and the normalised importance
    weights (L, B), with the prior's and the posterior's density caches.
    """
    # estimator A's terms log p(z(l)) and log q(z(l)|x), with their caches (beta = 1)
    _, terms = estimator_a_forward(log_px_z, z, mu, logvar, 1.0)
    log_w = log_px_z + (terms["log_pz"] - terms["log_qz"])
    elbo, weights = log_mean_exp(log_w)
    terms.update(log_w=log_w, weights=weights)
    return elbo, terms


def iwae_backward(delbo, cache):
    """Given delbo (B,) and the VAE's cache, return dlog_px_z (L, B), dz (L, B, D), dmu, dlogvar (B, D).

    d/dlog w_l of log 1/L sum_l' w_l' is the normalised weight w~_l = w_l / sum_l' w_l',
    so each sample's terms get delbo w~_l where estimator A gives them delbo / L.
    Derivation: docs/derivations.md, "Gradient of the IWAE bound".
    """
    L = cache["weights"].shape[0]
    dlog_w = delbo * cache["weights"]                 # (L, B): d log-mean-exp / d log w_l = w~_l
    # estimator A's backward gives each sample delbo / L; a per-sample delbo of L dlog_w
    # gives it dlog_w instead, through the same chain rule for log p(z) and log q(z|x)
    return estimator_a_backward(L * dlog_w, cache)
