"""Diagnostics of a trained VAE: which latent dimensions it uses, and how good its encoder is.

Three questions, each one function (tutorials 09 and 11):

* how many nats each latent dimension costs:  :func:`kl_per_dimension`,
  ``KL_bd = KL(q(z_d|x_b) || N(0, 1)) = 1/2 (mu_bd^2 + sigma_bd^2 - 1 - log sigma_bd^2)``,
  whose sum over d is the analytic KL of estimator B;
* which dimensions carry information about x:  :func:`active_units`, the
  criterion of Burda, Grosse & Salakhutdinov (2016, Sec. 5.2),
  ``A_d = Cov_x(E_q[z_d]) = Var_b(mu_bd)``, unit d active if A_d > 0.01;
* how far the encoder's q_phi(z|x) is from the best Gaussian for each x:
  :func:`local_elbo` (the ELBO estimator B for free per-example parameters
  (mu, logvar) instead of the encoder's outputs, with its gradient, for an
  optimiser of ``minivae.optim`` to ascend; tutorial 11).  With
  q* = argmax_q ELBO(q) per example, Cremer, Li & Duvenaud (2018) split ::

      log p(x) - ELBO(q_phi) = [log p(x) - ELBO(q*)] + [ELBO(q*) - ELBO(q_phi)]
                             =  approximation gap   +   amortisation gap.

  :func:`local_log_weights` gives the importance weights with q* as the
  proposal, for an importance-sampled log p(x).

Shapes: B examples, P data dimensions, D latent dimensions, L samples.
"""
import numpy as np

from minivae import distributions as dist
from minivae.utils.validation import (check_finite, check_number, check_numeric_array, check_shape,
                                      check_type)
from minivae.evaluate import log_weights_and_cache
from minivae.vae import VAE

ACTIVE_THRESHOLD = 1e-2      # Burda et al. (2016), Sec. 5.2


def _check_mu_logvar(mu, logvar, shape=("B", "D")):
    """mu and logvar: finite real arrays of ``shape``, the same for both (the shared rules)."""
    mu = check_finite(check_shape(check_numeric_array(mu, "mu"), "mu", shape), "mu")
    shape = mu.shape if shape == ("B", "D") else shape
    logvar = check_shape(check_numeric_array(logvar, "logvar"), "logvar (shaped like mu)", shape)
    return mu, check_finite(logvar, "logvar")


def kl_per_dimension(mu, logvar):
    """KL(q(z_d|x_b) || N(0, 1)) for every example b and latent dimension d.

    KL_bd = 1/2 (mu_bd^2 + exp(logvar_bd) - 1 - logvar_bd)   (Kingma & Welling 2013, App. B)

    The sum over d is ``distributions.kl_standard_normal(mu, logvar)``; the mean over
    b of column d is what dimension d costs on average, in nats ("rate" per dimension).
    It *is* that function, called with every (b, d) pair as an example of one dimension:
    the formula lives in one place (an assignment's stub of the KL reaches this too).

    mu, logvar: (B, D)  ->  kl: (B, D), float64.
    """
    mu, logvar = _check_mu_logvar(mu, logvar)
    mu, logvar = mu.astype(np.float64), logvar.astype(np.float64)
    kl, _ = dist.kl_standard_normal(mu.reshape(-1, 1), logvar.reshape(-1, 1))   # (B * D,)
    return kl.reshape(mu.shape)


def active_units(mu, threshold=ACTIVE_THRESHOLD):
    """The activity A_d = Var_b(mu_bd) of every latent dimension and which ones are active.

    Burda, Grosse & Salakhutdinov (2016, Sec. 5.2): A_d = Cov_x(E_{q(z|x)}[z_d]);
    E_q[z_d] = mu_d for a Gaussian q, and the covariance over the data is the
    variance over the rows of ``mu`` (divided by B).  A dimension whose mean
    does not move with x (A_d <= threshold) tells the decoder nothing about x.

    mu: (B, D) posterior means of B >= 2 examples  ->  activity: (D,) float64,
    active: (D,) bool, activity > threshold.
    """
    mu = check_finite(check_numeric_array(mu, "mu"), "mu")
    if mu.ndim != 2 or mu.shape[0] < 2:
        raise ValueError(f"mu must be an array of shape (B, D) with B >= 2 examples, got an array "
                         f"of shape {mu.shape}")
    threshold = check_number(threshold, "threshold", low=0)
    activity = mu.astype(np.float64).var(axis=0)
    return activity, activity > threshold


def _given_q(mu, logvar):
    """The (h, encoder_cache) pair VAE.forward takes, for a q given by mu and logvar, not encoded."""
    return np.concatenate([mu, logvar], axis=1), None


def _check_local(model, x, mu, logvar, eps):
    x = check_type(model, "model", VAE, "a minivae.VAE").check_data(x)
    mu, logvar = _check_mu_logvar(mu, logvar, (x.shape[0], model.z_dim))     # (B, z_dim)
    eps = model.check_noise(eps, x.shape[0])
    return x, mu.astype(model.dtype), logvar.astype(model.dtype), eps


def local_elbo(model, x, mu, logvar, eps, *, grad=True):
    """Estimator B of the ELBO with q(z|x_b) = N(mu_b, diag exp(logvar_b)) given, not encoded.

    ELBO_b ~= 1/L sum_l log p_theta(x_b | z_lb) - KL(q_b || N(0, I)),
    z_lb = mu_b + exp(logvar_b / 2) eps_lb.

    With mu, logvar = model.encode(x) this is ``model.elbo(x, eps=eps)``.  The
    decoder is fixed; only q varies.  The gradient is that of sum_b ELBO_b, so
    row b of dmu, dlogvar is d ELBO_b / d(mu_b, logvar_b): each example's q is
    optimised on its own.  It is the model's own forward (with q in place of the
    encoder's output) and ``VAE.backward_to_encoder_output``: the likelihood,
    decoder, reparameterisation and KL backward, without the encoder
    (docs/derivations.md, "Gradient of the ELBO estimators").

    x: (B, P); mu, logvar: (B, D); eps: (L, B, D)  ->  elbo: (B,), and with
    ``grad=True`` also dmu, dlogvar: (B, D).
    """
    x, mu, logvar, eps = _check_local(model, x, mu, logvar, eps)
    elbo, cache = model.forward(x, eps, estimator="B", encoded=_given_q(mu, logvar))
    if not grad:
        return elbo
    # objective sum_b elbo_b, so d/d elbo_b = 1: the model's own backward, stopped at h = [mu, logvar]
    dh, _ = model.backward_to_encoder_output(cache, np.ones(len(x), dtype=model.dtype))
    return elbo, dh[:, :model.z_dim], dh[:, model.z_dim:]


def local_log_weights(model, x, mu, logvar, eps):
    """Importance log-weights log p(x|z) + log p(z) - log q(z|x) with a given q = N(mu, diag exp(logvar)).

    As ``evaluate.log_weights``, but with the proposal q given instead of the
    encoder's: log-mean-exp over the L rows is an importance-sampled estimate
    of log p(x) whose expectation is the IWAE bound of that q.

    x: (B, P); mu, logvar: (B, D); eps: (L, B, D)  ->  log_w: (L, B), float64.
    """
    x, mu, logvar, eps = _check_local(model, x, mu, logvar, eps)
    log_w, _ = log_weights_and_cache(model, x, eps, encoded=_given_q(mu, logvar))
    return log_w
