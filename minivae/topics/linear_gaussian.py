"""The linear-Gaussian latent variable model (probabilistic PCA), where every quantity is exact.

The model::

    prior        p(z)   = N(0, I)                      z: (D,)
    likelihood   p(x|z) = N(W z + b, sigma^2 I)        x: (P,),  W: (P, D),  b: (P,)

It is the VAE's model with a linear decoder and a Gaussian likelihood of fixed
variance, and it is the one latent variable model in which everything the
seed calls intractable (docs/seed.md, steps 2-3) has a closed form
(Tipping & Bishop 1999; Bishop 2006, Sec. 12.2):

* the evidence        log p(x), with x ~ N(b, C), C = W W^T + sigma^2 I;
* the posterior       p(z|x) = N(G^-1 W^T (x - b), sigma^2 G^-1), G = W^T W + sigma^2 I;
* the ELBO            L(q) of any Gaussian q(z|x) = N(m, S);
* the gap             KL(q(z|x) || p(z|x)), so that the seed's Eq. 5 (docs/seed.md,
  step 6), KL = -L + log p(x), can be checked to rounding error;
* the maximum-likelihood W, b, sigma^2 of a data set.

Each closed form is computed on its own, from its own formula, so that tests
comparing them check the identities rather than restate them.  Derivations:
docs/evaluation.md.  Linear algebra goes through Cholesky factors and
triangular solves (never an explicit inverse or a determinant); everything is
vectorised over the B rows of x and computed in float64.

:func:`vae_from_ppca` builds a :class:`minivae.vae.VAE` (no hidden layer,
Gaussian likelihood, fixed obs_logvar = log sigma^2) whose decoder *is* this
model, so the VAE's Monte Carlo estimators can be compared with the exact
values; :func:`ppca_from_vae` reads the model back out of such a VAE.
"""
import math

import numpy as np
from scipy.linalg import cho_factor, cho_solve

from minivae.utils.validation import (check_count, check_finite, check_number, check_numeric_array,
                                      check_rng, check_shape, check_type)
from minivae.distributions import LOG_2PI
from minivae.vae import VAE



# ---------------------------------------------------------------------------
# Input checks (public entry points)
# ---------------------------------------------------------------------------

def check_model(W, b, sigma2):
    """Return W (P, D), b (P,), sigma2 (float) as float64, or raise a ValueError saying why not."""
    W = check_shape(check_numeric_array(W, "W"), "W", ("P", "D")).astype(np.float64)
    b = check_shape(check_numeric_array(b, "b"), "b (one per row of W)", (W.shape[0],))
    sigma2 = check_number(sigma2, "sigma2 (the noise variance)", low=0, low_inclusive=False)
    return check_finite(W, "W"), check_finite(b.astype(np.float64), "b"), sigma2


def _check_x(x, P):
    x = check_shape(check_numeric_array(x, "x"), "x", (None, P))      # one example per row
    return check_finite(x.astype(np.float64), "x")


def _check_q(q_mean, q_cov, B, D):
    """q_mean (B, D); q_cov (B, D, D) or one (D, D) for every row, symmetric positive definite."""
    q_mean = check_shape(check_numeric_array(q_mean, "q_mean"), "q_mean", (B, D))
    q_cov = check_numeric_array(q_cov, "q_cov")
    if q_cov.shape not in ((D, D), (B, D, D)):
        raise ValueError(f"q_cov must be an array of shape (D, D) = ({D}, {D}) or (B, D, D) = "
                         f"({B}, {D}, {D}) (a diagonal q with variances v is q_cov = v[..., None] * "
                         f"np.eye(D)), got an array of shape {q_cov.shape}")
    q_mean = check_finite(q_mean.astype(np.float64), "q_mean")
    q_cov = check_finite(q_cov.astype(np.float64), "q_cov")
    if not np.allclose(q_cov, np.swapaxes(q_cov, -1, -2), rtol=1e-10, atol=1e-12):
        raise ValueError("q_cov must be symmetric, got a matrix that is not")
    try:
        chol = np.linalg.cholesky(q_cov)
    except np.linalg.LinAlgError:
        raise ValueError("q_cov must be positive definite, got one whose Cholesky factorisation "
                         "fails") from None
    return q_mean, np.broadcast_to(q_cov, (B, D, D)), np.broadcast_to(chol, (B, D, D))


def _log_det_from_cholesky(chol):
    """log|A| = 2 sum_i log L_ii for A = L L^T;  chol: (..., n, n) -> (...)."""
    return 2.0 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(axis=-1)


# ---------------------------------------------------------------------------
# The model: sampling, evidence, posterior
# ---------------------------------------------------------------------------

def sample(n, W, b, sigma2, rng):
    """n draws x = W z + b + sigma * noise with z, noise ~ N(0, I):  returns x (n, P) and z (n, D).

    Rows are examples, so in code the mean is z @ W.T + b.
    """
    W, b, sigma2 = check_model(W, b, sigma2)
    n = check_count(n, "n", low=0)
    rng = check_rng(rng)
    z = rng.standard_normal((n, W.shape[1]))
    noise = rng.standard_normal((n, W.shape[0]))
    x = z @ W.T + b + math.sqrt(sigma2) * noise
    return x, z


def log_marginal_likelihood(x, W, b, sigma2):
    """Exact log p(x) = log N(x; b, C) with C = W W^T + sigma^2 I  (Bishop 2006, Eq. 12.35-12.36).

    z ~ N(0, I) and x = W z + b + noise are jointly Gaussian, so x is Gaussian
    with mean b and covariance E[(W z + noise)(W z + noise)^T] = W W^T + sigma^2 I::

        log p(x) = -1/2 [P log 2 pi + log|C| + (x - b)^T C^-1 (x - b)]

    computed from the Cholesky factor C = L L^T: log|C| = 2 sum_i log L_ii and
    (x - b)^T C^-1 (x - b) = ||L^-1 (x - b)||^2 (one triangular solve).

    x: (B, P) -> log_px: (B,).
    """
    W, b, sigma2 = check_model(W, b, sigma2)
    x = _check_x(x, W.shape[0])
    P = W.shape[0]
    C = W @ W.T + sigma2 * np.eye(P)
    L = np.linalg.cholesky(C)
    # (P, B): L^-1 (x - b).  np.linalg.solve, not scipy's solve_triangular: the same result
    # here, and the latter costs milliseconds per call on small matrices (scipy 1.17)
    white = np.linalg.solve(L, (x - b).T)
    log_px = -0.5 * (P * LOG_2PI + _log_det_from_cholesky(L) + (white * white).sum(axis=0))
    return log_px


def posterior(x, W, b, sigma2):
    """The exact posterior p(z|x) = N(G^-1 W^T (x - b), sigma^2 G^-1), G = W^T W + sigma^2 I.

    (Tipping & Bishop 1999; Bishop 2006, Eq. 12.41-12.42.)  Completing the
    square in log p(z) + log p(x|z) = -1/2 [z^T z + ||x - b - W z||^2 / sigma^2] + const
    gives the precision (I + W^T W / sigma^2) = G / sigma^2 and the mean
    (sigma^2 G^-1) W^T (x - b) / sigma^2.  The covariance does not depend on x.

    x: (B, P) -> mean: (B, D), cov: (D, D).
    """
    W, b, sigma2 = check_model(W, b, sigma2)
    x = _check_x(x, W.shape[0])
    D = W.shape[1]
    G = W.T @ W + sigma2 * np.eye(D)
    G_factor = cho_factor(G, lower=True)
    mean = cho_solve(G_factor, W.T @ (x - b).T).T            # rows: G^-1 W^T (x_b - b)
    cov = sigma2 * cho_solve(G_factor, np.eye(D))
    return mean, cov


def mean_field_posterior(x, W, b, sigma2):
    """The best diagonal Gaussian q (smallest KL(q || p(z|x))): mean and variances.

    For a Gaussian target with mean m* and precision Lambda = G / sigma^2, the
    factorised q minimising KL(q || p) has q_j = N(m*_j, 1 / Lambda_jj)
    (Bishop 2006, Sec. 10.1.2, Eq. 10.12-10.13): the exact mean and the
    variance sigma^2 / G_jj.  It equals the posterior when W has orthogonal
    columns (then G is diagonal).  This is what a VAE with a linear encoder
    and a diagonal q can represent at best, since the posterior mean is an
    affine function of x and the variances are constant.

    x: (B, P) -> mean: (B, D), var: (D,).
    """
    W, b, sigma2 = check_model(W, b, sigma2)
    mean, _ = posterior(x, W, b, sigma2)
    G_diag = (W * W).sum(axis=0) + sigma2                       # diag(W^T W) + sigma^2
    var = sigma2 / G_diag
    return mean, var


# ---------------------------------------------------------------------------
# ELBO and KL of a Gaussian q(z|x) = N(m, S), in closed form
# ---------------------------------------------------------------------------

def elbo(x, W, b, sigma2, q_mean, q_cov):
    """Closed-form ELBO L(q) = E_q[log p(x|z) + log p(z) - log q(z|x)] for q = N(m, S).

    With r = x - b - W m (docs/evaluation.md, "The ELBO in closed form")::

        E_q[log p(x|z)]  = -P/2 log(2 pi sigma^2) - (||r||^2 + tr(W^T W S)) / (2 sigma^2)
        E_q[log p(z)]    = -D/2 log 2 pi - (||m||^2 + tr S) / 2
        -E_q[log q(z|x)] =  D/2 (1 + log 2 pi) + log|S| / 2          (entropy of q)

    using E_q[(z - m)(z - m)^T] = S and E||A z + c||^2 = ||A m + c||^2 + tr(A S A^T).

    Parameters
    ----------
    x : array (B, P)
    W : array (P, D); b : array (P,); sigma2 : float > 0
    q_mean : array (B, D)
        m, one mean per example.
    q_cov : array (B, D, D) or (D, D)
        S, full covariances (symmetric positive definite); a diagonal q with
        variances v is ``v[..., None] * np.eye(D)``.

    Returns
    -------
    elbo : array (B,)
    """
    W, b, sigma2 = check_model(W, b, sigma2)
    x = _check_x(x, W.shape[0])
    (B, P), D = x.shape, W.shape[1]
    m, S, S_chol = _check_q(q_mean, q_cov, B, D)
    r = x - b - m @ W.T                                           # (B, P) residual at the mean
    tr_WtW_S = np.einsum("ij,bji->b", W.T @ W, S)                 # tr(W^T W S)
    expected_log_px_z = -0.5 * P * math.log(2 * math.pi * sigma2) - ((r * r).sum(axis=1) + tr_WtW_S) / (2 * sigma2)
    expected_log_pz = -0.5 * D * LOG_2PI - 0.5 * ((m * m).sum(axis=1) + np.trace(S, axis1=1, axis2=2))
    entropy_q = 0.5 * D * (1 + LOG_2PI) + 0.5 * _log_det_from_cholesky(S_chol)
    return expected_log_px_z + expected_log_pz + entropy_q


def kl_to_posterior(x, W, b, sigma2, q_mean, q_cov):
    """KL(q(z|x) || p(z|x)) between q = N(m, S) and the exact posterior N(m*, Sigma*), in closed form.

    For two D-dimensional Gaussians (Bishop 2006, Exercise 2.13 / any text)::

        KL = 1/2 [tr(Sigma*^-1 S) + (m* - m)^T Sigma*^-1 (m* - m) - D + log|Sigma*| - log|S|]

    with Sigma*^-1 = G / sigma^2 and log|Sigma*| = D log sigma^2 - log|G|.
    Computed from the posterior alone, never from the ELBO or log p(x), so that
    Eq. 5 of the seed, KL = -L + log p(x), is a real check of three formulas.

    Shapes as in :func:`elbo`; returns kl: (B,), >= 0, zero iff q = p(z|x).
    """
    W, b, sigma2 = check_model(W, b, sigma2)
    x = _check_x(x, W.shape[0])
    B, D = x.shape[0], W.shape[1]
    m, S, S_chol = _check_q(q_mean, q_cov, B, D)
    post_mean, _ = posterior(x, W, b, sigma2)
    G = W.T @ W + sigma2 * np.eye(D)
    G_chol = np.linalg.cholesky(G)
    d = post_mean - m                                             # (B, D)
    trace_term = np.einsum("ij,bji->b", G, S) / sigma2            # tr(Sigma*^-1 S)
    mahalanobis = np.einsum("bi,ij,bj->b", d, G, d) / sigma2      # d^T Sigma*^-1 d
    log_det_post = D * math.log(sigma2) - _log_det_from_cholesky(G_chol)
    return 0.5 * (trace_term + mahalanobis - D + log_det_post - _log_det_from_cholesky(S_chol))


# ---------------------------------------------------------------------------
# Maximum likelihood (Tipping & Bishop 1999)
# ---------------------------------------------------------------------------

def max_likelihood(x, z_dim):
    """Maximum-likelihood W, b, sigma^2 of pPCA with D = z_dim latent dimensions, in closed form.

    With the sample mean xbar and covariance S = 1/N sum_n (x_n - xbar)(x_n - xbar)^T,
    eigenvalues lambda_1 >= ... >= lambda_P and eigenvectors U (Tipping & Bishop
    1999, Eq. 7-8; Bishop 2006, Eq. 12.45-12.46)::

        b        = xbar
        sigma^2  = 1/(P - D) sum_{j > D} lambda_j        (the mean discarded variance)
        W        = U_D (Delta_D - sigma^2 I)^{1/2}       (up to a rotation R, here I)

    with U_D the first D eigenvectors and Delta_D = diag(lambda_1, ..., lambda_D).

    The mean log-likelihood there is
    -1/2 [P log 2 pi + sum_{j <= D} log lambda_j + (P - D) log sigma^2 + P]
    (docs/evaluation.md).

    Parameters
    ----------
    x : array (N, P), N >= 2
    z_dim : int, 1 <= z_dim < P

    Returns
    -------
    W : array (P, D); b : array (P,); sigma2 : float
    """
    x = check_shape(check_numeric_array(x, "x"), "x", ("N", "P"))
    if x.shape[0] < 2:
        raise ValueError(f"x must be an array of shape (N, P) with N >= 2 examples, got an array "
                         f"of shape {x.shape}")
    x = check_finite(x.astype(np.float64), "x")
    N, P = x.shape
    D = check_count(z_dim, "z_dim", low=1)
    if D >= P:
        raise ValueError(f"z_dim must be an integer with 1 <= z_dim < P = {P}, got {z_dim!r}")
    b = x.mean(axis=0)
    centred = x - b
    S = centred.T @ centred / N
    eigenvalues, eigenvectors = np.linalg.eigh(S)                # ascending order
    eigenvalues, eigenvectors = eigenvalues[::-1], eigenvectors[:, ::-1]
    sigma2 = float(eigenvalues[D:].mean())
    if not sigma2 > 0:
        raise ValueError(f"x must have (numerically) some variance outside {D} directions, got "
                         f"sigma^2 = {sigma2:g}; use a smaller z_dim")
    W = eigenvectors[:, :D] * np.sqrt(np.maximum(eigenvalues[:D] - sigma2, 0.0))
    return W, b, sigma2


# ---------------------------------------------------------------------------
# The same model as a minivae VAE
# ---------------------------------------------------------------------------

def vae_from_ppca(W, b, sigma2, *, dtype=np.float64, seed=0):
    """A VAE whose decoder is this pPCA model and whose encoder is its best diagonal q.

    The VAE has ``hidden=()`` (one affine map each way), ``likelihood="gaussian"``
    and a fixed ``obs_logvar = log sigma^2``.  Its decoder computes
    ``z @ params["decoder.0.W"] + params["decoder.0.b"]``, so
    decoder.0.W = W^T (D, P) and decoder.0.b = b.

    The encoder outputs mu = x A + c and logvar = const, the mean-field
    posterior of :func:`mean_field_posterior`: A = W G^-1 (P, D) (rows: G^-1 W^T x),
    c = -b A, and logvar_j = log(sigma^2 / G_jj) through the bias (zero
    weights).  With orthogonal columns in W this q is the exact posterior.
    The encoder's parameters may be overwritten to study other q.
    """
    W, b, sigma2 = check_model(W, b, sigma2)
    P, D = W.shape
    model = VAE(P, D, hidden=(), likelihood="gaussian", activation="identity",
                dtype=dtype, seed=seed, obs_logvar=math.log(sigma2))
    G = W.T @ W + sigma2 * np.eye(D)
    A = cho_solve(cho_factor(G, lower=True), W.T).T                # (P, D) = W G^-1
    logvar = np.log(sigma2 / np.diag(G))
    model.params["decoder.0.W"][...] = W.T
    model.params["decoder.0.b"][...] = b
    model.params["encoder.0.W"][...] = np.concatenate([A, np.zeros((P, D))], axis=1)
    model.params["encoder.0.b"][...] = np.concatenate([-b @ A, logvar])
    return model


def ppca_from_vae(model):
    """W (P, D), b (P,), sigma2 of a VAE with an affine decoder and a fixed-variance Gaussian likelihood."""
    check_type(model, "model", VAE, "a minivae.VAE")
    if model.hidden != () or model.likelihood != "gaussian" or model.obs_logvar == "learned":
        raise ValueError("model must be a VAE with hidden=(), likelihood='gaussian' and a fixed "
                         f"obs_logvar (a pPCA model), got hidden={model.hidden}, likelihood={model.likelihood!r}, "
                         f"obs_logvar={model.obs_logvar!r}")
    W = model.params["decoder.0.W"].astype(np.float64).T
    b = model.params["decoder.0.b"].astype(np.float64)
    return W, b, math.exp(float(model.obs_logvar))
