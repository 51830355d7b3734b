"""Tests of minivae.nn: every backward against central finite differences, initialisation, dtypes."""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from minivae import nn
from minivae.gradcheck import check_gradients, check_operation

from strategies import BOUND, KINK_MARGIN, distance_to_relu_kink, seeds

dims = st.integers(1, 6)


def worst(report):
    return max(r["rel_error"] for r in report.values())


@pytest.mark.parametrize("name", sorted(nn.ACTIVATIONS))
@given(B=dims, n=dims, seed=seeds)
def test_activation_backward_matches_finite_differences(name, B, n, seed):
    rng = np.random.default_rng(seed)
    # |a| <= 5: where tanh and sigmoid saturate their derivative sinks to the rounding floor
    # of central differences (eps |f| / h, about 1e-11 here), below which no relative bound
    # can be checked: at a = 8.2, tanh' = 2.7e-7 came out with a relative error of 1.3e-6
    # (found with 100 examples per test).  Extreme inputs: test_activations_..._at_extremes
    a = rng.uniform(-5, 5, size=(B, n))
    a[np.abs(a) < KINK_MARGIN] = 0.5      # relu has no derivative at 0: stay off the kink
    forward, backward = nn.ACTIVATIONS[name]
    report = check_operation(forward, backward, {"a": a}, ["a"], rng)
    assert worst(report) <= BOUND, f"{name}_backward disagrees with finite differences: {report}"


@given(B=dims, n_in=dims, n_out=dims, seed=seeds)
def test_affine_backward_matches_finite_differences(B, n_in, n_out, seed):
    rng = np.random.default_rng(seed)
    inputs = {"x": rng.standard_normal((B, n_in)), "W": rng.standard_normal((n_in, n_out)),
              "b": rng.standard_normal(n_out)}
    report = check_operation(nn.affine_forward, nn.affine_backward, inputs, ["x", "W", "b"], rng)
    assert worst(report) <= BOUND, report


@given(B=dims, sizes=st.lists(dims, min_size=2, max_size=5),
       activation=st.sampled_from(sorted(nn.ACTIVATIONS)), seed=seeds)
def test_mlp_backward_matches_finite_differences(B, sizes, activation, seed):
    rng = np.random.default_rng(seed)
    params = nn.init_mlp(sizes, rng, "net", activation=activation)
    for k in range(len(sizes) - 1):
        # nonzero biases: with zero biases a dead relu unit feeds exactly 0 into the next
        # layer, which puts that layer's pre-activation on relu's kink (no derivative there)
        params[f"net.{k}.b"] += rng.uniform(0.1, 0.5, size=sizes[k + 1]) * rng.choice([-1, 1], sizes[k + 1])
    x = rng.standard_normal((B, sizes[0]))
    dout = rng.standard_normal((B, sizes[-1]))
    n_layers = len(sizes) - 1
    if activation == "relu":        # the biases make a kink rare, not impossible
        assume(distance_to_relu_kink(params, "net", n_layers, x)[0] > KINK_MARGIN)

    def f(p):
        out, _ = nn.mlp_forward(p, "net", n_layers, p["x"], activation)
        return float(np.sum(out * dout))

    out, cache = nn.mlp_forward(params, "net", n_layers, x, activation)
    dx, grads = nn.mlp_backward(dout, cache, "net", activation)
    report = check_gradients(f, {"x": x, **params}, {"x": dx, **grads})
    assert worst(report) <= BOUND, report


def test_mlp_without_hidden_layer_is_one_affine_map():
    rng = np.random.default_rng(0)
    params = nn.init_mlp([4, 3], rng, "net")
    x = rng.standard_normal((5, 4))
    out, _ = nn.mlp_forward(params, "net", 1, x)
    assert sorted(params) == ["net.0.W", "net.0.b"]
    np.testing.assert_allclose(out, x @ params["net.0.W"] + params["net.0.b"])


def test_he_initialisation_has_variance_two_over_fan_in():
    rng = np.random.default_rng(0)
    n_in, n_out = 400, 300
    W = nn.init_mlp([n_in, n_out, 2], rng, "net", activation="relu")["net.0.W"]
    # the sample variance of n = 120,000 normal draws has relative standard error sqrt(2 / n)
    rel_se = np.sqrt(2 / W.size)
    assert abs(W.var() / (2 / n_in) - 1) < 5 * rel_se


def test_glorot_initialisation_is_uniform_within_its_limit():
    rng = np.random.default_rng(0)
    params = nn.init_mlp([50, 30, 20], rng, "net", activation="tanh")
    for k, (n_in, n_out) in enumerate([(50, 30), (30, 20)]):
        W = params[f"net.{k}.W"]
        limit = np.sqrt(6 / (n_in + n_out))
        assert np.abs(W).max() <= limit
        assert np.abs(W).max() > 0.9 * limit      # it does fill the interval
        assert not params[f"net.{k}.b"].any()     # biases start at zero


def test_initialisation_is_reproducible_from_the_generator_seed():
    a = nn.init_mlp([5, 4, 3], np.random.default_rng(7), "net")
    b = nn.init_mlp([5, 4, 3], np.random.default_rng(7), "net")
    c = nn.init_mlp([5, 4, 3], np.random.default_rng(8), "net")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["net.0.W"], c["net.0.W"])


@pytest.mark.parametrize("name", sorted(nn.ACTIVATIONS))
def test_activations_keep_float32_and_stay_finite_at_extremes(name):
    forward, backward = nn.ACTIVATIONS[name]
    a = np.array([[-1e4, -50.0, 0.0, 50.0, 1e4]], dtype=np.float32)
    h, cache = forward(a)
    da = backward(np.ones_like(a), cache)
    assert h.dtype == np.float32 and da.dtype == np.float32
    assert np.isfinite(h).all() and np.isfinite(da).all()


def test_unknown_activation_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        nn.init_mlp([2, 2], np.random.default_rng(0), "net", activation="gelu")


@given(B=dims, sizes=st.lists(dims, min_size=2, max_size=4), seed=seeds)
def test_mlp_backward_without_input_grad_gives_the_same_parameter_gradients(B, sizes, seed):
    # input_grad=False only skips dL/dx (the data's gradient); every parameter gradient is
    # the one checked against finite differences above, bit for bit
    rng = np.random.default_rng(seed)
    params = nn.init_mlp(sizes, rng, "net")
    x = rng.standard_normal((B, sizes[0]))
    dout = rng.standard_normal((B, sizes[-1]))
    _, cache = nn.mlp_forward(params, "net", len(sizes) - 1, x)
    dx, grads = nn.mlp_backward(dout, cache, "net")
    no_dx, grads_without = nn.mlp_backward(dout, cache, "net", input_grad=False)
    assert dx.shape == x.shape and no_dx is None
    assert all(np.array_equal(grads[k], grads_without[k]) for k in grads)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softplus_equals_logaddexp_and_its_gradient_equals_sigmoid(dtype):
    # softplus_forward computes max(a, 0) + log1p(exp(-|a|)); the reference is the
    # textbook log(1 + e^a) = logaddexp(0, a) in float64, and sigmoid(a) = expit(a)
    from scipy.special import expit
    a = np.concatenate([np.linspace(-40, 40, 801), [-1e4, -700, 0.0, 700, 1e4]]).astype(dtype)
    h, cache = nn.softplus_forward(a)
    da = nn.softplus_backward(np.ones_like(a), cache)
    a64 = a.astype(np.float64)
    tol = 1e-6 if dtype == np.float32 else 1e-14     # a few units of rounding of each dtype
    np.testing.assert_allclose(h, np.logaddexp(0, a64), rtol=tol, atol=tol)
    np.testing.assert_allclose(da, expit(a64), rtol=0, atol=tol)
