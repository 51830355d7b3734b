"""Tests of minivae.data.preprocessing: bytes to grey levels, Bernoulli and threshold binarisation."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minivae.data import preprocessing


def test_bernoulli_binarize_averages_to_the_grey_levels():
    x = np.linspace(0, 1, 101, dtype=np.float32)
    K = 4000
    draws = preprocessing.bernoulli_binarize(np.broadcast_to(x, (K, x.size)), np.random.default_rng(0))
    mean = draws.mean(axis=0, dtype=np.float64)
    # each column mean is an average of K Bernoulli(x) draws: standard error sqrt(x(1-x)/K),
    # at most 0.0079 here.  Five standard errors: a correct sampler exceeds it with
    # probability about 6e-7 per column (and the seed is fixed); P(1) = x^2 or 1 - x
    # would miss by far more.  At x = 0 and x = 1 the draws are exact.
    tolerance = 5 * np.sqrt(x * (1 - x) / K)
    assert np.all(np.abs(mean - x) <= tolerance), np.max(np.abs(mean - x) - tolerance)
    assert mean[0] == 0.0 and mean[-1] == 1.0


@given(shape=st.lists(st.integers(0, 6), min_size=1, max_size=3), seed=st.integers(0, 2**32 - 1))
def test_bernoulli_binarize_gives_float32_zeros_and_ones(shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=shape)
    b = preprocessing.bernoulli_binarize(x, rng)
    assert b.dtype == np.float32 and b.shape == x.shape
    assert np.all((b == 0) | (b == 1))


def test_bernoulli_binarize_is_reproducible_and_writes_into_out():
    x = np.random.default_rng(1).uniform(size=(5, 7)).astype(np.float32)
    first = preprocessing.bernoulli_binarize(x, np.random.default_rng(2))
    out = np.full(x.shape, 7.0, dtype=np.float32)
    second = preprocessing.bernoulli_binarize(x, np.random.default_rng(2), out=out)
    assert second is out
    assert np.array_equal(first, second)


def test_bernoulli_binarize_without_the_value_scan_draws_the_same_and_still_checks_the_dtype():
    x = np.random.default_rng(1).uniform(size=(5, 7)).astype(np.float32)
    checked = preprocessing.bernoulli_binarize(x, np.random.default_rng(2))
    unchecked = preprocessing.bernoulli_binarize(x, np.random.default_rng(2), check=False)
    assert np.array_equal(checked, unchecked)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        preprocessing.bernoulli_binarize(x * 255, np.random.default_rng(2))
    with pytest.raises(TypeError, match="float array of grey levels in \\[0, 1\\], got dtype uint8"):
        preprocessing.bernoulli_binarize((x * 255).astype(np.uint8), np.random.default_rng(2), check=False)


def test_bernoulli_binarize_rejects_an_unusable_out_buffer():
    x = np.full((4, 6), 0.5)
    with pytest.raises(TypeError, match="out"):
        preprocessing.bernoulli_binarize(x, np.random.default_rng(0), out=np.empty((4, 6)))  # float64
    with pytest.raises(ValueError, match="out"):
        preprocessing.bernoulli_binarize(x, np.random.default_rng(0), out=np.empty((6, 4), np.float32))


@pytest.mark.parametrize("binarize", [
    lambda x: preprocessing.bernoulli_binarize(x, np.random.default_rng(0)),
    lambda x: preprocessing.threshold_binarize(x),
], ids=["bernoulli", "threshold"])
@pytest.mark.parametrize("bad", [-0.1, 1.1, np.nan])
def test_binarize_rejects_values_outside_the_unit_interval(binarize, bad):
    x = np.array([[0.0, 0.5, bad]])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        binarize(x)


def test_binarize_rejects_raw_bytes_and_points_to_to_unit_interval():
    with pytest.raises(TypeError, match="to_unit_interval"):
        preprocessing.bernoulli_binarize(np.array([0, 128, 255], np.uint8), np.random.default_rng(0))


def test_threshold_binarize_is_one_exactly_above_the_threshold():
    x = np.array([0.0, 0.3, 0.5, 0.5001, 1.0])
    assert preprocessing.threshold_binarize(x).tolist() == [0, 0, 0, 1, 1]
    assert preprocessing.threshold_binarize(x, 0.25).tolist() == [0, 1, 1, 1, 1]
    assert preprocessing.threshold_binarize(x).dtype == np.float32


def test_to_unit_interval_maps_byte_k_to_k_over_255():
    x = preprocessing.to_unit_interval(np.arange(256, dtype=np.uint8))
    assert x.dtype == np.float32
    assert x[0] == 0.0 and x[255] == 1.0
    np.testing.assert_allclose(x, np.arange(256) / 255, rtol=1e-6)


def test_to_unit_interval_rejects_data_that_is_not_uint8():
    # dividing grey levels that are already in [0, 1] by 255 again would be a silent bug
    with pytest.raises(TypeError, match="uint8"):
        preprocessing.to_unit_interval(np.array([0.0, 0.5, 1.0]))


@pytest.mark.parametrize("threshold, error", [(-0.1, ValueError), (1.5, ValueError),
                                              (np.nan, ValueError), ("0.5", TypeError),
                                              (None, TypeError), (True, TypeError)])
def test_threshold_outside_0_to_1_or_not_a_number_is_rejected(threshold, error):
    with pytest.raises(error, match="threshold must be"):
        preprocessing.threshold_binarize(np.array([0.2, 0.8]), threshold)


def test_fixed_binarization_is_one_bernoulli_draw_seeded_by_seed_plus_1_in_the_data_dtype():
    x = np.random.default_rng(3).uniform(size=(6, 5))
    fixed = preprocessing.fixed_binarization(x, seed=4)
    expected = preprocessing.bernoulli_binarize(x, np.random.default_rng(5))
    assert fixed.dtype == np.float64 and np.array_equal(fixed, expected)
    assert np.array_equal(preprocessing.fixed_binarization(x, 4), fixed)
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        preprocessing.fixed_binarization(x, -1)
