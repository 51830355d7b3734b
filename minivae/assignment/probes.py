"""Probes: what the grader asks of an exercise's functions, on inputs it chooses.

A probe is a function ``probe(m, seed, **case) -> {name: array}``: it draws its
inputs from ``numpy.random.default_rng(seed)``, calls the functions of the
modules in ``m`` (a namespace with ``nn``, ``dist``, ``elbo``, ``vae``,
``evaluate``, ``optim``) and returns their raw outputs as arrays.  The grader runs each probe
twice: in its own process on the reference package, and in a separate worker
process (minivae/assignment/_worker.py) on the submission; the verdict compares
the two sets of arrays (minivae.assignment.grader).  This file imports nothing
of minivae: the worker loads it from the grader's copy, beside itself, and hands
it the submission's modules.

Which probes and cases make up each named check is in the exercise table
(minivae.assignment.exercises, ``checks``).
"""
import numpy as np

EXTREME = 1e4          # |logits|, |logvar| and pre-activations of the "extremes" cases


def _rng(seed):
    return np.random.default_rng(int(seed))


def _dtype(name):
    return {"float32": np.float32, "float64": np.float64}[name]


def _normal(rng, shape, dtype, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


def affine(m, seed, dtype="float64", input_grad=True, groups=None):
    """affine_backward (or affine_backward_per_group) on random x (6, 4), W (4, 3), b (3,), dy (6, 3)."""
    rng, dt = _rng(seed), _dtype(dtype)
    x, W, b, dy = (_normal(rng, s, dt) for s in ((6, 4), (4, 3), (3,), (6, 3)))
    _, cache = m.nn.affine_forward(x, W, b)
    if groups:
        dx, dW, db = m.nn.affine_backward_per_group(dy, cache, groups, input_grad=input_grad)
    else:
        dx, dW, db = m.nn.affine_backward(dy, cache, input_grad=input_grad)
    out = {"dW": dW, "db": db}
    if input_grad:
        out["dx"] = dx
    return out


def mlp(m, seed, activation="relu", hidden=(4, 3), dtype="float64"):
    """mlp_backward of a ``(3, *hidden, 2)`` network with random biases: dx and every gradient."""
    rng, dt = _rng(seed), _dtype(dtype)
    sizes = [3, *hidden, 2]
    params = m.nn.init_mlp(sizes, rng, "net", dt, activation)
    for k in params:
        params[k] = params[k] + _normal(rng, params[k].shape, dt, 0.3)
    x, dout = _normal(rng, (6, 3), dt), _normal(rng, (6, 2), dt)
    _, cache = m.nn.mlp_forward(params, "net", len(sizes) - 1, x, activation)
    dx, grads = m.nn.mlp_backward(dout, cache, "net", activation)
    return {"dx": dx, **{"grad." + k: v for k, v in grads.items()}}


def activation(m, seed, name="relu", dtype="float64", extreme=False):
    """The backward of one activation at random pre-activations (and at +-EXTREME)."""
    rng, dt = _rng(seed), _dtype(dtype)
    a = rng.standard_normal((4, 5)) * 3
    a[np.abs(a) < 1e-3] = 0.5                          # keep off relu's kink
    if extreme:
        # the drawn entries where float32 rounds the derivatives to 1e-4 of themselves or better
        # (1 - tanh^2 >= 1.3e-3; the float64 case, its twin, shares them): at |a| ~ 8, 1 - t^2 is a few
        # ulps and correct forms (1 - t^2, dh - dh t^2) differed by 8% (1.25x the tolerance, 1 seed in
        # 20000); at 40 and beyond, t = 1 exactly and every form gives 0
        a = np.clip(a, -4.0, 4.0)
        a[0, :3] = [EXTREME, -EXTREME, 40.0]
    a, dh = a.astype(dt), _normal(rng, (4, 5), dt)
    forward, backward = getattr(m.nn, name + "_forward"), getattr(m.nn, name + "_backward")
    _, cache = forward(a)
    return {"da": backward(dh, cache)}


def _values_and_grads(forward, backward, args, upstream, part, names):
    """forward(*args) -> (value, cache); the value, or backward(upstream, cache), by ``part``.

    ``names``: the value's name and the gradients' (the functions' own, e.g. ("kl", "dmu",
    "dlogvar")), so a failure names the array a student wrote, never its position."""
    value, cache = forward(*args)
    if part == "value":
        return {names[0]: value}
    grads = backward(upstream(value), cache)
    grads = grads if isinstance(grads, tuple) else (grads,)
    if len(grads) != len(names) - 1:
        raise ValueError(f"the backward returned {len(grads)} gradient(s), expected {len(names) - 1}: "
                         f"{', '.join(names[1:])}")
    return dict(zip(names[1:], grads))


def bernoulli(m, seed, part="value", dtype="float64", extreme=False, grey=False):
    """bernoulli_log_likelihood on x (3, 6) (binary or grey) and logits (2, 3, 6), and its backward."""
    rng, dt = _rng(seed), _dtype(dtype)
    x = rng.uniform(size=(3, 6)) if grey else (rng.uniform(size=(3, 6)) < 0.5)
    logits = rng.standard_normal((2, 3, 6)) * 3
    if extreme:
        # two pixels predicted right (terms ~0: x l and softplus(l) cancel 1e4 when summed apart), two
        # wrong (terms -800), so log_p ~ -1600 holds float32's rounding of 1e4 (1e-3) to 1e-6 of it;
        # with x drawn, log_p could be 0.01 with that rounding in it (correct forms disagreed by 1.4x
        # the tolerance on 3 seeds in 3000)
        x[0, :4] = [1, 0, 0, 1]
        logits[0, 0, :4] = [EXTREME, -EXTREME, 800.0, -800.0]
    return _values_and_grads(m.dist.bernoulli_log_likelihood, m.dist.bernoulli_log_likelihood_backward,
                             (x.astype(dt), logits.astype(dt)),
                             lambda v: _normal(rng, np.shape(v), dt), part, ("log_p", "dlogits"))


def gaussian(m, seed, part="value", layout="q", dtype="float64", extreme=False):
    """gaussian_log_density in the VAE's two layouts (q: value (L, B, D), mean and logvar (B, D);
    p: x (B, P), mean (L, B, P), logvar (P,)), or standard_normal_log_density (std: z (L, B, D)),
    and its backward."""
    rng, dt = _rng(seed), _dtype(dtype)
    upstream = lambda v: _normal(rng, np.shape(v), dt)     # noqa: E731
    if layout == "std":
        z = rng.standard_normal((2, 3, 4)) * (30.0 if extreme else 1.0)
        return _values_and_grads(m.dist.standard_normal_log_density,
                                 m.dist.standard_normal_log_density_backward, (z.astype(dt),),
                                 upstream, part, ("log_p", "dz"))
    shapes = ((2, 3, 4), (3, 4), (3, 4)) if layout == "q" else ((3, 4), (2, 3, 4), (4,))
    value, mean, logvar = (rng.standard_normal(s) for s in shapes)
    if extreme:
        logvar.flat[:2] = [30.0, -30.0]
    return _values_and_grads(m.dist.gaussian_log_density, m.dist.gaussian_log_density_backward,
                             (value.astype(dt), mean.astype(dt), logvar.astype(dt)), upstream, part,
                             ("log_N", "dvalue", "dmean", "dlogvar"))


def kl(m, seed, part="value", dtype="float64", extreme=False, near_prior=False):
    """kl_standard_normal on mu, logvar (4, 3), and its backward."""
    rng, dt = _rng(seed), _dtype(dtype)
    mu, logvar = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    if extreme:
        logvar[0, :2] = [30.0, -30.0]
    if near_prior:
        # |mu| >= 1e-4 keeps each row's KL >= 1.5e-8, where the textbook exp(logvar) - 1 (valid) rounds
        # by 1e-16 a dimension, 2e-8 of the KL; with mu drawn near 0, a row's KL could be 1e-10 and
        # that rounding 2.8x the tolerance (5 seeds in 20000)
        mu, logvar = (mu + np.sign(mu)) * 1e-4, logvar * 1e-6
    return _values_and_grads(m.dist.kl_standard_normal, m.dist.kl_standard_normal_backward,
                             (mu.astype(dt), logvar.astype(dt)),
                             lambda v: _normal(rng, np.shape(v), dt), part, ("kl", "dmu", "dlogvar"))


def sample(m, seed, part="value", dtype="float64", L=3, extreme=False):
    """gaussian_sample on mu, logvar (4, 3) and eps (L, 4, 3), and its backward."""
    rng, dt = _rng(seed), _dtype(dtype)
    mu, logvar, eps = rng.standard_normal((4, 3)), rng.standard_normal((4, 3)), rng.standard_normal((L, 4, 3))
    if extreme:
        logvar[0, :2] = [30.0, -30.0]
    return _values_and_grads(m.dist.gaussian_sample, m.dist.gaussian_sample_backward,
                             (mu.astype(dt), logvar.astype(dt), eps.astype(dt)),
                             lambda v: _normal(rng, np.shape(v), dt), part, ("z", "dmu", "dlogvar"))


def _given(value, shape, dt):
    """A gradient as the VAE's backward adds it: a Python number (e.g. estimator B's dz = 0)
    stands for an array of it; anything else is broadcast to ``shape`` with its own dtype."""
    if isinstance(value, (int, float)):
        return np.full(shape, value, dt)
    return np.broadcast_to(np.asarray(value), shape)


def estimator(m, seed, part="value", kl="B", L=1, dtype="float64", beta=1.0, extreme=False):
    """An ELBO estimator's own terms, called as the VAE calls them, on log p(x|z) (L, B), z (L, B, D),
    mu and logvar (B, D): elbo and its terms (value), or the backward's four gradients (gradient)."""
    rng, dt = _rng(seed), _dtype(dtype)
    log_px_z = _normal(rng, (L, 4), dt, 1e4 if extreme else 10.0)
    z, mu, logvar = _normal(rng, (L, 4, 3), dt), _normal(rng, (4, 3), dt), _normal(rng, (4, 3), dt)
    if extreme:
        logvar[0, :2] = [30.0, -30.0]
    eps = _normal(rng, (L, 4, 3), dt)
    if kl == "B":
        elbo, terms = m.elbo.estimator_b_forward(log_px_z, mu, logvar, float(beta))
        keys, backward = ("kl_qp",), m.elbo.estimator_b_backward
    else:
        elbo, terms = m.elbo.estimator_a_forward(log_px_z, z, mu, logvar, float(beta))
        keys, backward = ("log_pz", "log_qz"), m.elbo.estimator_a_backward
    if part == "value":
        return {"elbo": elbo, **{k: terms[k] for k in keys}}
    cache = {"mu": mu, "logvar": logvar, "eps": eps, "z": z, "log_px_z": log_px_z,
             "settings": {"estimator": kl, "beta": float(beta)}, **terms}
    dlog_px_z, dz, dmu, dlogvar = backward(_normal(rng, 4, dt), cache)
    return {"dlog_px_z": _given(dlog_px_z, (L, 4), dt), "dz": _given(dz, (L, 4, 3), dt),
            "dmu": _given(dmu, (4, 3), dt), "dlogvar": _given(dlogvar, (4, 3), dt)}


def _model(m, rng, likelihood, hidden, activation, dtype, obs_logvar, scale):
    """A small VAE (P = 6, D = 3) with its parameters moved off their initial values."""
    model = m.vae.VAE(6, 3, hidden=tuple(hidden), likelihood=likelihood, activation=activation,
                      dtype=_dtype(dtype), seed=int(rng.integers(1000)), obs_logvar=obs_logvar)
    for k, p in model.params.items():
        p[...] = p * scale + _normal(rng, p.shape, p.dtype, 0.3)
    x = rng.uniform(size=(4, 6)) < 0.5 if likelihood == "bernoulli" else rng.standard_normal((4, 6))
    return model, x.astype(_dtype(dtype))


def vae(m, seed, part="value", kl="B", likelihood="bernoulli", L=1, hidden=(5,),
        activation="tanh", dtype="float64", obs_logvar="learned", beta=1.0, scale=1.0):
    """A small VAE's forward (value: elbo and the estimator's cache entries), its gradients
    (gradient: loss_and_grads) or backward_to_encoder_output with a random delbo (encoder_output)."""
    rng = _rng(seed)
    model, x = _model(m, rng, likelihood, hidden, activation, dtype, obs_logvar, scale)
    eps = _normal(rng, (L, len(x), 3), _dtype(dtype))
    if part == "gradient":
        loss, grads = model.loss_and_grads(x, eps=eps, estimator=kl, beta=beta)
        return {"loss": np.asarray(loss), **{"grad." + k: v for k, v in grads.items()}}
    elbo, cache = model.forward(x, eps, kl, float(beta))
    if part == "value":
        keys = ("kl_qp",) if kl == "B" else ("log_pz", "log_qz")
        return {"elbo": elbo, **{k: cache[k] for k in keys}}
    dh, grads = model.backward_to_encoder_output(cache, _normal(rng, len(x), _dtype(dtype)))
    return {"dh": dh, **{"grad." + k: v for k, v in grads.items()}}


def log_weights(m, seed, L=4, dtype="float64", likelihood="bernoulli"):
    """evaluate.log_weights_and_cache of a small VAE: log w (L, B)."""
    rng = _rng(seed)
    model, x = _model(m, rng, likelihood, (5,), "relu", dtype, "learned", 1.0)
    log_w, _ = m.evaluate.log_weights_and_cache(model, x, _normal(rng, (L, len(x), 3), _dtype(dtype)))
    return {"log_w": log_w}


def iwae(m, seed, k=20, chunk=3, batch_size=3, dtype="float64"):
    """evaluate.iwae_bound of a small VAE, streamed in chunks and batches: estimate and se."""
    rng = _rng(seed)
    model, x = _model(m, rng, "bernoulli", (5,), "relu", dtype, "learned", 1.0)
    estimate, se = m.evaluate.iwae_bound(model, x, k, rng=np.random.default_rng(seed), chunk=chunk,
                                         batch_size=batch_size, return_se=True)
    return {"estimate": estimate, "se": se}


def adam(m, seed, steps=3, dtype="float64", lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8):
    """``steps`` Adam steps on two random parameters with random gradients: parameters and moments."""
    rng, dt = _rng(seed), _dtype(dtype)
    params = {"a": _normal(rng, (3, 4), dt), "b": _normal(rng, (5,), dt)}
    opt = m.optim.Adam(params, lr=lr, beta1=beta1, beta2=beta2, eps=eps)
    out = {}
    for t in range(steps):
        opt.step({k: _normal(rng, p.shape, dt) for k, p in params.items()})
        out.update({f"step{t}.{k}": p.copy() for k, p in params.items()})
    state = opt.state_dict()
    out.update({k: v for k, v in state.items() if k.startswith(("m.", "v."))})
    return out


# the sizes each probe draws its inputs with, named, so a diagnosis can say which factor it found
_B, _D = "B, the batch size", "D, the number of latent dimensions"
SIZES = {"affine": {_B: 6}, "mlp": {_B: 6}, "bernoulli": {"P, the number of pixels": 6},
         "gaussian": {"D, the number of dimensions": 4, _B: 3}, "kl": {_D: 3, _B: 4}, "sample": {_D: 3, _B: 4},
         "estimator": {_D: 3, _B: 4}, "vae": {_D: 3, _B: 4, "P, the number of pixels": 6},
         "log_weights": {_B: 4}, "iwae": {_B: 4}, "adam": {}}

PROBES = {f.__name__: f for f in (affine, mlp, activation, bernoulli, gaussian, kl,
                                  sample, estimator, vae, log_weights, iwae, adam)}
