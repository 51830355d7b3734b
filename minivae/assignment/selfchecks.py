"""The student's local checks: each exercise's named checks, without the reference solution.

What ``minivae assignment check NAME`` runs (minivae.assignment.localcheck) in the grader's worker
(``_worker.py`` loads this file as ``_minivae_selfchecks.py`` and hands it the student's modules).
The checks carry the grader's names and points but have no answer to compare with, so each tests
what is known without one: gradients against central differences of the student's own forward
pass and of the function written out (a textbook formula, a quadrature: a backward that matches a
wrong forward fails, as with the grader); values against results known by hand, a direct formula
where it is safe, or identities between the functions (a sample at eps = 0 is mu); float32: the
grader's probe in float32 against the same probe in float64, cast.  A probe returns pairs of
arrays, ``key`` with ``key~fd`` or ``key~expected``, which localcheck compares.  This file imports
nothing of minivae.  Which probes make up each check: LOCAL in minivae.assignment.localcheck.
"""
import math

import numpy as np

H = 1e-5                          # central-difference step (float64)
GRADER_PROBES = {}                # probes.PROBES, set by the worker (for the float32 twins)
WRITTEN = " (against the function written out)"


def _rng(seed):
    return np.random.default_rng(int(seed))


def _normal(rng, shape, scale=1.0):
    return scale * rng.standard_normal(shape)


def numerical(f, arrays):
    """Central differences of the number ``f()`` for every entry of every array of ``arrays``
    (perturbed in place, one entry at a time, and restored)."""
    numeric = {}
    for name, a in arrays.items():
        g = np.zeros(a.shape)
        for i in np.ndindex(a.shape):
            old = a[i]
            a[i] = old + H
            up = f()
            a[i] = old - H
            down, a[i] = f(), old
            g[i] = (up - down) / (2 * H)
        numeric[name] = g
    return numeric


def _pairs(analytic, numeric):
    """{name: analytic gradient, name~fd: its central differences}."""
    out = {}
    for name, n in numeric.items():
        out[name] = np.asarray(analytic[name], dtype=np.float64)
        out[name + "~fd"] = n
    return out


def _written_out(analytic, f, arrays):
    """{name + WRITTEN: gradient, ...~fd: central differences of ``f(*arrays.values())``}, the function
    computed another way (a textbook formula, a quadrature): a backward matching a wrong forward fails."""
    copies = {k: np.array(v, dtype=np.float64) for k, v in arrays.items()}
    numeric = numerical(lambda: float(f(*copies.values())), copies)
    return _pairs({k + WRITTEN: v for k, v in analytic.items()}, {k + WRITTEN: v for k, v in numeric.items()})


def _projected(forward, args, upstream):
    """The number sum(forward(*args)[0] * upstream): its gradient is backward(upstream, cache)."""
    return lambda: float(np.sum(forward(*args.values())[0] * upstream))


# ------------------------------------------------------------------ the network

def affine_fd(m, seed, groups=None, input_grad=True):
    """affine_backward (or the per-group one) against central differences of affine_forward."""
    rng = _rng(seed)
    args = {"x": _normal(rng, (6, 4)), "W": _normal(rng, (4, 3)), "b": _normal(rng, 3)}
    dy = _normal(rng, (6, 3))
    _, cache = m.nn.affine_forward(*args.values())
    if groups:
        dx, dW, db = m.nn.affine_backward_per_group(dy, cache, groups)
        masks = np.repeat(np.eye(groups), 6 // groups, axis=1)[..., None]   # (G, 6, 1): the group's rows
        per = [numerical(_projected(m.nn.affine_forward, args, dy * mask), {k: args[k] for k in "Wb"})
               for mask in masks]
        numeric = {"dW": np.stack([p["W"] for p in per]), "db": np.stack([p["b"] for p in per])}
        return {**_pairs({"dW": dW, "db": db}, numeric),
                **_pairs({"dx": dx}, {"dx": numerical(_projected(m.nn.affine_forward, args, dy),
                                                      {"x": args["x"]})["x"]})}
    dx, dW, db = m.nn.affine_backward(dy, cache, input_grad=input_grad)
    numeric = numerical(_projected(m.nn.affine_forward, args, dy), args)
    out = _pairs({"dW": dW, "db": db}, {"dW": numeric["W"], "db": numeric["b"]})
    if not input_grad:
        return {**out, "dx is None": np.array(dx is None), "dx is None~expected": np.array(True)}
    return {**out, **_pairs({"dx": dx}, {"dx": numeric["x"]})}


def mlp_fd(m, seed, activation="relu", hidden=(4, 3)):
    """mlp_backward of a (3, *hidden, 2) network against central differences of mlp_forward."""
    rng = _rng(seed)
    sizes = [3, *hidden, 2]
    params = m.nn.init_mlp(sizes, rng, "net", np.float64, activation)
    for k in params:
        params[k] = params[k] + _normal(rng, params[k].shape, 0.3)
    x, dout = _normal(rng, (6, 3)), _normal(rng, (6, 2))

    def f():
        return float(np.sum(m.nn.mlp_forward(params, "net", len(sizes) - 1, x, activation)[0] * dout))

    _, cache = m.nn.mlp_forward(params, "net", len(sizes) - 1, x, activation)
    dx, grads = m.nn.mlp_backward(dout, cache, "net", activation)
    return _pairs({"dx": dx, **grads}, numerical(f, {"dx": x, **params}))


def activation_fd(m, seed, name="relu", extreme=False):
    """One activation's backward against central differences of its forward (also at +-1e4)."""
    rng = _rng(seed)
    a = rng.standard_normal((4, 5)) * 3
    a[np.abs(a) < 1e-3] = 0.5                             # off relu's kink
    if extreme:
        a[0, :3] = [1e4, -1e4, 40.0]
    dh = _normal(rng, (4, 5))
    forward, backward = getattr(m.nn, name + "_forward"), getattr(m.nn, name + "_backward")
    _, cache = forward(a)
    return _pairs({"da": backward(dh, cache)}, numerical(_projected(forward, {"a": a}, dh), {"da": a}))


def twin32(m, seed, probe, **case):
    """The grader's probe in float32 against the same probe in float64, its arrays cast to float32
    (a number, like the loss, is a Python float in both)."""
    ours = GRADER_PROBES[probe](m, seed, dtype="float32", **case)
    wide = GRADER_PROBES[probe](m, seed, dtype="float64", **case)
    out = {}
    for key, value in ours.items():
        out[key] = np.asarray(value)
        expected = np.asarray(wide[key], dtype=np.float64)
        out[key + "~expected"] = expected if expected.ndim == 0 else expected.astype(np.float32)
    return out


# ------------------------------------------------------------------ the distributions

def _bernoulli_inputs(rng, grey):
    x = rng.uniform(size=(3, 6)) if grey else (rng.uniform(size=(3, 6)) < 0.5).astype(float)
    return x, rng.standard_normal((2, 3, 6)) * 3


def bernoulli_value(m, seed, grey=False):
    """The log-likelihood against the textbook x log p + (1 - x) log(1 - p) at moderate logits."""
    x, logits = _bernoulli_inputs(_rng(seed), grey)
    p = 1 / (1 + np.exp(-logits))
    value, _ = m.dist.bernoulli_log_likelihood(x, logits)
    return {"log_p": value, "log_p~expected": np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=-1)}


def bernoulli_fd(m, seed, grey=False):
    rng = _rng(seed)
    x, logits = _bernoulli_inputs(rng, grey)
    dlog_p = _normal(rng, (2, 3))
    _, cache = m.dist.bernoulli_log_likelihood(x, logits)
    f = _projected(lambda lg: m.dist.bernoulli_log_likelihood(x, lg), {"l": logits}, dlog_p)
    grads = {"dlogits": m.dist.bernoulli_log_likelihood_backward(dlog_p, cache)}

    def textbook(lg):
        p = 1 / (1 + np.exp(-lg))
        return np.sum(dlog_p * np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=-1))

    return {**_pairs(grads, numerical(f, {"dlogits": logits})), **_written_out(grads, textbook, {"dlogits": logits})}


def bernoulli_extreme(m, seed, dtype="float64"):
    """Logits of +-1e4 and +-800, where each pixel's term is known by hand: x l - max(l, 0), and its
    gradient x - [l > 0]; the result keeps the dtype and is finite."""
    rng, dt = _rng(seed), np.dtype(dtype)
    x = rng.choice([0.0, 1.0], size=(3, 6))            # binary, as the grader's extreme cases
    logits = rng.choice([-1e4, -800.0, 800.0, 1e4], size=(2, 3, 6))
    dlog_p = np.ones((2, 3))
    value, cache = m.dist.bernoulli_log_likelihood(x.astype(dt), logits.astype(dt))
    grad = m.dist.bernoulli_log_likelihood_backward(dlog_p.astype(dt), cache)
    return {"log_p": value, "log_p~expected": np.sum(x * logits - np.maximum(logits, 0), axis=-1).astype(dt),
            "dlogits": grad, "dlogits~expected": (x - (logits > 0)).astype(dt)}


def _gaussian_inputs(rng, layout):
    shapes = {"q": ((2, 3, 4), (3, 4), (3, 4)), "p": ((3, 4), (2, 3, 4), (4,))}[layout]
    return {k: rng.standard_normal(s) for k, s in zip(("value", "mean", "logvar"), shapes)}


def gaussian_value(m, seed, layout="q"):
    """The log-density against the log of the density written out, dimension by dimension."""
    rng = _rng(seed)
    if layout == "std":
        z = rng.standard_normal((2, 3, 4))
        got, _ = m.dist.standard_normal_log_density(z)
        return {"log_p": got, "log_p~expected": np.sum(np.log(np.exp(-z ** 2 / 2) / math.sqrt(2 * math.pi)), -1)}
    a = _gaussian_inputs(rng, layout)
    var = np.exp(a["logvar"])
    density = np.exp(-(a["value"] - a["mean"]) ** 2 / (2 * var)) / np.sqrt(2 * math.pi * var)
    got, _ = m.dist.gaussian_log_density(*a.values())
    return {"log_N": got, "log_N~expected": np.sum(np.log(density), axis=-1)}


def gaussian_fd(m, seed, layout="q"):
    rng = _rng(seed)
    if layout == "std":
        z = {"dz": rng.standard_normal((2, 3, 4))}
        up = _normal(rng, (2, 3))
        _, cache = m.dist.standard_normal_log_density(z["dz"])
        grads = {"dz": m.dist.standard_normal_log_density_backward(up, cache)}
        return {**_pairs(grads, numerical(_projected(m.dist.standard_normal_log_density, z, up), z)),
                **_written_out(grads, lambda zz: np.sum(up * np.sum(-zz ** 2 / 2 - math.log(2 * math.pi) / 2, -1)), z)}
    a = _gaussian_inputs(rng, layout)
    value, cache = m.dist.gaussian_log_density(*a.values())
    up = _normal(rng, np.shape(value))
    grads = dict(zip(["dvalue", "dmean", "dlogvar"], m.dist.gaussian_log_density_backward(up, cache)))
    numeric = numerical(_projected(m.dist.gaussian_log_density, a, up), a)

    def written(value, mean, logvar):
        var = np.exp(logvar)
        return np.sum(up * np.sum(np.log(np.exp(-(value - mean) ** 2 / (2 * var)) / np.sqrt(2 * math.pi * var)), -1))

    return {**_pairs(grads, {"d" + k: v for k, v in numeric.items()}),
            **_written_out(grads, written, {"d" + k: v for k, v in a.items()})}


def kl_by_quadrature(mu, logvar):
    """KL(N(mu, e^logvar) || N(0, I)) per example as E_q[log q(z) - log p(z)] by Gauss-Hermite
    quadrature (exact for this quadratic integrand)."""
    t, w = np.polynomial.hermite_e.hermegauss(8)                               # weight e^(-t^2 / 2)
    z = mu[..., None] + np.exp(logvar / 2)[..., None] * t                       # (..., D, 8)
    log_ratio = -t ** 2 / 2 - logvar[..., None] / 2 + z ** 2 / 2               # log q - log p
    return np.sum(log_ratio @ w, axis=-1) / math.sqrt(2 * math.pi)


def kl_value(m, seed, near_prior=False):
    """KL(q || N(0, I)) against E_q[log q(z) - log p(z)] by Gauss-Hermite quadrature (exact for this
    quadratic integrand), or, near the prior, against its power series in logvar."""
    rng = _rng(seed)
    mu, logvar = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    if near_prior:
        mu, logvar = mu * 1e-4, logvar * 1e-6
        series = sum(logvar ** n / math.factorial(n) for n in range(2, 12))     # e^v - 1 - v
        expected = 0.5 * np.sum(mu ** 2 + series, axis=-1)
    else:
        expected = kl_by_quadrature(mu, logvar)
    got, _ = m.dist.kl_standard_normal(mu, logvar)
    return {"kl": got, "kl~expected": expected}


def kl_fd(m, seed, near_prior=False):
    rng = _rng(seed)
    a = {"dmu": rng.standard_normal((4, 3)), "dlogvar": 2 * rng.standard_normal((4, 3))}
    up = _normal(rng, 4)
    _, cache = m.dist.kl_standard_normal(*a.values())
    grads = dict(zip(["dmu", "dlogvar"], m.dist.kl_standard_normal_backward(up, cache)))
    return {**_pairs(grads, numerical(_projected(m.dist.kl_standard_normal, a, up), a)),
            **_written_out(grads, lambda mu, lv: np.sum(up * kl_by_quadrature(mu, lv)), a)}


def sample_value(m, seed, L=3):
    """z at eps = 0 is mu in every sample; (z - mu) / eps squared is exp(logvar)."""
    rng = _rng(seed)
    mu, logvar, eps = rng.standard_normal((4, 3)), rng.standard_normal((4, 3)), rng.standard_normal((L, 4, 3))
    eps[np.abs(eps) < 0.1] = 0.5
    z0, _ = m.dist.gaussian_sample(mu, logvar, np.zeros_like(eps))
    z, _ = m.dist.gaussian_sample(mu, logvar, eps)
    return {"z at eps = 0": z0, "z at eps = 0~expected": np.broadcast_to(mu, eps.shape),
            "((z - mu) / eps)^2": ((z - mu) / eps) ** 2,
            "((z - mu) / eps)^2~expected": np.broadcast_to(np.exp(logvar), eps.shape)}


def sample_fd(m, seed, L=3):
    rng = _rng(seed)
    a = {"dmu": rng.standard_normal((4, 3)), "dlogvar": rng.standard_normal((4, 3))}
    eps, up = rng.standard_normal((L, 4, 3)), _normal(rng, (L, 4, 3))
    _, cache = m.dist.gaussian_sample(a["dmu"], a["dlogvar"], eps)
    grads = dict(zip(["dmu", "dlogvar"], m.dist.gaussian_sample_backward(up, cache)))
    f = _projected(lambda mu, lv: m.dist.gaussian_sample(mu, lv, eps), a, up)
    return {**_pairs(grads, numerical(f, a)),
            **_written_out(grads, lambda mu, lv: np.sum(up * (mu + np.sqrt(np.exp(lv)) * eps)), a)}


# ------------------------------------------------------------------ the model

def _estimator_inputs(rng, L):
    return (_normal(rng, (L, 4), 10.0), _normal(rng, (L, 4, 3)), _normal(rng, (4, 3)), _normal(rng, (4, 3)))


def _estimate(m, kl, log_px_z, z, mu, logvar, beta):
    if kl == "B":
        return m.elbo.estimator_b_forward(log_px_z, mu, logvar, beta)
    return m.elbo.estimator_a_forward(log_px_z, z, mu, logvar, beta)


def estimator_value(m, seed, kl="B", L=3, beta=0.3):
    """Identities of the estimator: at beta = 0 the mean of log p(x|z) over the samples; linear in
    beta; its terms those of the distributions (KL for B; log p(z) and log q(z|x) for A)."""
    log_px_z, z, mu, logvar = _estimator_inputs(_rng(seed), L)
    (e0, _), (e1, terms), (eb, _) = (_estimate(m, kl, log_px_z, z, mu, logvar, b) for b in (0.0, 1.0, beta))
    out = {"elbo at beta = 0": e0, "elbo at beta = 0~expected": log_px_z.mean(axis=0),
           "elbo(beta) - elbo(0)": eb - e0, "elbo(beta) - elbo(0)~expected": beta * (e1 - e0)}
    if kl == "B":
        out.update({"kl_qp": terms["kl_qp"], "kl_qp~expected": m.dist.kl_standard_normal(mu, logvar)[0],
                    "elbo(0) - elbo(1)": e0 - e1, "elbo(0) - elbo(1)~expected": terms["kl_qp"]})
    else:
        out.update({"log_pz": terms["log_pz"], "log_pz~expected": m.dist.standard_normal_log_density(z)[0],
                    "log_qz": terms["log_qz"], "log_qz~expected": m.dist.gaussian_log_density(z, mu, logvar)[0],
                    "elbo(1) - elbo(0)": e1 - e0,
                    "elbo(1) - elbo(0)~expected": np.mean(terms["log_pz"] - terms["log_qz"], axis=0)})
    return out


def estimator_fd(m, seed, kl="B", L=3, beta=0.3):
    """The estimator's backward against central differences of its forward in log p(x|z), z, mu, logvar."""
    rng = _rng(seed)
    log_px_z, z, mu, logvar = _estimator_inputs(rng, L)
    delbo = _normal(rng, 4)
    _, terms = _estimate(m, kl, log_px_z, z, mu, logvar, beta)
    cache = {"mu": mu, "logvar": logvar, "eps": _normal(rng, z.shape), "z": z, "log_px_z": log_px_z,
             "settings": {"estimator": kl, "beta": beta}, **terms}
    backward = m.elbo.estimator_b_backward if kl == "B" else m.elbo.estimator_a_backward
    grads = dict(zip(["dlog_px_z", "dz", "dmu", "dlogvar"], backward(delbo, cache)))
    grads = {k: np.broadcast_to(np.asarray(v, dtype=np.float64), a.shape)
             for (k, v), a in zip(grads.items(), (log_px_z, z, mu, logvar))}
    inputs = {"dlog_px_z": log_px_z, "dz": z, "dmu": mu, "dlogvar": logvar}
    f = _projected(lambda lp, zz, mm, lv: _estimate(m, kl, lp, zz, mm, lv, beta), inputs, delbo)

    def written(lp, zz, mm, lv):           # Kingma & Welling (2013), eq. 7 (B) and eq. 6 (A)
        if kl == "B":
            return np.sum(delbo * (lp.mean(axis=0) - beta * kl_by_quadrature(mm, lv)))
        log_pz = np.sum(-zz ** 2 / 2 - math.log(2 * math.pi) / 2, -1)
        log_qz = np.sum(-(zz - mm) ** 2 / (2 * np.exp(lv)) - lv / 2 - math.log(2 * math.pi) / 2, -1)
        # the two terms summed apart: not estimator_a_forward's expression (the leak scan's rule)
        return np.sum(delbo * lp.mean(axis=0)) + beta * np.sum(delbo * (log_pz - log_qz).mean(axis=0))

    return {**_pairs(grads, numerical(f, inputs)), **_written_out(grads, written, inputs)}


def _model(m, seed, likelihood, L, hidden, activation):
    rng = _rng(seed)
    model = m.vae.VAE(6, 3, hidden=tuple(hidden), likelihood=likelihood, activation=activation, seed=int(seed))
    for p in model.params.values():
        p += _normal(rng, p.shape, 0.3)
    x = (rng.uniform(size=(4, 6)) < 0.5) * 1.0 if likelihood == "bernoulli" else rng.standard_normal((4, 6))
    return model, x, rng.standard_normal((L, 4, 3))


def vae_fd(m, seed, kl="B", likelihood="bernoulli", L=1, hidden=(5,), activation="tanh"):
    """loss_and_grads of a small VAE against central differences of its loss in every parameter."""
    model, x, eps = _model(m, seed, likelihood, L, hidden, activation)
    _, grads = model.loss_and_grads(x, eps=eps, estimator=kl)
    return _pairs(grads, numerical(lambda: -float(model.elbo(x, eps=eps, estimator=kl).mean()), model.params))


def vae_encoder_fd(m, seed, kl="B", likelihood="bernoulli", L=1, hidden=(5,), activation="tanh"):
    """backward_to_encoder_output: dh and the decoder's gradients against central differences of
    sum(delbo * elbo), the encoder's output h held as given (VAE.forward's ``encoded``)."""
    model, x, eps = _model(m, seed, likelihood, L, hidden, activation)
    delbo = _normal(_rng(seed + 1), 4)
    _, cache = model.forward(x, eps, kl)
    h = {"dh": cache["h"].copy()}
    dh, grads = model.backward_to_encoder_output(cache, delbo)
    decoder = {k: p for k, p in model.params.items() if k.startswith("decoder")}

    def f():
        return float(np.sum(delbo * model.forward(x, eps, kl, encoded=(h["dh"], None))[0]))

    return _pairs({"dh": dh, **grads}, {**numerical(f, h), **numerical(f, decoder)})


def log_weights_value(m, seed, L=4, likelihood="bernoulli"):
    """log w (float64) of each sample: with one sample, log w is estimator A of the ELBO (beta = 1)."""
    model, x, eps = _model(m, seed, likelihood, L, (5,), "relu")
    log_w = m.evaluate.log_weights(model, x, eps)
    single = [model.elbo(x, eps=eps[i:i + 1], estimator="A").astype(np.float64) for i in range(L)]
    return {"log_w": log_w, "log_w~expected": np.stack(single)}


def iwae_value(m, seed, k=20, chunk=3, batch_size=3, dtype="float64"):
    """iwae_bound streamed over chunks and batches against one log-mean-exp over all k log-weights
    of the same noise (and its standard error from the same weights)."""
    model, x, _ = _model(m, seed, "bernoulli", 1, (5,), "relu")
    if dtype != "float64":
        model = m.vae.VAE(6, 3, hidden=(5,), activation="relu", dtype=dtype, seed=int(seed))
    estimate, se = m.evaluate.iwae_bound(model, x, k, rng=_rng(seed), chunk=chunk, batch_size=batch_size,
                                         return_se=True)
    rng, expected, expected_se = _rng(seed), [], []
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size]
        eps = np.concatenate([rng.standard_normal((min(chunk, k - done), len(xb), 3), dtype=model.dtype)
                              for done in range(0, k, chunk)])
        log_w = m.evaluate.log_weights(model, xb, eps)
        top = log_w.max(axis=0)
        w = w = np.exp(log_w - top)
        expected.append(top + np.log(w.mean(axis=0)))
        expected_se.append(np.sqrt(np.maximum((w ** 2).sum(0) / w.sum(0) ** 2 - 1 / k, 0)))
    return {"estimate": estimate, "estimate~expected": np.concatenate(expected),
            "se": se, "se~expected": np.concatenate(expected_se)}


def adam_value(m, seed, steps=1, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8):
    """Adam with a constant gradient g: bias correction makes every step lr g / (|g| + eps) and the
    moments (1 - beta1^t) g and (1 - beta2^t) g^2; and by hand, two steps of Kingma & Ba's example."""
    rng = _rng(seed)
    p0, g = _normal(rng, (3, 4)), _normal(rng, (3, 4))
    params, by_hand = {"a": p0.copy()}, {"w": np.array([1.0, -1.0])}
    opt = m.optim.Adam(params, lr=lr, beta1=beta1, beta2=beta2, eps=eps)
    for _ in range(steps):
        opt.step({"a": g.copy()})
    state = opt.state_dict()
    hand = m.optim.Adam(by_hand, lr=0.1, eps=0.0)
    for grad in ([2.0, -0.5], [1.0, 1.0]):       # worked out in tests/test_optim.py
        hand.step({"w": np.array(grad)})
    return {"a": params["a"], "a~expected": p0 - steps * lr * g / (np.abs(g) + eps),
            "m.a": state["m.a"], "m.a~expected": (1 - beta1 ** steps) * g,
            "v.a": state["v.a"], "v.a~expected": (1 - beta2 ** steps) * g ** 2,
            "two steps by hand": by_hand["w"], "two steps by hand~expected": np.array([0.8067820361, -0.9366103527])}


PROBES = {f.__name__: f for f in (affine_fd, mlp_fd, activation_fd, twin32, bernoulli_value, bernoulli_fd,
                                  bernoulli_extreme, gaussian_value, gaussian_fd, kl_value, kl_fd,
                                  sample_value, sample_fd, estimator_value, estimator_fd, vae_fd,
                                  vae_encoder_fd, log_weights_value, iwae_value, adam_value)}
