"""Optimisers that update a dict of parameter arrays in place, to MINIMISE a loss (-ELBO).

Each optimiser keeps references to the model's arrays and updates them in
place (``p -= ...``), so the model sees every step.  State buffers (momentum,
squared-gradient sums, Adam's moments) are allocated once, in each
parameter's dtype; a step allocates no parameter-sized array (every update
writes into a preallocated scratch buffer with ``out=``).  Scalars such as
the bias-corrected step size are Python floats, so float32 stays float32.

``state_dict()`` returns a flat dict of NumPy arrays (no pickle needed) and
``load_state_dict`` restores it exactly, so training can resume bit for bit.
"""
import math

import numpy as np


class Optimizer:
    """Shared bookkeeping: the params dict, the step count t, one scratch buffer per array."""

    name = ""
    buffers = ()          # names of the per-parameter state arrays

    def __init__(self, params, lr):
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"learning rate must be a finite number > 0, got {lr!r}")
        self.params, self.lr, self.t = params, float(lr), 0
        self.state = {b: {k: np.zeros_like(p) for k, p in params.items()} for b in self.buffers}
        self.scratch = {k: np.empty_like(p) for k, p in params.items()}

    def step(self, grads):
        """One update of every parameter from ``grads`` (same keys and shapes as params)."""
        if grads.keys() != self.params.keys():
            missing = sorted(set(self.params) - set(grads))
            extra = sorted(set(grads) - set(self.params))
            raise ValueError(f"grads must have the keys of params; missing {missing}, extra {extra}")
        self.t += 1
        for k, p in self.params.items():
            if grads[k].shape != p.shape:
                raise ValueError(f"grads[{k!r}] has shape {grads[k].shape}, params[{k!r}] {p.shape}")
            self.update(k, p, grads[k], self.scratch[k])

    def state_dict(self):
        state = {"name": np.array(self.name), "t": np.array(self.t), "lr": np.array(self.lr)}
        for b in self.buffers:
            for k, v in self.state[b].items():
                state[f"{b}.{k}"] = v.copy()
        return state

    def load_state_dict(self, state):
        if str(state.get("name", "")) != self.name:
            raise ValueError(f"optimiser state is for {str(state.get('name'))!r}, not {self.name!r}")
        for b in self.buffers:
            for k, v in self.state[b].items():
                key = f"{b}.{k}"
                if key not in state or np.shape(state[key]) != v.shape:
                    raise ValueError(f"optimiser state entry {key!r} is missing or has the wrong shape")
                v[...] = state[key]
        self.t, self.lr = int(state["t"]), float(state["lr"])


class SGD(Optimizer):
    """p <- p - lr g."""

    name = "sgd"

    def __init__(self, params, lr=0.01):
        super().__init__(params, lr)

    def update(self, k, p, g, tmp):
        np.multiply(g, self.lr, out=tmp)          # tmp = lr g
        p -= tmp


class Momentum(Optimizer):
    """Heavy ball (Polyak 1964): v <- mu v - lr g;  p <- p + v."""

    name = "momentum"
    buffers = ("v",)

    def __init__(self, params, lr=0.01, momentum=0.9):
        super().__init__(params, lr)
        self.momentum = float(momentum)

    def update(self, k, p, g, tmp):
        v = self.state["v"][k]
        v *= self.momentum                        # v = mu v
        np.multiply(g, self.lr, out=tmp)
        v -= tmp                                  #   - lr g
        p += v


class Adagrad(Optimizer):
    """Duchi et al. (2011), the optimiser of Kingma & Welling (2013):
    h <- h + g^2;  p <- p - lr g / (sqrt(h) + eps)."""

    name = "adagrad"
    buffers = ("h",)

    def __init__(self, params, lr=0.01, eps=1e-8):
        super().__init__(params, lr)
        self.eps = float(eps)

    def update(self, k, p, g, tmp):
        h = self.state["h"][k]
        np.multiply(g, g, out=tmp)
        h += tmp                                  # h = h + g^2
        np.sqrt(h, out=tmp)
        tmp += self.eps                           # tmp = sqrt(h) + eps
        np.divide(g, tmp, out=tmp)
        tmp *= self.lr                            # tmp = lr g / (sqrt(h) + eps)
        p -= tmp


class Adam(Optimizer):
    """Kingma & Ba (2015), Algorithm 1:
    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
    p <- p - lr_t m / (sqrt(v) + eps_t),  lr_t = lr sqrt(1 - b2^t) / (1 - b1^t).

    The bias correction is folded into the step size (Sec. 2 of the paper),
    with eps scaled alike, so the update equals Algorithm 1 exactly.
    """

    name = "adam"
    buffers = ("m", "v")

    def __init__(self, params, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(params, lr)
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)

    def update(self, k, p, g, tmp):
        m, v = self.state["m"][k], self.state["v"][k]
        b1, b2, t = self.beta1, self.beta2, self.t
        m *= b1
        np.multiply(g, 1 - b1, out=tmp)
        m += tmp                                  # m = b1 m + (1 - b1) g
        np.multiply(g, g, out=tmp)
        tmp *= 1 - b2
        v *= b2
        v += tmp                                  # v = b2 v + (1 - b2) g^2
        correction2 = math.sqrt(1 - b2 ** t)
        step = self.lr * correction2 / (1 - b1 ** t)
        np.sqrt(v, out=tmp)
        tmp += self.eps * correction2             # sqrt(v_hat) + eps, times sqrt(1 - b2^t)
        np.divide(m, tmp, out=tmp)
        tmp *= step
        p -= tmp                                  # p = p - lr m_hat / (sqrt(v_hat) + eps)


OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "adagrad": Adagrad, "adam": Adam}


def make_optimizer(name, params, lr=None, **kwargs):
    """The optimiser called ``name`` over ``params`` (lr=None: the class default)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {sorted(OPTIMIZERS)}")
    if lr is None:
        return OPTIMIZERS[name](params, **kwargs)
    return OPTIMIZERS[name](params, lr, **kwargs)


def optimizer_from_state(params, state):
    """Rebuild the optimiser saved in ``state`` (a state_dict()) over ``params``."""
    opt = make_optimizer(str(state["name"]), params, lr=float(state["lr"]))
    opt.load_state_dict(state)
    return opt
