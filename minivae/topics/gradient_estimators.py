"""Gradient estimators: two unbiased estimators of the encoder gradient, score function vs reparameterisation.

(Not to be confused with the two estimators A and B of the ELBO's *value*,
which live in :mod:`minivae.vae`.)  The encoder parameters phi enter the ELBO
through the distribution the expectation is taken over (docs/seed.md, step 9)::

    grad_phi L = grad_phi E_{q_phi(z|x)} [ f_phi(z) ],   f_phi(z) = log p(x, z) - log q_phi(z|x).

Two ways to move the gradient inside the expectation, each giving a Monte Carlo
estimator from one draw z = mu + sigma * eps, eps ~ N(0, I):

* score function (REINFORCE; Williams 1992), from grad q = q grad log q and
  E_q[grad_phi log q_phi(z|x)] = 0::

      g_SF = f(z) * grad_phi log q_phi(z|x)          (z held fixed: no derivative through z)

* reparameterisation (Kingma & Welling 2013, Sec. 2.4): the expectation is
  over eps, which does not depend on phi, so ::

      g_RP = grad_phi f_phi(mu_phi(x) + sigma_phi(x) * eps)     (the chain rule through z)

  which is what :meth:`minivae.vae.VAE.backward` computes for estimator A;
  :func:`reparameterised_gradients` calls its first half,
  ``VAE.backward_to_encoder_output``, and keeps the encoder's gradient per draw.

Both have expectation grad_phi L; they differ in variance, and the
reparameterised one is usually far smaller because it uses the derivative of
f, not only its value.  :func:`estimator_variances` measures both over N draws.

Shapes: N draws, B examples, P = x_dim, D = z_dim.  A "draw" is one eps of
shape (B, D), i.e. one estimate of the gradient of the batch mean
(1/B) sum_b L(x_b), the quantity ``VAE.loss_and_grads`` returns (negated).
To keep one gradient per draw, the N draws are folded into the rows: the
model runs on the N B rows of x repeated N times, each with one sample
(L = 1), so every forward and backward function sees its usual 2-D shapes,
and only the last step, the sum over rows into the encoder's parameter
gradients, is taken per draw (``nn.mlp_backward(..., n_groups=N)``).
Per-draw gradients are dicts with the encoder's parameter names and arrays
of shape ``(N, *param.shape)``.
"""
import numpy as np

from minivae import distributions as dist
from minivae import nn
from minivae.utils.validation import check_count, check_rng, check_type
from minivae.vae import VAE
from minivae.evaluate import log_weights_and_cache


def encoder_names(model):
    """The names of the encoder's parameters phi, in ``model.params`` order."""
    return [name for name in model.params if name.startswith("encoder.")]


def _check(model, x, eps, name="eps"):
    x = check_type(model, "model", VAE, "a minivae.VAE").check_data(x)
    return x, model.check_noise(eps, x.shape[0], name)


def _fold(x, eps):
    """x (B, P) and eps (N, B, D) -> the rows x_rows (N B, P) and eps_rows (1, N B, D).

    Row n B + b is example b in draw n; one sample per row.
    """
    N, B, D = eps.shape
    return np.tile(x, (N, 1)), eps.reshape(1, N * B, D)


def encoder_backward_per_draw(model, dh, encoder_cache, n_draws):
    """The encoder's backward with one parameter gradient per draw: dh (N B, 2D) -> dict of ``(N, *shape)``.

    ``nn.mlp_backward`` with ``n_groups=n_draws``, its keys in ``model.params`` order.
    Summed over the N draws it equals the encoder gradients of ``nn.mlp_backward``.
    """
    _, grads = nn.mlp_backward(dh, encoder_cache, "encoder", model.activation, input_grad=False,
                               n_groups=n_draws)
    return {name: grads[name] for name in encoder_names(model)}


def log_q(model, x, z):
    """log q_phi(z|x) for each draw and example: x (B, P), z (N, B, D) -> (N, B)."""
    x, z = _check(model, x, z, "z")
    mu, logvar = model.encode(x)
    value, _ = dist.gaussian_log_density(z, mu, logvar)
    return value


def encoder_score(model, x, z):
    """The score grad_phi (1/B) sum_b log q_phi(z_nb | x_b) for each draw n, with z held fixed.

    d log q / d mu = (z - mu) / sigma^2 and d log q / d logvar = ((z - mu)^2 / sigma^2 - 1) / 2
    (docs/derivations.md, "Gaussian log-density"), then back through the encoder.
    Its expectation under z ~ q is zero, which is why the score-function
    estimator is unbiased.

    x: (B, P), z: (N, B, D) -> dict of ``(N, *param.shape)`` over the encoder's parameters.
    """
    x, z = _check(model, x, z, "z")
    N, B, D = z.shape
    x_rows, z_rows = _fold(x, z)
    h, encoder_cache = nn.mlp_forward(model.params, "encoder", model.n_layers, x_rows, model.activation)
    mu, logvar = h[:, :D], h[:, D:]
    _, q_cache = dist.gaussian_log_density(z_rows, mu, logvar)
    dlog_q = np.full((1, N * B), 1.0 / B, dtype=model.dtype)          # d/dlog_q of (1/B) sum_b log_q
    _, dmu, dlogvar = dist.gaussian_log_density_backward(dlog_q, q_cache)   # z is a constant here
    dh = np.concatenate([dmu, dlogvar], axis=1)
    return encoder_backward_per_draw(model, dh, encoder_cache, N)


def score_function_gradients(model, x, eps):
    """N draws of the score-function estimate of grad_phi (1/B) sum_b ELBO_b.

    g_SF[n] = (1/B) sum_b f(z_nb) grad_phi log q_phi(z_nb | x_b),
    f = log p(x|z) + log p(z) - log q(z|x),  z_nb = mu_b + sigma_b eps_nb.

    x: (B, P), eps: (N, B, D) -> dict of ``(N, *param.shape)`` over the encoder's parameters.
    """
    x, eps = _check(model, x, eps)
    N, B, D = eps.shape
    # f = log p(x|z) + log p(z) - log q(z|x), the importance log-weight: a constant weight (1, N B)
    f, cache = log_weights_and_cache(model, *_fold(x, eps))
    f = f.astype(model.dtype)
    # the score of log q at the sampled z, each row weighted by f / B; no derivative through z
    _, dmu, dlogvar = dist.gaussian_log_density_backward(f / B, cache["posterior_cache"])
    dh = np.concatenate([dmu, dlogvar], axis=1)
    return encoder_backward_per_draw(model, dh, cache["encoder_cache"], N)


def reparameterised_gradients(model, x, eps):
    """N draws of the reparameterised estimate of grad_phi (1/B) sum_b ELBO_b (estimator A).

    g_RP[n] = grad_phi (1/B) sum_b f(mu_b + sigma_b eps_nb): the chain rule through
    z = mu + sigma * eps, the same steps as ``VAE.backward`` with ``estimator="A"`` and
    beta = 1, but one gradient per draw instead of their mean.  Their mean over
    the N draws equals minus the encoder gradients of
    ``model.loss_and_grads(x, eps=eps, estimator="A")``.

    x: (B, P), eps: (N, B, D) -> dict of ``(N, *param.shape)`` over the encoder's parameters.
    """
    x, eps = _check(model, x, eps)
    N, B, D = eps.shape
    _, cache = model.forward(*_fold(x, eps), estimator="A")
    # d/delbo of (1/B) sum_b elbo_b for each draw's B rows: the ELBO itself, not the loss
    delbo = np.full(N * B, 1.0 / B, dtype=model.dtype)
    dh, _ = model.backward_to_encoder_output(cache, delbo)          # (N B, 2D)
    return encoder_backward_per_draw(model, dh, cache["encoder_cache"], N)


def estimator_variances(model, x, n_draws=1000, *, rng=None, chunk=500):
    """Mean and variance, over ``n_draws`` draws, of both estimators of the encoder gradient.

    Both estimators use the same draws eps (a paired comparison); the
    difference g_SF - g_RP has expectation zero, and its variance is returned
    so that the agreement of the two means can be judged:
    ``|mean_SF - mean_RP|`` should be within a few sqrt(var_difference / n_draws).
    Statistics are accumulated chunk by chunk (Chan et al.'s pairwise update),
    so memory is bounded by ``chunk`` draws.

    Parameters
    ----------
    model : VAE
    x : array (B, P)
    n_draws : int >= 2
    rng : numpy.random.Generator, optional
        Default ``np.random.default_rng(0)``.
    chunk : int
        Draws per pass.

    Returns
    -------
    dict with
        ``"score"`` and ``"reparameterised"``: each a dict with ``"mean"`` and
        ``"variance"`` (dicts of arrays shaped like the encoder's parameters,
        variance with ddof = 1) and ``"total_variance"`` (the sum of all
        variances, the trace of the covariance: a float);
        ``"difference_variance"``: dict of arrays, Var(g_SF - g_RP) per entry;
        ``"n_draws"``: int.
    """
    x = check_type(model, "model", VAE, "a minivae.VAE").check_data(x)
    n_draws, chunk = check_count(n_draws, "n_draws", 2), check_count(chunk, "chunk")
    rng = np.random.default_rng(0) if rng is None else check_rng(rng)
    stats = {"score": _RunningMoments(), "reparameterised": _RunningMoments(),
             "difference": _RunningMoments()}
    for done in range(0, int(n_draws), int(chunk)):
        eps = rng.standard_normal((min(chunk, n_draws - done), x.shape[0], model.z_dim), dtype=model.dtype)
        g_sf = score_function_gradients(model, x, eps)
        g_rp = reparameterised_gradients(model, x, eps)
        stats["score"].add(g_sf)
        stats["reparameterised"].add(g_rp)
        stats["difference"].add({name: g_sf[name] - g_rp[name] for name in g_sf})
    result = {}
    for key in ("score", "reparameterised"):
        mean, variance = stats[key].mean, stats[key].variance()
        result[key] = {"mean": mean, "variance": variance,
                       "total_variance": float(sum(v.sum() for v in variance.values()))}
    result["difference_variance"] = stats["difference"].variance()
    result["n_draws"] = int(n_draws)
    return result


class _RunningMoments:
    """Count, mean and sum of squared deviations (M2) per entry, merged chunk by chunk.

    Merging a chunk with n_b draws, mean m_b and M2_b into (n_a, m_a, M2_a)
    (Chan, Golub & LeVeque 1983): delta = m_b - m_a, n = n_a + n_b,
    m = m_a + delta n_b / n, M2 = M2_a + M2_b + delta^2 n_a n_b / n.
    No large sum of squares is ever formed, so the variance loses no precision.
    """

    def __init__(self):
        self.n, self.mean, self.m2 = 0, None, None

    def add(self, draws):
        n_b = next(iter(draws.values())).shape[0]
        mean_b = {k: v.astype(np.float64).mean(axis=0) for k, v in draws.items()}
        m2_b = {k: ((v - mean_b[k]) ** 2).sum(axis=0) for k, v in draws.items()}
        if self.n == 0:
            self.n, self.mean, self.m2 = n_b, mean_b, m2_b
            return
        n = self.n + n_b
        for k in draws:
            delta = mean_b[k] - self.mean[k]
            self.mean[k] = self.mean[k] + delta * n_b / n
            self.m2[k] = self.m2[k] + m2_b[k] + delta ** 2 * self.n * n_b / n
        self.n = n

    def variance(self):
        return {k: v / (self.n - 1) for k, v in self.m2.items()}
