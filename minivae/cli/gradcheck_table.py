"""The table printed by ``minivae gradcheck``: every gradient of the package against central differences.

Each component (activations, the affine layer, an MLP, the reparameterised
sample, the log-densities, the analytic KL, both likelihoods, the VAE with
both estimators, and the per-draw gradient estimators) is checked with
:mod:`minivae.gradcheck` on small random inputs in float64; a row passes when
its worst relative error is at most the bound (1e-6).
"""
import numpy as np

from minivae import distributions as dist
from minivae import nn
from minivae.topics import gradient_estimators
from minivae.utils.validation import check_count
from minivae.evaluate import log_weights
from minivae.gradcheck import (DEFAULT_BOUND, DEFAULT_STEP, check_gradients, check_operation,
                               check_vae)
from minivae.vae import VAE


def _mlp_operation(prefix, n_layers, activation):
    """mlp_forward/mlp_backward as a pair over a flat argument list (x, W0, b0, W1, b1, ...)."""
    def forward(x, *weights):
        params = {f"{prefix}.{k // 2}.{'Wb'[k % 2]}": w for k, w in enumerate(weights)}
        return nn.mlp_forward(params, prefix, n_layers, x, activation)

    def backward(dout, cache):
        dx, grads = nn.mlp_backward(dout, cache, prefix, activation)
        return (dx,) + tuple(grads[f"{prefix}.{k // 2}.{'Wb'[k % 2]}"] for k in range(2 * n_layers))

    return forward, backward


def gradcheck_rows(seed=0, h=DEFAULT_STEP, bound=DEFAULT_BOUND):
    """Check every component of the package; return rows (component, worst array, rel_error, ok)."""
    seed = check_count(seed, "seed", low=0)
    rng = np.random.default_rng(seed)
    B, L, D, P = 4, 3, 3, 6

    def normal(*shape):
        return rng.standard_normal(shape)

    checks = []
    for name, (forward, backward) in nn.ACTIVATIONS.items():
        # keep pre-activations away from relu's kink at 0, where no derivative exists
        a = normal(B, P)
        a[np.abs(a) < 0.1] += 0.2
        checks.append((f"activation {name}", check_operation(forward, backward, {"a": a}, ["a"], rng, h)))
    checks.append(("affine layer", check_operation(
        nn.affine_forward, nn.affine_backward,
        {"x": normal(B, P), "W": normal(P, D), "b": normal(D)}, ["x", "W", "b"], rng, h)))
    mlp_params = nn.init_mlp([P, 5, 4, D], rng, "mlp", activation="tanh")
    forward, backward = _mlp_operation("mlp", 3, "tanh")
    inputs = {"x": normal(B, P), **mlp_params}
    checks.append(("MLP (2 hidden, tanh)", check_operation(forward, backward, inputs, list(inputs), rng, h)))
    checks.append(("reparameterised sample", check_operation(
        dist.gaussian_sample, dist.gaussian_sample_backward,
        {"mu": normal(B, D), "logvar": normal(B, D), "eps": normal(L, B, D)}, ["mu", "logvar"], rng, h)))
    checks.append(("Gaussian log-density q(z|x)", check_operation(
        dist.gaussian_log_density, dist.gaussian_log_density_backward,
        {"z": normal(L, B, D), "mu": normal(B, D), "logvar": normal(B, D)}, ["z", "mu", "logvar"], rng, h)))
    checks.append(("prior log-density p(z)", check_operation(
        dist.standard_normal_log_density, dist.standard_normal_log_density_backward,
        {"z": normal(L, B, D)}, ["z"], rng, h)))
    checks.append(("analytic KL(q || p)", check_operation(
        dist.kl_standard_normal, dist.kl_standard_normal_backward,
        {"mu": normal(B, D), "logvar": normal(B, D)}, ["mu", "logvar"], rng, h)))
    checks.append(("Bernoulli likelihood", check_operation(
        dist.bernoulli_log_likelihood, dist.bernoulli_log_likelihood_backward,
        {"x": rng.uniform(size=(B, P)), "logits": 3 * normal(L, B, P)}, ["logits"], rng, h)))
    checks.append(("Gaussian likelihood", check_operation(
        dist.gaussian_log_density, dist.gaussian_log_density_backward,
        {"x": normal(B, P), "mean": normal(L, B, P), "logvar": normal(P)}, ["x", "mean", "logvar"], rng, h)))

    x_binary = rng.uniform(size=(B, P))
    x_real = normal(B, P)
    vae_cases = [
        ("VAE bernoulli, estimator B (analytic KL)", "bernoulli", x_binary, dict(estimator="B")),
        ("VAE bernoulli, estimator A (Monte Carlo)", "bernoulli", x_binary, dict(estimator="A")),
        ("VAE gaussian, estimator B (analytic KL)", "gaussian", x_real, dict(estimator="B")),
        ("VAE gaussian, estimator A (Monte Carlo)", "gaussian", x_real, dict(estimator="A")),
        ("VAE estimator B, L = 5 samples", "bernoulli", x_binary, dict(estimator="B", n_samples=5)),
        ("VAE estimator A, L = 5, beta = 0.5", "bernoulli", x_binary, dict(estimator="A", n_samples=5, beta=0.5)),
    ]
    for name, likelihood, x, kwargs in vae_cases:
        model = VAE(P, 2, hidden=(5,), likelihood=likelihood, activation="tanh", seed=seed)
        checks.append((name, check_vae(model, x, seed=seed, h=h, **kwargs)))

    checks += _estimator_checks(x_binary, seed, h)

    rows = []
    for component, report in checks:
        worst_name = max(report, key=lambda k: report[k]["rel_error"])
        error = report[worst_name]["rel_error"]
        rows.append({"component": component, "worst": worst_name, "rel_error": error,
                     "bound": bound, "ok": error <= bound,
                     "diagnosis": report[worst_name].get("diagnosis", "")})
    return rows


def format_rows(rows):
    """The rows of :func:`gradcheck_rows` as a text table."""
    width = max(len(r["component"]) for r in rows)
    lines = [f"{'component':<{width}}  {'worst array':<16}  {'rel. error':>10}  {'bound':>7}  result",
             "-" * (width + 48)]
    for r in rows:
        lines.append(f"{r['component']:<{width}}  {r['worst']:<16}  {r['rel_error']:>10.2e}  "
                     f"{r['bound']:>7.0e}  {'ok' if r['ok'] else 'FAIL'}")
        if not r["ok"] and r.get("diagnosis"):
            lines.append(f"    {r['diagnosis']}")          # what the mismatch looks like (gradcheck.diagnose)
    return "\n".join(lines)


def _estimator_checks(x, seed, h):
    """The per-draw encoder gradients of minivae.topics.gradient_estimators, each against central differences.

    Each estimator returns one gradient per draw n; a random combination sum_n c_n g_n is
    compared with the derivative of sum_n c_n (its per-draw objective), which checks every draw.
    """
    rng = np.random.default_rng(seed)
    model = VAE(x.shape[1], 2, hidden=(5,), activation="tanh", seed=seed)
    N = 3
    eps = rng.standard_normal((N, len(x), model.z_dim))
    z = model.encode(x)[0] + eps                                       # fixed points for log q
    c = rng.standard_normal(N)
    phi = {name: model.params[name] for name in gradient_estimators.encoder_names(model)}   # perturbed in place

    def combine(per_draw):
        return {name: np.tensordot(c, g, axes=1) for name, g in per_draw.items()}

    score = check_gradients(lambda _: float(c @ gradient_estimators.log_q(model, x, z).mean(axis=1)), phi,
                            combine(gradient_estimators.encoder_score(model, x, z)), h)
    reparam = check_gradients(lambda _: float(c @ log_weights(model, x, eps).mean(axis=1)),
                              phi, combine(gradient_estimators.reparameterised_gradients(model, x, eps)), h)
    return [("score d log q / d phi, per draw", score),
            ("reparameterised gradient, per draw", reparam)]
