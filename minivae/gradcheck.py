"""Check hand-written gradients against central finite differences.

For a scalar function f of a dict of arrays, the numerical gradient of entry i is ::

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
import math

import numpy as np

from minivae.utils.validation import (check_array_dict, check_callable, check_attributes, check_count,
                                      check_keys, check_number, check_numeric_array, check_rng)

DEFAULT_STEP = 1e-5       # about (float64 machine epsilon)^(1/3): balances truncation and rounding
DEFAULT_BOUND = 1e-6


def numerical_gradient(f, params, h=DEFAULT_STEP):
    """Central-difference gradient of ``f(params) -> float`` for every entry of every array.

    The arrays in ``params`` are perturbed in place, one entry at a time, and
    restored; f must read them from the dict (or hold references to them).
    Returns a dict of float64 arrays with the keys and shapes of ``params``.
    This loops over entries on purpose: it is a reference, not a fast path.
    """
    check_callable(f, "f")
    check_array_dict(params, "params")        # float arrays: an int array would round p + h
    h = check_number(h, "h", low=0, low_inclusive=False)
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
    analytic, numeric = check_numeric_array(analytic, "analytic"), check_numeric_array(numeric, "numeric")
    if analytic.shape != numeric.shape:
        raise ValueError(f"analytic must be an array of the shape of numeric, {numeric.shape}, "
                         f"got an array of shape {analytic.shape}")
    analytic = np.asarray(analytic, dtype=np.float64)
    numeric = np.asarray(numeric, dtype=np.float64)
    scale = max(np.abs(analytic).max(initial=0.0), np.abs(numeric).max(initial=0.0))
    if scale == 0:
        return 0.0
    return float(np.abs(analytic - numeric).max() / scale)


def compare(analytic, numeric, n_worst=3):
    """Per-array comparison: a dict name -> {"rel_error", "worst": [(index, analytic, numeric)]}."""
    check_keys(analytic, "analytic", numeric.keys(), extra=True)     # a subset may be checked
    n_worst = check_count(n_worst, "n_worst", low=0)
    report = {}
    for name in numeric:
        a = np.asarray(analytic[name], dtype=np.float64)
        n = numeric[name]
        if a.shape != n.shape:
            raise ValueError(f"analytic[{name!r}] must be an array of the parameter's shape {n.shape}, "
                             f"got an array of shape {a.shape}")
        diff = np.abs(a - n).ravel()
        worst = np.argsort(diff)[::-1][:n_worst]
        report[name] = {
            "rel_error": rel_error(a, n),
            # plain ints and floats, so a printed report reads (3, 2) rather than np.int64(3), ...
            "worst": [(tuple(int(j) for j in np.unravel_index(i, n.shape)), float(a.flat[i]),
                       float(n.flat[i])) for i in worst],
            # what the mismatch looks like (central differences are good to ~1e-7 of the largest entry)
            "diagnosis": diagnose(a, n, name, rtol=1e-5, atol=1e-5)["message"],
        }
    return report


def check_gradients(f, params, grads, h=DEFAULT_STEP):
    """Compare analytic ``grads`` of ``f(params)`` with central differences; see :func:`compare`."""
    check_keys(grads, "grads", check_array_dict(params, "params").keys())   # before the long loop
    return compare(grads, numerical_gradient(f, params, h))


def check_operation(forward, backward, inputs, wrt, rng, h=DEFAULT_STEP):
    """Check a forward/backward pair by the random projection f = sum(forward(...) * dout).

    inputs: dict of the forward's arguments, in order; wrt: the names whose
    gradients ``backward(dout, cache)`` returns, in its order.
    """
    check_callable(forward, "forward"), check_callable(backward, "backward"), check_rng(rng)
    check_array_dict(inputs, "inputs")
    if not isinstance(wrt, (list, tuple)) or not all(name in inputs for name in wrt):
        raise ValueError(f"wrt must be a list of names of inputs {list(inputs)}, got {wrt!r}")
    h = check_number(h, "h", low=0, low_inclusive=False)
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
    check_attributes(model, "model", ("check_data", "loss_and_grads", "elbo"), "a minivae.VAE")
    x, n_samples = model.check_data(x), check_count(n_samples, "n_samples")
    seed, h = check_count(seed, "seed", low=0), check_number(h, "h", low=0, low_inclusive=False)
    eps = np.random.default_rng(seed).standard_normal((n_samples, x.shape[0], model.z_dim))
    _, grads = model.loss_and_grads(x, estimator=estimator, beta=beta, eps=eps)

    def f(params):
        return -float(model.elbo(x, estimator=estimator, beta=beta, eps=eps).mean())

    return check_gradients(f, model.params, grads, h)


# ------------------------------------------------------------------ what a mismatch looks like

DIAGNOSIS_RTOL, DIAGNOSIS_ATOL = 1e-6, 1e-8      # entrywise: |a - r| <= rtol |r| + atol typical|r|
_FIT = 1e-3          # a pattern is named when it explains a wrong array to this relative residual


def typical_scale(r):
    """The size of a typical entry of ``r``: the median of its finite non-zero ``|entries|`` (0 if none).

    Not the largest entry: a few dominant entries (a logit of 1e4) must not widen the
    tolerance of all the others, or matching them alone would pass."""
    r = np.abs(np.asarray(r, dtype=np.float64))
    r = r[np.isfinite(r) & (r > 0)]
    return float(np.median(r)) if r.size else 0.0


def _close(a, r, rtol, atol):
    """Entrywise closeness of two float64 arrays of one shape, non-finite entries equal only if equal."""
    scale = typical_scale(r)
    with np.errstate(all="ignore"):
        ok = np.abs(a - r) <= rtol * np.abs(r) + atol * scale
    return ok | ((a == r) & ~np.isfinite(r)) | (np.isnan(a) & np.isnan(r))


def _fits(candidate, r):
    """True if ``candidate`` equals ``r`` to the relative residual _FIT (both finite, same shape)."""
    scale = max(np.abs(r).max(initial=0.0), np.abs(candidate).max(initial=0.0))
    return scale > 0 and np.abs(candidate - r).max(initial=0.0) <= _FIT * scale


def _factor_name(c, sizes):
    """A name for the factor ``c``: 2, 1/2, a size (or its inverse) from ``sizes``, or its value."""
    named = [("2", 2.0), ("1/2", 0.5), ("4", 4.0), ("1/4", 0.25)]
    for label, n in sizes.items():
        if n and n > 1:
            named += [(f"{n} ({label})", float(n)), (f"1/{n} (one over {label})", 1.0 / n)]
    for label, value in named:
        if abs(abs(c) - value) <= 1e-6 * value:
            return label
    return f"{abs(c):.4g}"


def _axis_sizes(shape, sizes):
    """``sizes`` and the length of each axis of ``shape`` (labels to tell which factor it is)."""
    out = dict(sizes or {})
    for k, n in enumerate(shape):
        if n > 1 and n not in out.values():
            same = [j for j, m in enumerate(shape) if m == n]
            out[f"the length of axis {' or '.join(map(str, same))}"] = n
    return out


def _where(bad, shape):
    """Which rows / columns / entries ``bad`` (a boolean array) covers, in words."""
    at = np.argwhere(bad)
    words = {0: "rows" if len(shape) == 2 else "indices of axis 0"}
    if len(shape) >= 2:
        words[len(shape) - 1] = "columns" if len(shape) == 2 else f"indices of axis {len(shape) - 1}"
    for axis, label in words.items():
        hit = np.unique(at[:, axis])
        if len(hit) < shape[axis] and len(hit) * 2 <= shape[axis] or len(hit) == 1 < shape[axis]:
            return f"only in {label} {[int(i) for i in hit[:8]]}" + (" ..." if len(hit) > 8 else "")
    if len(at) <= 3:
        return "only at " + ", ".join(str(tuple(int(i) for i in row)) for row in at)
    return f"in {len(at)} of {bad.size} entries"


def diagnose(analytic, expected, name="gradient", sizes=None, rtol=DIAGNOSIS_RTOL, atol=DIAGNOSIS_ATOL):
    """What the difference between ``analytic`` and the ``expected`` array looks like, in a sentence.

    Returns {"pattern", "message"}: pattern is one of "match", "shape", "transpose",
    "missing_sum", "extra_sum", "nonfinite", "zeros", "sign", "factor", "confined",
    "other", and message names the array (``name``, e.g. "dlogvar") and the pattern:
    a sign flip (a = -r), a constant factor a = c r (named: 2, 1/2, a size of
    ``sizes`` such as {"L (samples)": 3} or an axis length, else its value), a
    transpose (a = r^T), a sum or mean over an axis missing (a has an axis r lacks)
    or extra (r has an axis a lacks), zeros where r is not zero (a path that was
    left out), NaN or inf, or a difference confined to some rows, columns or entries.
    Entrywise, a matches r where ``|a - r| <= rtol |r| + atol s``, s the typical ``|entry|`` of r
    (:func:`typical_scale`): tolerances per entry.
    """
    a = np.asarray(analytic, dtype=np.float64)
    r = np.asarray(expected, dtype=np.float64)
    sizes = _axis_sizes(r.shape, sizes)

    def say(pattern, text):
        return {"pattern": pattern, "message": f"{name}: {text}"}

    if a.shape != r.shape:
        return say(*_shape_story(a, r, sizes))
    finite = np.isfinite(a)
    if not np.array_equal(finite, np.isfinite(r)):
        bad = finite != np.isfinite(r)
        kind = "NaN" if np.isnan(a[bad]).any() else "inf" if not finite[bad].all() else "finite"
        return say("nonfinite", f"{kind} {_where(bad, r.shape)}, where the expected array "
                                f"{'is finite' if kind != 'finite' else 'is not'}")
    ok = _close(a, r, rtol, atol)
    if ok.all():
        return say("match", "matches")
    a0, r0 = np.where(finite, a, 0.0), np.where(finite, r, 0.0)
    worst = np.unravel_index(int(np.argmax(np.where(ok, -1.0, np.abs(a0 - r0)))), r.shape)
    at = f"; at {tuple(int(i) for i in worst)}: {a[worst]:.6g}, expected {r[worst]:.6g}"
    if not np.any(a0) and np.any(r0):
        return say("zeros", "zero everywhere, where the expected gradient is not: a path the gradient "
                            "flows along is missing" + at)
    if _fits(-a0, r0):
        return say("sign", "has the wrong sign (it is minus the expected array)" + at)
    with np.errstate(over="ignore", invalid="ignore"):     # entries near 1e308 overflow the sums:
        denom = float(np.sum(r0 * r0))                      # then no factor is named
        c = float(np.sum(a0 * r0) / denom) if denom else 0.0
    if c and math.isfinite(c) and abs(c - 1) > 1e-6 and _fits(a0 / c, r0):
        sign = "has the wrong sign and " if c < 0 else ""
        return say("factor", f"{sign}is {_factor_name(c, sizes)} times the expected array"
                             f" (a constant factor){at}")
    if r.ndim >= 2 and r.shape[-1] == r.shape[-2] and _fits(np.swapaxes(a0, -1, -2), r0):
        return say("transpose", "is the transpose of the expected array (the two last axes swapped)" + at)
    zeros = (a0 == 0) & (r0 != 0) & ~ok
    if zeros.any() and _close(a0, r0, rtol, atol)[~zeros].all():
        return say("zeros", f"zero {_where(zeros, r.shape)}, where the expected array is not "
                            "(a missing path, or a mask on the wrong side)" + at)
    bad = ~ok
    if bad.sum() < bad.size:
        return say("confined", f"differs {_where(bad, r.shape)} and matches elsewhere" + at)
    error = rel_error(a0, r0)
    return say("other", f"differs everywhere (relative error {error:.2g}), not by a sign, a constant "
                        f"factor or a transpose" + at)


def _shape_story(a, r, sizes):
    """(pattern, text) for arrays whose shapes differ: a transpose, an axis too many or too few."""
    given = f"has shape {a.shape}, expected {r.shape}"
    finite = np.isfinite(a).all() and np.isfinite(r).all()
    if a.ndim == r.ndim and a.shape == r.shape[::-1] and a.ndim >= 2:
        tail = " and it is its transpose" if finite and _fits(a.T, r) else ""
        return "transpose", f"{given}: transposed{tail}"
    if a.ndim == r.ndim + 1:
        for k in range(a.ndim):
            if a.shape[:k] + a.shape[k + 1:] == r.shape:
                how = ""
                if finite and _fits(a.sum(axis=k), r):
                    how = " (its sum over that axis matches)"
                elif finite and _fits(a.mean(axis=k), r):
                    how = " (its mean over that axis matches)"
                return "missing_sum", f"{given}: a sum or mean over axis {k} (length {a.shape[k]}) is missing{how}"
    if a.ndim + 1 == r.ndim:
        for k in range(r.ndim):
            if r.shape[:k] + r.shape[k + 1:] == a.shape:
                how = ""
                if finite and _fits(a, r.sum(axis=k)):
                    how = " (it matches the expected array summed over that axis)"
                elif finite and _fits(a, r.mean(axis=k)):
                    how = " (it matches the expected array averaged over that axis)"
                return "extra_sum", f"{given}: summed or averaged over axis {k} (length {r.shape[k]}) " \
                                    f"where the expected array keeps it{how}"
    if a.ndim == r.ndim and a.size and np.broadcast_shapes(a.shape, r.shape) == r.shape:
        axes = [k for k in range(a.ndim) if a.shape[k] == 1 != r.shape[k]]
        return "extra_sum", f"{given}: axis {' and '.join(map(str, axes))} reduced to length 1 (keepdims?)"
    return "shape", given
