"""The distributions of the VAE, each with its hand-written gradients.

Notation follows the seed derivation (docs/seed.md; the formulas: docs/derivations.md):

* the approximate posterior q_phi(z|x) = N(mu, diag(sigma^2)) with
  sigma^2 = exp(logvar), sampled by reparameterisation z = mu + sigma * eps;
* the prior p(z) = N(0, I);
* the likelihood p_theta(x|z): Bernoulli with logits, or Gaussian with a
  mean and a log-variance.

Shapes: L Monte Carlo samples, B examples, D latent dimensions, P data
dimensions (pixels).  Every log-density returns one number per (sample,
example): shape (L, B), summed over the last axis.

Each ``name(...) -> (value, cache)`` has a ``name_backward(dvalue, cache)``
returning the gradients of a scalar loss with respect to its inputs, given
the gradient ``dvalue`` with respect to its output.
"""
import math

import numpy as np

from minivae import nn

# a Python float, so float32 arrays stay float32 (a NumPy float64 scalar would upcast them)
LOG_2PI = math.log(2 * math.pi)


# ---------------------------------------------------------------------------
# q_phi(z|x): diagonal Gaussian, reparameterised
# ---------------------------------------------------------------------------

def gaussian_sample(mu, logvar, eps):
    """Reparameterised sample z = mu + exp(logvar / 2) * eps  (Kingma & Welling 2013, Sec. 2.4).

    mu, logvar: (B, D); eps: (L, B, D), eps ~ N(0, I)  ->  z: (L, B, D).
    With eps fixed, z is a deterministic, differentiable function of (mu, logvar).
    """
    # BEGIN SOLUTION reparameterised_sample
    sigma = np.exp(0.5 * logvar)
    z = mu + sigma * eps                          # broadcast over the L samples
    cache = (sigma, eps)
    # END SOLUTION
    return z, cache


def gaussian_sample_backward(dz, cache):
    """Given dJ/dz (L, B, D), return dJ/dmu and dJ/dlogvar, both (B, D).

    Derivation: docs/derivations.md, "Reparameterised sample".
    """
    # BEGIN SOLUTION reparameterised_sample
    sigma, eps = cache
    dmu = dz.sum(axis=0)                          # dz/dmu = 1, summed over samples
    dsigma = (dz * eps).sum(axis=0)               # dz/dsigma = eps
    dlogvar = dsigma * 0.5 * sigma                # dsigma/dlogvar = sigma / 2
    # END SOLUTION
    return dmu, dlogvar


def gaussian_log_density(value, mean, logvar):
    """log N(value; mean, diag(exp(logvar))), summed over the last axis.

    log N = -1/2 sum_j [log 2 pi + logvar_j + (value_j - mean_j)^2 / exp(logvar_j)]

    One formula serves both Gaussians of the VAE; the arrays broadcast:

    * q_phi(z|x): value z (L, B, D), mean mu (B, D), logvar (B, D);
    * a Gaussian p_theta(x|z): value x (B, P), mean (L, B, P), logvar (P,).

    Returns log_N of the broadcast shape without its last axis, e.g. (L, B).
    """
    # BEGIN SOLUTION gaussian_log_density
    inv_var = np.exp(-logvar)
    diff = value - mean
    log_N = -0.5 * (LOG_2PI + logvar + diff * diff * inv_var).sum(axis=-1)
    cache = (inv_var, diff, np.shape(value), np.shape(mean), np.shape(logvar))
    # END SOLUTION
    return log_N, cache


def gaussian_log_density_backward(dlog_N, cache):
    """Given dJ/dlog_N, return dJ/dvalue, dJ/dmean, dJ/dlogvar, each of its input's shape.

    Derivation: docs/derivations.md, "Gaussian log-density".
    """
    # BEGIN SOLUTION gaussian_log_density
    inv_var, diff, value_shape, mean_shape, logvar_shape = cache
    dlog_N = dlog_N[..., None]                            # broadcast over the last axis
    ddiff = dlog_N * (-diff * inv_var)                    # d/ddiff of -1/2 diff^2 / var
    dvalue = sum_to_shape(ddiff, value_shape)             # diff = value - mean
    dmean = sum_to_shape(-ddiff, mean_shape)
    dlogvar = sum_to_shape(dlog_N * (-0.5 + 0.5 * diff * diff * inv_var), logvar_shape)
    # END SOLUTION
    return dvalue, dmean, dlogvar


def sum_to_shape(grad, shape):
    """Sum ``grad`` over the axes along which an input of ``shape`` was broadcast.

    If a (B, D) array was broadcast to (L, B, D) in the forward pass, each of
    its entries was used L times, so its gradient is the sum over those uses.
    """
    n_new_axes = grad.ndim - len(shape)
    grad = grad.sum(axis=tuple(range(n_new_axes)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


# ---------------------------------------------------------------------------
# p(z) = N(0, I) and the analytic KL(q || p)
# ---------------------------------------------------------------------------

def standard_normal_log_density(z):
    """log N(z; 0, I) = -1/2 sum_j (log 2 pi + z_j^2).   z: (L, B, D) -> log_p: (L, B)."""
    # BEGIN SOLUTION gaussian_log_density
    log_p = -0.5 * (LOG_2PI + z * z).sum(axis=-1)
    cache = z
    # END SOLUTION
    return log_p, cache


def standard_normal_log_density_backward(dlog_p, cache):
    """Given dJ/dlog_p (L, B), return dJ/dz (L, B, D) = -z dJ/dlog_p.

    Derivation: docs/derivations.md, "Gaussian log-density" (mean 0, logvar 0).
    """
    # BEGIN SOLUTION gaussian_log_density
    z = cache
    dz = dlog_p[..., None] * (-z)
    # END SOLUTION
    return dz


def kl_standard_normal(mu, logvar):
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) in closed form (Kingma & Welling 2013, App. B).

    KL = 1/2 sum_j (mu_j^2 + exp(logvar_j) - 1 - logvar_j)  >= 0.

    mu, logvar: (B, D)  ->  kl: (B,).

    Numerics: exp(logvar) - 1 is computed as np.expm1(logvar).  In a dimension the
    model leaves unused, q equals the prior (mu = 0, logvar = 0, KL = 0), and there
    exp(logvar) - 1 - logvar cancels to rounding noise, which can even be < 0 (float32,
    logvar = 1.2e-38: KL = -5.9e-39); expm1(logvar) - logvar keeps the small value
    accurate and is never < 0.
    """
    # BEGIN SOLUTION analytic_kl
    var_minus_1 = np.expm1(logvar)                # exp(logvar) - 1
    kl = 0.5 * (mu * mu + (var_minus_1 - logvar)).sum(axis=-1)
    cache = (mu, var_minus_1)
    # END SOLUTION
    return kl, cache


def kl_standard_normal_backward(dkl, cache):
    """Given dJ/dkl (B,), return dJ/dmu = dkl mu and dJ/dlogvar = dkl (exp(logvar) - 1) / 2.

    Derivation: docs/derivations.md, "Analytic KL".
    """
    # BEGIN SOLUTION analytic_kl
    mu, var_minus_1 = cache
    dkl = dkl[:, None]                            # broadcast over the D dimensions
    dmu = dkl * mu
    dlogvar = dkl * 0.5 * var_minus_1
    # END SOLUTION
    return dmu, dlogvar


# ---------------------------------------------------------------------------
# p_theta(x|z): Bernoulli from logits
# ---------------------------------------------------------------------------

def bernoulli_log_likelihood(x, logits):
    """log Bernoulli(x; sigmoid(logits)), summed over the P pixels.

    log p = sum_i [x_i logits_i - softplus(logits_i)],   softplus(l) = log(1 + exp(l))

    For binary x this is the exact log-probability.  For grey levels x in
    (0, 1) the same expression is still computed (and its gradient is still
    correct), but it is *not* a normalised log-likelihood: as a density on
    [0, 1] it integrates to less than 1, and the "continuous Bernoulli"
    (Loaiza-Ganem & Cunningham 2019) adds the log-normaliser
    log C(lambda) that this function omits.  It never overflows: the softplus sum is
    :func:`minivae.nn.softplus_sum_forward`, finite for any finite logit.

    x: (B, P); logits: (L, B, P)  ->  log_p: (L, B).
    """
    # BEGIN SOLUTION bernoulli_likelihood
    log_p = (x * logits).sum(axis=-1)             # x broadcast over the L samples
    softplus_sum, softplus_cache = nn.softplus_sum_forward(logits)
    log_p -= softplus_sum
    cache = (x, softplus_cache)
    # END SOLUTION
    return log_p, cache


def bernoulli_log_likelihood_backward(dlog_p, cache):
    """Given dJ/dlog_p (L, B), return dJ/dlogits (L, B, P) = dlog_p (x - sigmoid(logits)).

    Derivation: docs/derivations.md, "Bernoulli likelihood".
    """
    # BEGIN SOLUTION bernoulli_likelihood
    x, softplus_cache = cache
    dlogits = x * dlog_p[..., None]               # d(x l)/dl = x, broadcast over the P pixels
    dlogits -= nn.softplus_sum_backward(dlog_p, softplus_cache)   # d softplus(l)/dl = sigmoid(l)
    # END SOLUTION
    return dlogits


def bernoulli_mean(logits):
    """E[x | z] = sigmoid(logits)."""
    h, _ = nn.sigmoid_forward(logits)
    return h


# ---------------------------------------------------------------------------
# p_theta(x|z): Gaussian with mean and log-variance
# ---------------------------------------------------------------------------
# log N(x; mean, diag(exp(logvar))) is gaussian_log_density(x, mean, logvar)
# above, with x (B, P), mean (L, B, P) and logvar (P,): one formula, one place.
