"""Tests of minivae.gradcheck: the checker itself, against SciPy and against known answers."""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from scipy.optimize import approx_fprime

from minivae import gradcheck


@given(n=st.integers(1, 8), seed=st.integers(0, 2**32 - 1))
def test_numerical_gradient_agrees_with_scipy_approx_fprime(n, seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n))
    p = rng.standard_normal(n)

    def f(params):
        return float(np.sum(np.sin(A @ params["p"])) + 0.5 * params["p"] @ params["p"])

    ours = gradcheck.numerical_gradient(f, {"p": p.copy()})["p"]
    step = 1e-8
    theirs = approx_fprime(p, lambda q: f({"p": q}), step)
    # approx_fprime takes forward differences: error about step * max|f''| plus rounding
    # |f| * 1e-16 / step; the bound below is well above both and far below a wrong gradient
    scale = np.abs(A).sum() ** 2 + 1
    np.testing.assert_allclose(ours, theirs, atol=1e-6 * scale)
    # and both match the exact gradient A^T cos(A p) + p; ours (central) much more closely:
    # within its truncation error h^2/6 |d3f/dp_i^3| <= h^2/6 sum_k |A_ki|^3, plus rounding, a
    # few eps |f| / h with |f| <= n + p.p/2.  A bound on each entry, not relative to it: an
    # exact derivative near 0 (n = 1, seed 11965: 4.9e-4) has no relative accuracy to offer
    exact = A.T @ np.cos(A @ p) + p
    h, eps = gradcheck.DEFAULT_STEP, np.finfo(np.float64).eps
    bound = h ** 2 / 6 * (np.abs(A) ** 3).sum(axis=0) + 4 * n * eps * (n + p @ p / 2) / h
    assert (np.abs(ours - exact) <= bound).all()


def test_numerical_gradient_restores_the_parameters():
    p = np.array([[1.0, 2.0], [3.0, 4.0]])
    before = p.copy()
    gradcheck.numerical_gradient(lambda q: float((q["p"] ** 3).sum()), {"p": p})
    assert np.array_equal(p, before)


def test_rel_error_is_zero_for_equal_arrays_and_large_for_a_wrong_gradient():
    a = np.array([1.0, -2.0, 0.0])
    assert gradcheck.rel_error(a, a.copy()) == 0.0
    assert gradcheck.rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert gradcheck.rel_error(a, 2 * a) == 0.5        # max |a - 2a| / max |2a| = 2 / 4


def test_a_wrong_backward_is_caught_and_its_worst_entry_named():
    rng = np.random.default_rng(0)

    def forward(a):
        return a ** 2, a

    def wrong_backward(dout, cache):
        return dout * cache            # forgot the factor 2

    report = gradcheck.check_operation(forward, wrong_backward, {"a": rng.standard_normal((3, 4))},
                                       ["a"], rng)
    assert report["a"]["rel_error"] > 0.4
    index, analytic, numeric = report["a"]["worst"][0]
    assert len(index) == 2 and abs(numeric - 2 * analytic) < 1e-6


# ------------------------------------------------------------------ diagnose

@given(rows=st.integers(2, 6), cols=st.integers(2, 6), seed=st.integers(0, 2**32 - 1))
def test_diagnose_names_the_pattern_of_a_planted_mistake(rows, cols, seed):
    r = np.random.default_rng(seed).standard_normal((rows, cols)) + 0.1
    cases = {"sign": -r, "factor": 2 * r, "zeros": np.zeros_like(r)}
    for pattern, wrong in cases.items():
        found = gradcheck.diagnose(wrong, r, "dmu")
        assert found["pattern"] == pattern and found["message"].startswith("dmu: "), found
    assert "2 times" in gradcheck.diagnose(2 * r, r)["message"]
    assert gradcheck.diagnose(r, r)["pattern"] == "match"
    assert gradcheck.diagnose(np.stack([r] * 3), r)["pattern"] == "missing_sum"
    assert gradcheck.diagnose(r.sum(axis=0), r)["pattern"] == "extra_sum"
    assert "1/3 (one over L" in gradcheck.diagnose(r / 3, r, sizes={"L, the number of samples": 3})["message"]
    bad_row = r.copy()
    bad_row[1] += 1.0
    assert "only in rows [1]" in gradcheck.diagnose(bad_row, r)["message"]
    nan = r.copy()
    nan[0, 0] = np.nan
    assert gradcheck.diagnose(nan, r)["pattern"] == "nonfinite"


def test_diagnose_finds_a_transpose_and_a_wrong_shape_and_ignores_dominant_entries():
    r = np.arange(1.0, 10.0).reshape(3, 3)
    assert gradcheck.diagnose(r.T, r)["pattern"] == "transpose"
    assert gradcheck.diagnose(np.ones((4, 3)), np.ones((3, 4)))["pattern"] == "transpose"
    # one dominant entry must not widen the tolerance of the others (per-entry tolerances)
    big = np.array([1e4, 1.0, 2.0])
    assert gradcheck.diagnose(np.array([1e4, 1.01, 2.0]), big, rtol=2e-3, atol=1e-4)["pattern"] != "match"


# --- arguments are checked at entry: no ZeroDivisionError, KeyError or silent int rounding ---

import pytest                                      # noqa: E402 (grouped with its tests)

from minivae.vae import VAE                        # noqa: E402

SQUARE = lambda p: float((p["w"] ** 2).sum())      # noqa: E731


@pytest.mark.parametrize("call, error, message", [
    (lambda: gradcheck.numerical_gradient(SQUARE, {"w": np.ones(2)}, h=0), ValueError,
     r"^h must be a finite number > 0, got 0.0$"),
    (lambda: gradcheck.numerical_gradient(SQUARE, {"w": np.ones(2)}, h="a"), TypeError,
     r"^h must be a real number, got 'a' \(str\)$"),
    (lambda: gradcheck.numerical_gradient(SQUARE, [np.ones(2)]), TypeError,
     r"^params must be a dict of named NumPy float arrays, got list$"),
    (lambda: gradcheck.numerical_gradient(SQUARE, {"w": np.array([1, 2])}), TypeError,
     r"^params\['w'\] must be a NumPy array of floats, got an array of shape \(2,\) and dtype int64$"),
    (lambda: gradcheck.numerical_gradient("f", {"w": np.ones(2)}), TypeError, r"^f must be a function"),
    (lambda: gradcheck.check_gradients(SQUARE, {"w": np.ones(2)}, {}), ValueError,
     r"^grads must be a dict with the keys \['w'\], got one missing \['w'\]"),
    (lambda: gradcheck.compare({"w": np.ones(2)}, {"w": np.ones(2), "b": np.ones(1)}), ValueError,
     r"^analytic must be a dict with at least the keys \['b', 'w'\], got one missing \['b'\]"),
    (lambda: gradcheck.rel_error([[1.0], [1.0, 2.0]], [1.0]), ValueError, r"^analytic must be an array "
     r"of real numbers \(rows of equal length\), got a ragged list$"),
    (lambda: gradcheck.rel_error(np.ones(3), np.ones(2)), ValueError, r"^analytic must be an array of "
     r"the shape of numeric, \(2,\), got an array of shape \(3,\)$"),
    (lambda: gradcheck.check_operation(lambda x: (x, None), lambda d, c: d, {"x": np.ones(2)}, ["y"],
                                       np.random.default_rng(0)), ValueError, r"^wrt must be a list of names"),
    (lambda: gradcheck.check_operation(lambda x: (x, None), lambda d, c: d, {"x": np.ones(2)}, ["x"],
                                       0), TypeError, r"^rng must be a numpy.random.Generator"),
    (lambda: gradcheck.check_vae(VAE(3, 2, hidden=(2,)), np.ones((2, 3)), h=-1e-5), ValueError,
     r"^h must be a finite number > 0, got -1e-05$"),
    (lambda: gradcheck.check_vae(VAE(3, 2, hidden=(2,)), [[1.0, 0.0], [1.0]]), ValueError,
     r"^x must be an array of real numbers \(rows of equal length\)"),
    (lambda: gradcheck.check_vae("model", np.ones((2, 3))), TypeError,
     r"^model must be an object with check_data, loss_and_grads, elbo \(a minivae.VAE\), got 'str'"),
    (lambda: gradcheck.check_vae(VAE(3, 2, hidden=(2,)), np.ones((2, 3)), n_samples=0), ValueError,
     r"^n_samples must be a positive integer, got 0$"),
])
def test_every_function_checks_its_arguments_before_computing_anything(call, error, message):
    with pytest.raises(error, match=message):
        call()


@given(h=st.one_of(st.none(), st.text(max_size=2), st.floats(), st.integers(-3, 3), st.booleans()))
def test_numerical_gradient_takes_any_positive_finite_step_and_refuses_every_other(h):
    params = {"w": np.array([0.5, -1.5])}
    try:
        with np.errstate(over="ignore"):           # a step near 1e308 overflows the function itself
            numeric = gradcheck.numerical_gradient(SQUARE, params, h=h)
    except (TypeError, ValueError) as error:
        assert str(error).startswith("h must be a ")
        assert isinstance(h, (bool, type(None), str)) or not (np.isfinite(h) and h > 0)
    else:
        assert numeric["w"].shape == (2,) and numeric["w"].dtype == np.float64
        if 1e-6 <= h <= 1e-1:   # f is quadratic: central differences are exact up to rounding
            np.testing.assert_allclose(numeric["w"], 2 * params["w"], rtol=1e-6)
        np.testing.assert_array_equal(params["w"], [0.5, -1.5])     # restored after every step
