"""First-order optimisers that MINIMISE a loss (here -ELBO) over a dict of parameter arrays.

Contract shared by every optimiser:

* ``params`` is the model's own dict of named arrays (``params["encoder.0.W"]``) and
  ``grads`` a dict with exactly the same keys and shapes.  ``step(grads)`` updates the
  arrays IN PLACE (``p -= ...``); ``params[k]`` is never rebound, so the model, which
  holds the same array objects, sees every update.
* Every state buffer (velocity, squared-gradient sum, Adam's moments) is allocated once,
  in its parameter's dtype; scalar factors are Python floats, so float32 stays float32.
* Each optimiser's ``_update(p, g, *buffers)`` is its formula, written once, as in the
  paper.  ``step`` checks the gradients, then applies ``_update`` to every parameter
  (over whole arrays or blocks of a size timed in its first steps; that walk and a
  flush of subnormal buffer entries change no number: docs/performance.md, "The optimiser").
* ``state_dict()`` is a flat dict of NumPy arrays, saveable with ``np.savez`` and
  loadable with ``np.load(..., allow_pickle=False)``::

      "name"            np.array("adam")          which optimiser
      "t"               np.array(3)               steps taken
      "lr", "beta1", …  np.array(0.001), …        the settings of that optimiser
      "m.encoder.0.W"   array like the parameter  buffer "m" of parameter "encoder.0.W"

  Setting names contain no ".", buffer entries always do ("<buffer>.<parameter key>").
  ``load_state_dict`` restores all of it, so a resumed run is bit-identical to an
  uninterrupted one.
"""
import math
import time

import numpy as np

from minivae.utils.blocks import FLUSH_EVERY, BlockSizes, blocks, flush_subnormals
from minivae.utils.validation import check_bool, check_choice, check_count, check_number, check_numeric_array


class NonFiniteGradient(ValueError):
    """A gradient held NaN or inf, or would make a buffer or a step NaN or inf (an overflowing
    g^2, a 0 / 0 with eps = 0); raised by ``step`` before any parameter changed."""


def _check_lr(lr):
    """The learning rate as a Python float: a finite number > 0."""
    return check_number(lr, "learning rate lr", low=0, low_inclusive=False)


def _check_fraction(name, value):
    """Momentum and Adam's betas: a number in [0, 1)."""
    return check_number(value, name, low=0, high=1, high_inclusive=False)


def _check_eps(eps):  # 0 is allowed; step refuses a 0 / 0 it would cause
    return check_number(eps, "eps", low=0)


# The rule for each setting, shared by the constructors and load_state_dict
SETTING_RULES = {
    "lr": _check_lr,
    "momentum": lambda value: _check_fraction("momentum", value),
    "beta1": lambda value: _check_fraction("beta1", value),
    "beta2": lambda value: _check_fraction("beta2", value),
    "eps": _check_eps,
    "nesterov": lambda value: check_bool(value, "nesterov"),
}


class Optimizer:
    """Shared bookkeeping; a subclass sets ``name``, ``settings``, ``buffers`` and ``_update``.

    settings : names of the scalar hyperparameters saved in ``state_dict`` (attributes of self)
    buffers  : names of the per-parameter state arrays, e.g. ("m", "v") for Adam

    ``lr`` is a plain attribute: a learning-rate schedule may set it between steps.
    """

    name = ""
    settings = ("lr",)
    buffers = ()
    nonnegative = ()         # buffers that can only be >= 0 (sums and averages of g^2)

    def __init__(self, params, lr):
        if not isinstance(params, dict) or not params:
            raise ValueError(f"params must be a non-empty dict of arrays, got {type(params).__name__}")
        for k, p in params.items():
            if not (isinstance(p, np.ndarray) and np.issubdtype(p.dtype, np.floating)):
                raise ValueError(f"params[{k!r}] must be a floating-point NumPy array (it is updated "
                                 f"in place), got {type(p).__name__} {getattr(p, 'dtype', '')}")
        self.params = params
        self.lr = _check_lr(lr)
        self.t = 0
        # state[b][k]: buffer b of parameter k, same shape and dtype as params[k]
        self.state = {b: {k: np.zeros_like(p) for k, p in params.items()} for b in self.buffers}
        self.block_sizes = BlockSizes()     # whole arrays or blocks in step (speed only)

    def step(self, grads):
        """One update of every parameter from ``grads`` (same keys and shapes as ``params``).

        All of ``grads`` is checked before any parameter changes, so a bad call leaves the
        model and the optimiser untouched.
        """
        grads = self._check_grads(grads)
        self._check_finite_step(grads, self.t + 1)
        self.t += 1
        size, tic = self.block_sizes.next_size(), time.perf_counter()
        for k, p in self.params.items():
            for block in blocks(p, grads[k], *(self.state[b][k] for b in self.buffers), size=size):
                self._update(*block)
        self.block_sizes.record(size, time.perf_counter() - tic)
        if self.t % FLUSH_EVERY == 0:
            flush_subnormals(*(v for b in self.buffers for v in self.state[b].values()))

    def _check_grads(self, grads):
        """``grads`` as a dict of real arrays of the parameters' shapes, all finite; or raise."""
        if not isinstance(grads, dict):
            raise TypeError(f"grads must be a dict of arrays keyed like params, got "
                            f"{type(grads).__name__}")
        if grads.keys() != self.params.keys():
            missing = sorted(self.params.keys() - grads.keys())
            extra = sorted(grads.keys() - self.params.keys())
            raise ValueError(f"grads must have exactly the keys of params; missing {missing}, "
                             f"unexpected {extra}")
        # a complex, string or object gradient is a TypeError here, before t or a buffer moves
        checked = {k: check_numeric_array(g, f"grads[{k!r}]") for k, g in grads.items()}
        # the update runs in the parameter's dtype (a copy only where the dtypes differ; a value
        # too large for it becomes inf and is refused below)
        with np.errstate(over="ignore"):
            checked = {k: np.asarray(g, dtype=self.params[k].dtype) for k, g in checked.items()}
        self._square_sum = {}               # g.g of each parameter, for _check_finite_step
        for k, p in self.params.items():
            g = checked[k]
            if g.shape != p.shape:
                raise ValueError(f"grads[{k!r}] has shape {g.shape}, "
                                 f"but params[{k!r}] has shape {p.shape}")
            # one NaN would spread to every parameter it touches, and never leave.  g.g (one
            # pass of BLAS, no allocation) is finite exactly when every entry is and the sum of
            # their squares does not overflow; only when it is not do min and max say which
            flat = g.reshape(-1)
            with np.errstate(all="ignore"):
                self._square_sum[k] = float(np.dot(flat, flat)) if g.size else 0.0
            if not math.isfinite(self._square_sum[k]) and not (
                    math.isfinite(g.min()) and math.isfinite(g.max())):
                raise NonFiniteGradient(f"grads[{k!r}] contains NaN or inf; no parameter was updated")
        return checked

    def _check_finite_step(self, grads, t):
        """Raise NonFiniteGradient if step ``t`` with ``grads`` would put NaN or inf into a buffer."""

    def _update(self, p, g, *buffers):
        raise NotImplementedError

    def state_dict(self):
        """A flat dict of NumPy arrays (copies): name, t, the settings, then "<buffer>.<key>"."""
        state = {"name": np.array(self.name), "t": np.array(self.t)}
        for s in self.settings:
            state[s] = np.array(getattr(self, s))
        for b in self.buffers:
            for k, v in self.state[b].items():
                state[f"{b}.{k}"] = v.copy()
        return state

    def load_state_dict(self, state):
        """Restore a ``state_dict()`` exactly: step count, settings and every buffer.

        Everything is checked first (see :func:`check_state_dict`), so a bad state
        raises (TypeError or ValueError) and changes nothing.
        """
        t, settings = check_state_dict(state, self.params, name=self.name)
        self.t = t
        for s, value in settings.items():
            setattr(self, s, value)
        for b in self.buffers:
            for k, v in self.state[b].items():
                v[...] = state[f"{b}.{k}"]      # same dtype: checked


def _check_squares(optimizer, grads, squares, bound, eps, what):
    """Raise NonFiniteGradient if a buffer of squared gradients would overflow, or be 0 with eps 0.

    ``squares(k)``: that buffer of parameter k after this step (computed only when needed);
    ``bound[k]``: a float no entry exceeds (updated here); ``eps``: added to its square root.
    """
    for k, g in grads.items():
        dtype, after = g.dtype, bound[k] + optimizer._square_sum[k]     # >= every new entry
        if after > float(np.finfo(dtype).max):          # an entry might overflow: compute them
            with np.errstate(over="ignore"):
                after = float(squares(k).max())
            if not math.isfinite(after):
                raise NonFiniteGradient(
                    f"grads[{k!r}] has entries up to {float(np.abs(g).max()):.3g}: {what} overflows "
                    f"{dtype.name}; no parameter was updated (scale the loss down or clip the gradients)")
        bound[k] = after
        if dtype.type(eps) == 0 and not (squares(k) > 0).all():
            raise NonFiniteGradient(
                f"{optimizer.name} with eps = {eps!r} would divide 0 by 0 where every gradient of "
                f"params[{k!r}] so far is 0; no parameter was updated (use eps > 0)")


class SGD(Optimizer):
    """Plain gradient descent:  p <- p - lr g."""

    name = "sgd"

    def _update(self, p, g):
        p -= self.lr * g


class Momentum(Optimizer):
    """Gradient descent with momentum (heavy ball, Polyak 1964), optionally Nesterov's.

    Classical (``nesterov=False``), as in Sutskever et al. (2013), eq. 1-2::

        v <- mu v - lr g
        p <- p + v

    Nesterov (``nesterov=True``): Sutskever et al. (2013), eq. 3-4, take the gradient at
    the look-ahead point p + mu v.  Storing the look-ahead point as p (the change of
    variables of Bengio et al. 2013, also used by PyTorch) turns that into ::

        v <- mu v - lr g
        p <- p + mu v - lr g        (with the new v)

    so only the gradient at the stored p is needed.
    """

    name = "momentum"
    settings = ("lr", "momentum", "nesterov")
    buffers = ("v",)

    def __init__(self, params, lr, momentum=0.9, nesterov=False):
        super().__init__(params, lr)
        self.momentum = _check_fraction("momentum", momentum)
        self.nesterov = check_bool(nesterov, "nesterov")

    def _update(self, p, g, v):
        mu, step = self.momentum, self.lr * g
        v *= mu
        v -= step                               # v = mu v - lr g
        if not self.nesterov:
            p += v                              # p = p + v
        else:
            p -= step
            p += mu * v                         # p = p - lr g + mu v


class Adagrad(Optimizer):
    """Adagrad, diagonal version (Duchi, Hazan & Singer 2011, JMLR), the optimiser of the
    AEVB experiments (Kingma & Welling 2013, Sec. 5)::

        h <- h + g^2                      (elementwise sum of squared gradients)
        p <- p - lr g / (sqrt(h) + eps)

    Each coordinate's step shrinks as its gradients accumulate.
    """

    name = "adagrad"
    settings = ("lr", "eps")
    buffers = ("h",)
    nonnegative = ("h",)

    def __init__(self, params, lr=0.01, eps=1e-8):
        super().__init__(params, lr)
        self.eps = _check_eps(eps)
        self._h_bound = None      # per parameter, a number no entry of h exceeds

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self._h_bound = None

    def _check_finite_step(self, grads, t):
        h = self.state["h"]
        if self._h_bound is None:                         # at the start, and after a load
            self._h_bound = {k: float(v.max(initial=0.0)) for k, v in h.items()}
        _check_squares(self, grads, lambda k: h[k] + np.square(grads[k]), self._h_bound,
                       self.eps, "h + g^2")

    def _update(self, p, g, h):
        h += g ** 2                             # h = h + g^2
        p -= self.lr * (g / (np.sqrt(h) + self.eps))


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015, Algorithm 1).

    At step t = 1, 2, ...::

        m <- b1 m + (1 - b1) g                      biased first moment
        v <- b2 v + (1 - b2) g^2                    biased second raw moment
        m_hat = m / (1 - b1^t),  v_hat = v / (1 - b2^t)     bias corrections
        p <- p - lr m_hat / (sqrt(v_hat) + eps)

    The last two lines can fold both bias corrections into two scalars (the end of
    Sec. 2 of the paper)::

        p <- p - lr_t m / (sqrt(v) + eps_t),
        lr_t = lr sqrt(1 - b2^t) / (1 - b1^t),   eps_t = eps sqrt(1 - b2^t),

    the same update (multiply numerator and denominator by sqrt(1 - b2^t)), equal up
    to rounding, with two passes over the arrays fewer.
    """

    name = "adam"
    settings = ("lr", "beta1", "beta2", "eps")
    buffers = ("m", "v")
    nonnegative = ("v",)

    def __init__(self, params, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(params, lr)
        self.beta1 = _check_fraction("beta1", beta1)
        self.beta2 = _check_fraction("beta2", beta2)
        self.eps = _check_eps(eps)

    def _check_finite_step(self, grads, t):
        b2, v = self.beta2, self.state["v"]
        # v is an average of squares: only g^2 itself can overflow (a bound of 0 says so)
        _check_squares(self, grads, lambda k: b2 * v[k] + (1 - b2) * np.square(grads[k]),
                       dict.fromkeys(v, 0.0), self.eps * math.sqrt(1 - b2 ** t), "g^2 in Adam's v")

    def _update(self, p, g, m, v):
        """One Adam step on p in place, with its gradient g and moments m and v (same shapes)."""
        lr, b1, b2, eps, t = self.lr, self.beta1, self.beta2, self.eps, self.t
        # BEGIN SOLUTION adam_update
        m *= b1
        m += (1 - b1) * g                       # m = b1 m + (1 - b1) g
        v *= b2
        v += (1 - b2) * g ** 2                  # v = b2 v + (1 - b2) g^2
        c1, c2 = 1 - b1 ** t, 1 - b2 ** t       # bias corrections: m_hat = m / c1, v_hat = v / c2
        lr_t = lr * math.sqrt(c2) / c1
        eps_t = eps * math.sqrt(c2)
        p -= lr_t * (m / (np.sqrt(v) + eps_t))  # = lr m_hat / (sqrt(v_hat) + eps)
        # END SOLUTION


OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "adagrad": Adagrad, "adam": Adam}


def make_optimizer(name, params, lr=None, **kwargs):
    """The optimiser called ``name`` over ``params``.

    Parameters
    ----------
    name : {"sgd", "momentum", "adagrad", "adam"}
    params : dict of str -> float ndarray, updated in place by ``step``
    lr : float > 0, or None for the default of adagrad (0.01) and adam (1e-3);
        sgd and momentum have no default and need it.
    **kwargs : the optimiser's other settings (momentum, nesterov, beta1, beta2, eps)
    """
    check_choice(name, "optimizer", OPTIMIZERS)
    if lr is None:
        if name in ("sgd", "momentum"):
            raise ValueError(f"optimizer {name!r} has no default learning rate; pass lr=...")
        return OPTIMIZERS[name](params, **kwargs)
    return OPTIMIZERS[name](params, lr, **kwargs)


def state_keys(name, params):
    """The entries of the ``state_dict()`` of optimizer ``name`` over ``params``."""
    cls = OPTIMIZERS[check_choice(name, "optimizer", OPTIMIZERS)]
    return ["name", "t", *cls.settings] + [f"{b}.{k}" for b in cls.buffers for k in params]


def _scalar(state, key, kinds, what):
    """The 0-d array ``state[key]`` as a Python scalar, if its dtype kind is one of ``kinds``."""
    value = state[key]
    if not isinstance(value, np.ndarray) or value.shape != () or value.dtype.kind not in kinds:
        raise TypeError(f"state[{key!r}] must be {what} (a 0-d array), got "
                        f"{type(value).__name__} {getattr(value, 'dtype', '')} of shape "
                        f"{np.shape(value)}")
    return value.item()


def check_state_dict(state, params, name=None):
    """Check a ``state_dict()`` against ``params`` by the constructors' rules; return (t, settings).

    ``name`` (optional) is the optimiser the state must belong to.  Checked: the
    entries are exactly those of that optimiser; ``t`` is an integer >= 0; every
    setting obeys its constructor's rule (lr > 0, betas and momentum in [0, 1),
    eps >= 0); every buffer has its parameter's shape and dtype, is finite, and
    the buffers of squared gradients (Adam's v, Adagrad's h) are >= 0.  A value of
    the wrong type is a TypeError, of the wrong value a ValueError.
    """
    if not isinstance(state, dict):
        raise TypeError(f"an optimizer state must be a dict of arrays, got {type(state).__name__}")
    saved = _scalar(state, "name", "U", "the optimizer's name") if "name" in state else None
    if name is not None and saved != name:
        raise ValueError(f"this state is for optimizer {saved!r}, not {name!r}")
    expected = state_keys(saved, params)
    if state.keys() != set(expected):
        missing = sorted(set(expected) - state.keys())
        extra = sorted(state.keys() - set(expected))
        raise ValueError(f"{saved} state does not match these params; missing {missing}, "
                         f"unexpected {extra}")
    t = check_count(_scalar(state, "t", "iu", "an integer"), "state['t'] (steps taken)", low=0)
    cls = OPTIMIZERS[saved]
    settings = {s: SETTING_RULES[s](_scalar(state, s, "b", "True or False") if s == "nesterov"
                                    else _scalar(state, s, "iuf", "a number"))
                for s in cls.settings}
    for b in cls.buffers:
        for k, p in params.items():
            key, value = f"{b}.{k}", state[f"{b}.{k}"]
            if not isinstance(value, np.ndarray) or value.dtype != p.dtype:
                raise TypeError(f"state[{key!r}] must be an array of dtype {p.dtype} like its "
                                f"parameter, got {type(value).__name__} {getattr(value, 'dtype', '')}")
            if value.shape != p.shape:
                raise ValueError(f"state[{key!r}] has shape {value.shape}, expected {p.shape}")
            if not np.isfinite(value).all():
                raise ValueError(f"state[{key!r}] contains NaN or inf")
            if b in cls.nonnegative and (value < 0).any():
                raise ValueError(f"state[{key!r}] has negative entries; {b} is a sum or average "
                                 "of squared gradients, never < 0")
    return t, settings


def optimizer_from_state(params, state):
    """Rebuild the optimiser whose ``state_dict()`` is ``state``, over ``params``."""
    if "name" not in state or "lr" not in state:
        raise ValueError(f"not an optimizer state (needs 'name' and 'lr'); keys {sorted(state)[:8]}")
    opt = make_optimizer(str(state["name"]), params, lr=float(state["lr"]))
    opt.load_state_dict(state)
    return opt
