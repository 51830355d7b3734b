"""Neural-network building blocks with hand-written backward passes.

Every operation is a pair ``x_forward(...) -> (out, cache)`` and
``x_backward(dout, cache) -> grads``.  The forward stores in ``cache`` exactly
what the backward needs; the backward walks the forward's lines in reverse,
one chain-rule step per line.  Derivations: ``docs/derivations.md``.

Contents, top to bottom:

1. the affine layer  y = x W + b;
2. the activations relu, tanh, softplus, sigmoid, identity;
3. an MLP of any depth built from the two, with its parameters in a plain
   dict of named arrays (``params["encoder.0.W"]``) and its initialisation.

Shapes: B is the batch (any number of rows), n_in / n_out are layer widths.  J is the
scalar objective every backward differentiates (dJ/dy, the ``dy`` argument); L is never
the loss, it is the number of Monte Carlo samples (docs/notation.md).
"""
import numpy as np

from minivae.utils.validation import check_choice


# ---------------------------------------------------------------------------
# 1. Affine layer
# ---------------------------------------------------------------------------

def affine_forward(x, W, b):
    """y = x W + b.

    x: (B, n_in), W: (n_in, n_out), b: (n_out,)  ->  y: (B, n_out).
    """
    y = x @ W
    y += b                   # in place: `x @ W + b` would allocate a second (B, n_out) array
    cache = (x, W)
    return y, cache


def affine_backward(dy, cache, input_grad=True):
    """Given dJ/dy (B, n_out), return dJ/dx (B, n_in), dJ/dW (n_in, n_out), dJ/db (n_out,).

    With ``input_grad=False`` dJ/dx is not computed and None is returned in
    its place: the gradient with respect to the data is never used, and
    skipping it saves one of the three matrix products of the layer.
    Derivation: docs/derivations.md, "Affine layer".
    """
    # BEGIN SOLUTION affine_backward
    x, W = cache
    # W.T and x.T are transposed views, not copies: matmul hands BLAS the transpose flag
    dx = dy @ W.T if input_grad else None     # y_bj = sum_i x_bi W_ij  =>  dy_bj/dx_bi = W_ij
    dW = x.T @ dy            # dy_bj/dW_ij = x_bi, summed over the batch b
    db = dy.sum(axis=0)      # dy_bj/db_j = 1, summed over the batch b
    # END SOLUTION
    return dx, dW, db


def affine_backward_per_group(dy, cache, n_groups, input_grad=True):
    """:func:`affine_backward` with dJ/dW and dJ/db kept per group of rows instead of summed.

    The B rows are ``n_groups`` consecutive groups of equal size (e.g. N draws
    of one batch, stacked): dW[n] = x_n^T dy_n and db[n] = sum of dy_n's rows,
    shapes (n_groups, n_in, n_out) and (n_groups, n_out).  Summed over the
    groups they are affine_backward's dW and db; dx is the same as there.
    """
    # BEGIN SOLUTION affine_backward
    x, W = cache
    dx = dy @ W.T if input_grad else None
    x_g = x.reshape(n_groups, -1, x.shape[1])        # (G, B / G, n_in)
    dy_g = dy.reshape(n_groups, -1, dy.shape[1])     # (G, B / G, n_out)
    dW = np.swapaxes(x_g, 1, 2) @ dy_g               # per group: x^T dy
    db = dy_g.sum(axis=1)                            # per group: summed over its rows
    # END SOLUTION
    return dx, dW, db


# ---------------------------------------------------------------------------
# 2. Activations, applied elementwise: h = f(a)
# ---------------------------------------------------------------------------

def relu_forward(a):
    """h = max(a, 0).   a: any shape -> h: same shape."""
    h = np.maximum(a, 0)
    cache = h
    return h, cache


def relu_backward(dh, cache):
    """dJ/da = dJ/dh * [a > 0].  Derivation: docs/derivations.md, "Activations"."""
    # BEGIN SOLUTION activation_backward
    h = cache
    da = dh * (h > 0)        # f'(a) = 1 where a > 0 (equivalently h > 0), else 0
    # END SOLUTION
    return da


def tanh_forward(a):
    """h = tanh(a).   a: any shape -> h: same shape."""
    h = np.tanh(a)
    cache = h
    return h, cache


def tanh_backward(dh, cache):
    """dJ/da = dJ/dh * (1 - h^2).  Derivation: docs/derivations.md, "Activations"."""
    # BEGIN SOLUTION activation_backward
    h = cache
    da = dh * (1 - h * h)    # d tanh(a)/da = 1 - tanh(a)^2
    # END SOLUTION
    return da


def sigmoid_forward(a):
    """h = 1 / (1 + exp(-a)).   a: any shape -> h: same shape.

    For a < -88.7 (float32; -709.8 in float64) exp(-a) overflows to inf and h
    becomes 1 / inf = 0; the overflow is silenced, not avoided.  That 0 is not correctly
    rounded (the true h is a subnormal number down to a = -103.3 in float32); where h is a
    normal number (a > -87.3 in float32) it is within a few u (unit roundoff) of the true value.
    """
    with np.errstate(over="ignore"):
        h = np.exp(np.negative(a))
    h += 1
    np.divide(1, h, out=h)
    cache = h
    return h, cache


def sigmoid_backward(dh, cache):
    """dJ/da = dJ/dh * h (1 - h).  Derivation: docs/derivations.md, "Activations"."""
    # BEGIN SOLUTION activation_backward
    h = cache
    da = dh * h * (1 - h)    # d sigmoid(a)/da = sigmoid(a) (1 - sigmoid(a))
    # END SOLUTION
    return da


def softplus_forward(a):
    """h = log(1 + exp(a)), computed as ``max(a, 0) + log(1 + exp(-|a|))`` so large a cannot overflow.

    Both sides are equal (factor e^max(a, 0) out of 1 + e^a), and ``exp(-|a|)`` lies in
    (0, 1] for any a.  a: any shape -> h: same shape.
    """
    h = np.abs(a)                        # (not np.logaddexp(0, a): docs/performance.md)
    np.negative(h, out=h)
    np.exp(h, out=h)                     # e = exp(-|a|), in place: no temporary per step
    log_one_plus(h, out=h)
    h += np.maximum(a, 0)
    cache = (a, h)
    return h, cache


def log_one_plus(e, out=None):
    """log(1 + e) for e in [0, 1]: ``np.log1p(e)`` in float64, ``np.log(1 + e)`` in float32.

    Both are within 2u of log(1 + e) in absolute terms, all that softplus needs
    (docs/derivations.md, "log(1 + e) per dtype"; why two: docs/performance.md).
    ``out`` may be e itself (computed in place).
    """
    if e.dtype == np.float32:
        one_plus_e = np.add(e, 1, out=out)
        return np.log(one_plus_e, out=one_plus_e)
    return np.log1p(e, out=out)


def softplus_backward(dh, cache):
    """dJ/da = dJ/dh * sigmoid(a).  Derivation: docs/derivations.md, "Activations"."""
    # BEGIN SOLUTION activation_backward
    a, h = cache
    # d log(1 + e^a)/da = e^a / (1 + e^a) = sigmoid(a), and log sigmoid(a) = a - softplus(a):
    # sigmoid from the forward's h, never overflowing (a - h <= 0)
    sigmoid = np.exp(a - h)
    da = np.multiply(dh, sigmoid, out=sigmoid)   # written over sigmoid: one array fewer
    # END SOLUTION
    return da


def softplus_sum_forward(a):
    """s = sum_i softplus(a_i) over the last axis, with one log per 16 entries.   a: (..., n) -> s: (...)::

        sum_i softplus(a_i) = sum_i max(a_i, 0) + log prod_i (1 + e_i),   e_i = exp(-|a_i|)

    (softplus_forward's form, the sum of logs as the log of a product).  Each factor
    lies in (1, 2], so a product of 16 lies in (1, 2^16]: no overflow, no underflow.
    The last axis is folded in half four times while its length is even (784 -> 49).
    Error: ``|s - exact| <= u (8 n + 32 s)`` (docs/derivations.md, "Softplus summed over pixels").
    """
    relu = np.maximum(a, 0)
    s = relu.sum(axis=-1)
    e = np.abs(a)
    np.negative(e, out=e)
    np.exp(e, out=e)                         # e = exp(-|a|), in (0, 1]
    f = np.add(e, 1, out=e)                  # 1 + e, in (1, 2], written over e
    for _ in range(4):
        half, odd = divmod(f.shape[-1], 2)
        if odd:
            break
        f = np.multiply(f[..., :half], f[..., half:], out=f[..., :half])
    s += np.log(f).sum(axis=-1)
    cache = a
    return s, cache


def softplus_sum_backward(ds, cache):
    """dJ/da = dJ/ds[..., None] * sigmoid(a).  Derivation: docs/derivations.md, "Softplus summed over pixels".

    sigmoid(a) = 1 / (1 + exp(-a)) (:func:`sigmoid_forward`), within a few u of the true
    value wherever that is a normal number; below a = -88.7 (float32; -709.8 in float64) it is
    0, where the true value is a subnormal number.
    """
    a = cache
    sigmoid, _ = sigmoid_forward(a)                          # d softplus(a)/da = sigmoid(a)
    da = np.multiply(ds[..., None], sigmoid, out=sigmoid)    # broadcast over the last axis
    return da


def identity_forward(a):
    """h = a (used for affine-only networks)."""
    h = a
    cache = None
    return h, cache


def identity_backward(dh, cache):
    """dJ/da = dJ/dh.  Derivation: docs/derivations.md, "Activations"."""
    da = dh
    return da


ACTIVATIONS = {
    "relu": (relu_forward, relu_backward),
    "tanh": (tanh_forward, tanh_backward),
    "softplus": (softplus_forward, softplus_backward),
    "sigmoid": (sigmoid_forward, sigmoid_backward),
    "identity": (identity_forward, identity_backward),
}


# ---------------------------------------------------------------------------
# 3. Multi-layer perceptron
# ---------------------------------------------------------------------------

def init_mlp(sizes, rng, prefix, dtype=np.float64, activation="relu", std=None):
    """Initial parameters of an MLP with layer widths ``sizes``.

    ``sizes = [n_0, n_1, ..., n_K]`` gives K affine layers; layer k maps
    n_k -> n_{k+1} and owns ``f"{prefix}.{k}.W"`` (n_k, n_{k+1}) and
    ``f"{prefix}.{k}.b"`` (n_{k+1},).  ``sizes = [n_in, n_out]`` is a single
    affine map (no hidden layer).

    Initialisation keeps the variance of the pre-activations roughly constant
    from layer to layer:

    * layers followed by relu or softplus: He et al. (2015) normal,
      W ~ N(0, 2 / n_in);
    * all other layers (tanh, sigmoid, identity, and the output layer, which
      has no activation): Glorot & Bengio (2010) uniform,
      W ~ U(-a, a) with a = sqrt(6 / (n_in + n_out));
    * biases start at zero.

    ``std`` (a float) replaces all of this by the Kingma & Welling (2013, Sec. 5)
    setting: every weight and bias drawn from N(0, std^2) (the paper's "N(0, 0.01)"
    is read as std = 0.01).  Returns a dict of arrays of dtype ``dtype``.
    """
    check_choice(activation, "activation", ACTIVATIONS)
    n_layers = len(sizes) - 1
    params = {}
    for k in range(n_layers):
        n_in, n_out = sizes[k], sizes[k + 1]
        is_hidden = k < n_layers - 1
        if std is not None:
            W = rng.normal(0.0, std, size=(n_in, n_out))
            params[f"{prefix}.{k}.W"] = W.astype(dtype)
            params[f"{prefix}.{k}.b"] = rng.normal(0.0, std, size=n_out).astype(dtype)
            continue
        if is_hidden and activation in ("relu", "softplus"):
            W = rng.normal(0.0, np.sqrt(2.0 / n_in), size=(n_in, n_out))
        else:
            limit = np.sqrt(6.0 / (n_in + n_out))
            W = rng.uniform(-limit, limit, size=(n_in, n_out))
        params[f"{prefix}.{k}.W"] = W.astype(dtype)
        params[f"{prefix}.{k}.b"] = np.zeros(n_out, dtype=dtype)
    return params


def mlp_forward(params, prefix, n_layers, x, activation="relu"):
    """Run x through ``n_layers`` affine layers, with ``activation`` after all but the last.

    h_0 = x;  a_k = h_k W_k + b_k;  h_{k+1} = f(a_k) for k < K-1;  out = a_{K-1}.

    x: (B, n_0) -> out: (B, n_K).  ``cache`` is a list with, per layer,
    the affine cache and the activation cache (None for the last layer).
    """
    act_forward, _ = ACTIVATIONS[activation]
    h = x
    cache = []
    for k in range(n_layers):
        a, affine_cache = affine_forward(h, params[f"{prefix}.{k}.W"], params[f"{prefix}.{k}.b"])
        if k < n_layers - 1:
            h, act_cache = act_forward(a)
        else:
            h, act_cache = a, None
        cache.append((affine_cache, act_cache))
    out = h
    return out, cache


def mlp_backward(dout, cache, prefix, activation="relu", input_grad=True, n_groups=None):
    """Backward pass of :func:`mlp_forward`.

    Given dJ/dout (B, n_K), return dJ/dx (B, n_0) and a dict of gradients
    with the keys ``f"{prefix}.{k}.W"`` and ``f"{prefix}.{k}.b"``.
    ``input_grad=False`` skips dJ/dx (returned as None), e.g. when x is the
    data: for the encoder of the standard model that is a fifth of the
    matrix-product work of a training step.
    ``n_groups=N`` keeps every parameter gradient per group of rows (shape
    ``(N, *param.shape)``, see :func:`affine_backward_per_group`): one gradient per
    Monte Carlo draw, as minivae.topics.gradient_estimators needs.
    Derivation: docs/derivations.md, "MLP".
    """
    _, act_backward = ACTIVATIONS[activation]
    n_layers = len(cache)
    grads = {}
    dh = dout
    for k in reversed(range(n_layers)):
        affine_cache, act_cache = cache[k]
        if k < n_layers - 1:
            da = act_backward(dh, act_cache)
        else:
            da = dh
        if n_groups is None:
            dh, dW, db = affine_backward(da, affine_cache, input_grad=input_grad or k > 0)
        else:
            dh, dW, db = affine_backward_per_group(da, affine_cache, n_groups,
                                                   input_grad=input_grad or k > 0)
        grads[f"{prefix}.{k}.W"], grads[f"{prefix}.{k}.b"] = dW, db
    dx = dh
    return dx, grads
