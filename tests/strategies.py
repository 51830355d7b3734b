"""Hypothesis strategies and bounds shared by the gradient tests (imported by test modules)."""
import numpy as np
from hypothesis import strategies as st

BOUND = 1e-6   # relative error of a float64 analytic gradient vs central differences
seeds = st.integers(0, 2**32 - 1)


@st.composite
def architectures(draw):
    """Random small VAE shapes: x_dim, z_dim, 0-2 hidden layers, any activation."""
    return dict(x_dim=draw(st.integers(1, 6)), z_dim=draw(st.integers(1, 3)),
                hidden=tuple(draw(st.lists(st.integers(1, 5), max_size=2))),
                activation=draw(st.sampled_from(["relu", "tanh", "softplus", "sigmoid", "identity"])))


def distance_to_relu_kink(params, prefix, n_layers, x):
    """The smallest |pre-activation| of the hidden layers of a relu MLP on input x (inf if
    none), and the MLP's output.

    relu has no derivative at 0, so a relu network's gradient exists only where no hidden
    pre-activation is 0, and central differences with step h = 1e-5 agree with it only if
    every pre-activation stays well away from 0 while a parameter moves by h.  Random
    biases make a pre-activation that close rare, not impossible: one of 1.3e-5 gave a
    relative error of 2e-4 (found with 100 examples per test), so relu tests assume() a
    distance of at least KINK_MARGIN = 100 h.  Recomputed here, independently of minivae
    (so a student edition's stubs cannot break it).
    """
    h, smallest = x, np.inf
    for k in range(n_layers):
        a = h @ params[f"{prefix}.{k}.W"] + params[f"{prefix}.{k}.b"]
        if k == n_layers - 1:
            return smallest, a                  # the last layer has no activation
        smallest = min(smallest, float(np.abs(a).min(initial=np.inf)))
        h = np.maximum(a, 0)


KINK_MARGIN = 1e-3


def off_relu_kinks(model, x, eps=None):
    """True unless the model uses relu and a hidden pre-activation lies within KINK_MARGIN
    of 0 (see distance_to_relu_kink): the encoder's on x and, given eps (L, B, D), the
    decoder's on every z = mu + exp(logvar / 2) eps."""
    if model.activation != "relu":
        return True
    D = model.z_dim
    distance, h = distance_to_relu_kink(model.params, "encoder", model.n_layers, np.asarray(x))
    if eps is not None:
        z = h[:, :D] + np.exp(h[:, D:] / 2) * eps        # (L, B, D)
        decoder_distance, _ = distance_to_relu_kink(model.params, "decoder", model.n_layers,
                                                    z.reshape(-1, D))
        distance = min(distance, decoder_distance)
    return distance > KINK_MARGIN


def errors_relative_to_the_whole_gradient(analytic, numeric):
    """name -> max |analytic - numeric| over that array / the largest |entry| of all the arrays.

    Central differences in float64 have an absolute error floor of about eps |f| / h
    (rounding, h = 1e-5): 1e-10 for a loss of 4.  An array whose gradient is that small
    everywhere (a one-unit hidden layer whose bias the loss barely depends on: 1.9e-5 with
    a loss of 4, found with 100 examples per test) cannot be checked relative to itself
    to 1e-6.  So on random architectures every array is measured against the scale of
    the whole gradient vector: the relative error of the gradient, reported per array.
    """
    scale = max(max(np.abs(analytic[k]).max(initial=0.0), np.abs(numeric[k]).max(initial=0.0))
                for k in analytic)
    if scale == 0:
        return {k: 0.0 for k in analytic}
    return {k: float(np.abs(np.asarray(analytic[k]) - numeric[k]).max(initial=0.0) / scale)
            for k in analytic}
