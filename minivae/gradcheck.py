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

This module is NumPy only (the CS231n ``gradient_check.py`` idea): it knows
nothing of the VAE beyond calling the methods of the model it is given.
``minivae gradcheck`` checks every component of the package with it; that
table is in :mod:`minivae.cli.gradcheck_table`.
"""
import numpy as np

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


def check_vae(model, x, *, n_samples=1, estimator="B", beta=1.0, seed=0, h=DEFAULT_STEP):
    """Check ``model.loss_and_grads`` on x with fixed noise eps against central differences."""
    eps = np.random.default_rng(seed).standard_normal((n_samples, x.shape[0], model.z_dim))
    _, grads = model.loss_and_grads(x, estimator=estimator, beta=beta, eps=eps)

    def f(params):
        return -float(model.elbo(x, estimator=estimator, beta=beta, eps=eps).mean())

    return check_gradients(f, model.params, grads, h)
