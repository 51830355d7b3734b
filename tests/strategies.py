"""Hypothesis strategies and bounds shared by the gradient tests (imported by test modules)."""
from hypothesis import strategies as st

BOUND = 1e-6   # relative error of a float64 analytic gradient vs central differences
seeds = st.integers(0, 2**32 - 1)


@st.composite
def architectures(draw):
    """Random small VAE shapes: x_dim, z_dim, 0-2 hidden layers, any activation."""
    return dict(x_dim=draw(st.integers(1, 6)), z_dim=draw(st.integers(1, 3)),
                hidden=tuple(draw(st.lists(st.integers(1, 5), max_size=2))),
                activation=draw(st.sampled_from(["relu", "tanh", "softplus", "sigmoid", "identity"])))
