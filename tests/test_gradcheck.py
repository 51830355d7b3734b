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
