"""Check hand-written gradients against central finite differences.

For a scalar function f of a dict of arrays, the numerical gradient of entry i is

    (f(p + h e_i) - f(p - h e_i)) / (2 h)                      (error O(h^2))

and the relative error of an analytic gradient ``a`` against it, per array, is::

    rel_error(a, n) = max_i |a_i - n_i| / max(max_i |a_i|, max_i |n_i|)

the largest entrywise difference measured against the array's own scale,
so entries that are legitimately zero (a ReLU that is off) cannot blow it up.
In float64 a correct gradient gives about 1e-9 or smaller; a wrong one
gives something of order 1.

To check a single layer ``y, cache = op_forward(...)`` it is turned into a
scalar by a random projection: f = sum(y * dy) for a fixed random dy, whose
gradient is exactly what ``op_backward(dy, cache)`` returns.

``minivae gradcheck`` runs :func:`gradcheck_rows` and prints the table.
"""
import numpy as np

from minivae import distributions as dist
from minivae import estimators, evaluate
from minivae import nn
from minivae.vae import VAE

DEFAULT_STEP = 1e-5       # about (float64 machine epsilon)^(1/3): balances truncation and rounding
DEFAULT_BOUND = 1e-6


def numerical_gradient(f, params, h=DEFAULT_STEP):
    """Central-difference gradient of ``f(params) -> float`` for every entry of every array.

    The arrays in ``params`` are perturbed in place, one entry at a time, and
    restored; f must read them from the dict (or hold references to them).
    Returns a dict of float64 arrays with the keys and shapes of ``params``.
    This loops over entries on purpose: it is a reference, not a fast path.
    """
    numeric = {}
    for name, p in params.items():
        g = np.zeros(p.shape, dtype=np.float64)
        for i in np.ndindex(p.shape):
            old = p[i]
            p[i] = old + h
            f_plus = f(params)
            p[i] = old - h
            f_minus = f(params)
            p[i] = old
            g[i] = (f_plus - f_minus) / (2 * h)
        numeric[name] = g
    return numeric


def rel_error(analytic, numeric):
    """``max_i |a_i - n_i| / max(max|a|, max|n|)``; 0 when both are all zero."""
    analytic = np.asarray(analytic, dtype=np.float64)
    numeric = np.asarray(numeric, dtype=np.float64)
    scale = max(np.abs(analytic).max(initial=0.0), np.abs(numeric).max(initial=0.0))
    if scale == 0:
        return 0.0
    return float(np.abs(analytic - numeric).max() / scale)


def compare(analytic, numeric, n_worst=3):
    """Per-array comparison: a dict name -> {"rel_error", "worst": [(index, analytic, numeric)]}."""
    report = {}
    for name in numeric:
        a = np.asarray(analytic[name], dtype=np.float64)
        n = numeric[name]
        if a.shape != n.shape:
            raise ValueError(f"gradient {name!r} has shape {a.shape}, the parameter {n.shape}")
        diff = np.abs(a - n).ravel()
        worst = np.argsort(diff)[::-1][:n_worst]
        report[name] = {
            "rel_error": rel_error(a, n),
            # plain ints and floats, so a printed report reads (3, 2) rather than np.int64(3), ...
            "worst": [(tuple(int(j) for j in np.unravel_index(i, n.shape)), float(a.flat[i]),
                       float(n.flat[i])) for i in worst],
        }
    return report


def check_gradients(f, params, grads, h=DEFAULT_STEP):
    """Compare analytic ``grads`` of ``f(params)`` with central differences; see :func:`compare`."""
    return compare(grads, numerical_gradient(f, params, h))


def check_operation(forward, backward, inputs, wrt, rng, h=DEFAULT_STEP):
    """Check a forward/backward pair by the random projection f = sum(forward(...) * dout).

    inputs: dict of the forward's arguments, in order; wrt: the names whose
    gradients ``backward(dout, cache)`` returns, in its order.
    """
    out, cache = forward(*inputs.values())
    dout = rng.standard_normal(np.shape(out))
    analytic = backward(dout, cache)
    if not isinstance(analytic, tuple):
        analytic = (analytic,)
    analytic = dict(zip(wrt, analytic))

    def f(p):
        return float(np.sum(forward(*p.values())[0] * dout))

    numeric = numerical_gradient(f, inputs, h)
    return compare(analytic, {name: numeric[name] for name in wrt})


def check_vae(model, x, *, n_samples=1, kl="analytic", beta=1.0, seed=0, h=DEFAULT_STEP):
    """Check ``model.loss_and_grads`` on x with fixed noise eps against central differences."""
    eps = np.random.default_rng(seed).standard_normal((n_samples, x.shape[0], model.z_dim))
    _, grads = model.loss_and_grads(x, kl=kl, beta=beta, eps=eps)

    def f(params):
        return -float(model.elbo(x, kl=kl, beta=beta, eps=eps).mean())

    return check_gradients(f, model.params, grads, h)


# ---------------------------------------------------------------------------
# The table printed by `minivae gradcheck`
# ---------------------------------------------------------------------------

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
        ("VAE bernoulli, estimator B (analytic KL)", "bernoulli", x_binary, dict(kl="analytic")),
        ("VAE bernoulli, estimator A (Monte Carlo)", "bernoulli", x_binary, dict(kl="mc")),
        ("VAE gaussian, estimator B (analytic KL)", "gaussian", x_real, dict(kl="analytic")),
        ("VAE gaussian, estimator A (Monte Carlo)", "gaussian", x_real, dict(kl="mc")),
        ("VAE estimator B, L = 5 samples", "bernoulli", x_binary, dict(kl="analytic", n_samples=5)),
        ("VAE estimator A, L = 5, beta = 0.5", "bernoulli", x_binary, dict(kl="mc", n_samples=5, beta=0.5)),
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
                     "bound": bound, "ok": error <= bound})
    return rows


def format_rows(rows):
    """The rows of :func:`gradcheck_rows` as a text table."""
    width = max(len(r["component"]) for r in rows)
    lines = [f"{'component':<{width}}  {'worst array':<16}  {'rel. error':>10}  {'bound':>7}  result",
             "-" * (width + 48)]
    for r in rows:
        lines.append(f"{r['component']:<{width}}  {r['worst']:<16}  {r['rel_error']:>10.2e}  "
                     f"{r['bound']:>7.0e}  {'ok' if r['ok'] else 'FAIL'}")
    return "\n".join(lines)


def _estimator_checks(x, seed, h):
    """The per-draw encoder gradients of minivae.estimators, each against central differences.

    Each estimator returns one gradient per draw n; a random combination sum_n c_n g_n is
    compared with the derivative of sum_n c_n (its per-draw objective), which checks every draw.
    """
    rng = np.random.default_rng(seed)
    model = VAE(x.shape[1], 2, hidden=(5,), activation="tanh", seed=seed)
    N = 3
    eps = rng.standard_normal((N, len(x), model.z_dim))
    z = model.encode(x)[0] + eps                                       # fixed points for log q
    c = rng.standard_normal(N)
    phi = {name: model.params[name] for name in estimators.encoder_names(model)}   # perturbed in place

    def combine(per_draw):
        return {name: np.tensordot(c, g, axes=1) for name, g in per_draw.items()}

    score = check_gradients(lambda _: float(c @ estimators.log_q(model, x, z).mean(axis=1)), phi,
                            combine(estimators.encoder_score(model, x, z)), h)
    reparam = check_gradients(lambda _: float(c @ evaluate.log_weights(model, x, eps).mean(axis=1)),
                              phi, combine(estimators.reparameterised_gradients(model, x, eps)), h)
    return [("score d log q / d phi, per draw", score),
            ("reparameterised gradient, per draw", reparam)]
