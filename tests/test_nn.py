"""Tests of minivae.nn: every backward against central finite differences, initialisation, dtypes."""
import ast
import pathlib

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
    with pytest.raises(ValueError, match=r"activation must be one of \[.*'relu'.*\], got 'gelu'"):
        nn.init_mlp([2, 2], np.random.default_rng(0), "net", activation="gelu")


@given(B=dims, sizes=st.lists(dims, min_size=2, max_size=4), seed=seeds)
def test_mlp_backward_without_input_grad_gives_the_same_parameter_gradients(B, sizes, seed):
    # input_grad=False only skips dJ/dx (the data's gradient); every parameter gradient is
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


@given(shape=st.lists(st.integers(1, 40), min_size=1, max_size=3), seed=seeds)
def test_softplus_sum_backward_matches_finite_differences(shape, seed):
    # last axes of every length, odd and even, so the folding stops at every stage (40 = 8 * 5
    # folds three times, 32 four times, an odd length never)
    rng = np.random.default_rng(seed)
    a = rng.uniform(-5, 5, size=shape)
    report = check_operation(nn.softplus_sum_forward, nn.softplus_sum_backward, {"a": a}, ["a"], rng)
    assert worst(report) <= BOUND, f"softplus_sum_backward disagrees with finite differences: {report}"


EXTREMES = [-1e4, -700.0, -100.0, -88.0, -30.0, -17.0, -1.0, -1e-30, 0.0, 1e-30, 1e-8, 0.5, 17.0,
            30.0, 88.0, 700.0, 1e4]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_per_dtype_softplus_is_within_its_stated_error_bound_at_extreme_inputs(dtype):
    # nn.log_one_plus takes log(1 + e) in float32 and log1p(e) in float64 (for speed): its
    # docstring bounds the error by 2u absolutely on top of exp's, and softplus then adds
    # max(a, 0) (one more rounding, relative): |h - softplus(a)| <= u (4 + 2 softplus(a)).
    # Reference: log(1 + e^a) = logaddexp(0, a) in float64 on the same (rounded) inputs.
    u = np.finfo(dtype).eps / 2
    a = np.array(EXTREMES + list(np.linspace(-20, 20, 401)), dtype=dtype)
    h, _ = nn.softplus_forward(a)
    exact = np.logaddexp(0, a.astype(np.float64))
    assert h.dtype == dtype
    excess = np.abs(h - exact) / (u * (4 + 2 * exact))
    assert excess.max() <= 1, f"softplus beyond its bound at a = {a[excess.argmax()]}"
    # the gradient, sigmoid = exp(a - h): exp turns the absolute error of a - h (h's, plus the
    # subtraction's rounding, at most u |a - h|) into a relative one, plus its own few u
    sigmoid = nn.softplus_backward(np.ones_like(a), (a, h))
    a64 = a.astype(np.float64)
    relative = np.abs(sigmoid - np.exp(a64 - exact)) / np.maximum(np.exp(a64 - exact), 1e-300)
    bound = u * (8 + 2 * exact + 2 * np.abs(a64 - exact))
    ok = (relative <= bound) | (np.abs(sigmoid - np.exp(a64 - exact)) <= np.finfo(dtype).tiny)
    assert ok.all(), f"sigmoid from the cached softplus beyond its bound at a = {a[~ok]}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 7, 16, 49, 784, 1000])
def test_softplus_sum_is_within_its_stated_error_bound_at_extreme_inputs(dtype, n):
    # |s - exact| <= u (8 n + 32 sum_i softplus(a_i)) (nn.softplus_sum_forward's docstring),
    # on rows of extreme values, of mixed scales and of one extreme value repeated
    u = np.finfo(dtype).eps / 2
    rng = np.random.default_rng(n)
    rows = [rng.choice(EXTREMES, n), rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 4, n)]
    rows += [np.full(n, value) for value in (-1e4, -30.0, -1e-30, 0.0, 30.0, 1e4)]
    a = np.array(rows, dtype=dtype)
    s, _ = nn.softplus_sum_forward(a)
    exact = np.logaddexp(0, a.astype(np.float64)).sum(axis=-1)
    assert s.dtype == dtype and s.shape == (len(rows),)
    excess = np.abs(s - exact) / (u * (8 * n + 32 * exact))
    assert excess.max() <= 1, f"softplus sum beyond its bound on row {excess.argmax()}"
    # its gradient, sigmoid = 1 / (1 + exp(-a)): within 6u relatively wherever the sigmoid is a
    # normal number of the dtype (exp's few u, the addition's u, the division's u), and within
    # the smallest normal number absolutely below that (docs/derivations.md)
    sigmoid = nn.softplus_sum_backward(np.ones(len(rows), dtype=dtype), nn.softplus_sum_forward(a)[1])
    assert sigmoid.dtype == dtype
    with np.errstate(over="ignore"):        # exp(3e4) overflows even long double: 1 / inf = 0
        true_sigmoid = 1 / (1 + np.exp(-a.astype(np.longdouble)))
    # the reference's own rounding (a few of long double's u) is in the bound: negligible on x86,
    # where long double has 64 significand bits; as large as float64's own where it is float64
    u_ref = np.finfo(np.longdouble).eps / 2 if dtype == np.float64 else 0.0
    error = np.abs(sigmoid - true_sigmoid)
    ok = np.where(true_sigmoid >= np.finfo(dtype).tiny, error <= (6 * u + 4 * u_ref) * true_sigmoid,
                  error <= np.finfo(dtype).tiny)
    assert ok.all(), f"sigmoid of the softplus sum's backward beyond its bound at a = {a[~ok]}"


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


# ---------------------------------------------------------------- a module read in one sitting

def _docstring_and_code_lines(path):
    """(docstring lines, code lines) of a module: code is every line outside docstrings that is
    neither blank nor only a comment."""
    source = path.read_text()
    lines = source.splitlines()
    in_docstring = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and ast.get_docstring(node):
            first = node.body[0]
            in_docstring.update(range(first.lineno, first.end_lineno + 1))
    code = [i for i, line in enumerate(lines, 1)
            if i not in in_docstring and line.strip() and not line.strip().startswith("#")]
    return len(in_docstring), len(code)


def test_nn_has_no_more_docstring_lines_than_code_lines():
    # the math and the shapes belong in a docstring; CPU timings and history in docs/performance.md
    docstring, code = _docstring_and_code_lines(pathlib.Path(nn.__file__))
    assert docstring <= code, (f"minivae/nn.py has {docstring} docstring lines and {code} lines "
                               "of code; move what is not math or shapes to docs/")


def test_the_line_counter_counts_docstrings_and_code_apart(tmp_path):
    module = tmp_path / "m.py"
    module.write_text('"""One\n\ntwo."""\nimport numpy\n\n\ndef f(x):\n    """f."""\n'
                      '    # a comment\n    return x\n')
    assert _docstring_and_code_lines(module) == (4, 3)
