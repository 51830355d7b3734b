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
