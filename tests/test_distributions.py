"""Tests of minivae.distributions: gradients, closed forms against references, Monte Carlo checks."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from minivae import distributions as dist
from minivae.gradcheck import check_operation

BOUND = 1e-6   # relative error of a float64 analytic gradient vs central differences
dims = st.integers(1, 5)
seeds = st.integers(0, 2**32 - 1)


def worst(report):
    return max(r["rel_error"] for r in report.values())


@given(L=dims, B=dims, D=dims, seed=seeds)
def test_gaussian_sample_backward_matches_finite_differences(L, B, D, seed):
    rng = np.random.default_rng(seed)
    inputs = {"mu": rng.standard_normal((B, D)), "logvar": rng.standard_normal((B, D)),
              "eps": rng.standard_normal((L, B, D))}
    report = check_operation(dist.gaussian_sample, dist.gaussian_sample_backward,
                             inputs, ["mu", "logvar"], rng)
    assert worst(report) <= BOUND, report


@pytest.mark.parametrize("case", ["posterior q(z|x)", "likelihood p(x|z)"])
@given(L=dims, B=dims, D=dims, seed=seeds)
def test_gaussian_log_density_backward_matches_finite_differences(case, L, B, D, seed):
    # both broadcasting patterns the VAE uses: q(z|x) has z (L, B, D), mu and logvar (B, D);
    # a Gaussian likelihood has x (B, P), mean (L, B, P) and one logvar per dimension (P,)
    rng = np.random.default_rng(seed)
    if case == "posterior q(z|x)":
        shapes = [(L, B, D), (B, D), (B, D)]
    else:
        shapes = [(B, D), (L, B, D), (D,)]
    inputs = {name: rng.standard_normal(shape) for name, shape in zip(["value", "mean", "logvar"], shapes)}
    report = check_operation(dist.gaussian_log_density, dist.gaussian_log_density_backward,
                             inputs, ["value", "mean", "logvar"], rng)
    assert worst(report) <= BOUND, report


@given(L=dims, B=dims, D=dims, seed=seeds)
def test_standard_normal_log_density_backward_matches_finite_differences(L, B, D, seed):
    rng = np.random.default_rng(seed)
    report = check_operation(dist.standard_normal_log_density,
                             dist.standard_normal_log_density_backward,
                             {"z": rng.standard_normal((L, B, D))}, ["z"], rng)
    assert worst(report) <= BOUND, report


@given(B=dims, D=dims, seed=seeds)
def test_kl_backward_matches_finite_differences(B, D, seed):
    rng = np.random.default_rng(seed)
    inputs = {"mu": rng.standard_normal((B, D)), "logvar": 2 * rng.standard_normal((B, D))}
    report = check_operation(dist.kl_standard_normal, dist.kl_standard_normal_backward,
                             inputs, ["mu", "logvar"], rng)
    assert worst(report) <= BOUND, report


@given(L=dims, B=dims, P=dims, seed=seeds, scale=st.sampled_from([0.1, 3.0, 30.0]))
def test_bernoulli_backward_matches_finite_differences(L, B, P, seed, scale):
    rng = np.random.default_rng(seed)
    inputs = {"x": rng.uniform(size=(B, P)), "logits": scale * rng.standard_normal((L, B, P))}
    report = check_operation(dist.bernoulli_log_likelihood, dist.bernoulli_log_likelihood_backward,
                             inputs, ["logits"], rng)
    assert worst(report) <= BOUND, report


def test_gaussian_log_density_matches_scipy():
    rng = np.random.default_rng(0)
    z, mu, logvar = rng.standard_normal((3, 4, 5)), rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    log_q, _ = dist.gaussian_log_density(z, mu, logvar)
    expected = stats.norm.logpdf(z, loc=mu, scale=np.exp(logvar / 2)).sum(axis=-1)
    np.testing.assert_allclose(log_q, expected, rtol=1e-12)


def test_standard_normal_log_density_matches_scipy():
    z = np.random.default_rng(1).standard_normal((2, 3, 4))
    log_p, _ = dist.standard_normal_log_density(z)
    np.testing.assert_allclose(log_p, stats.norm.logpdf(z).sum(axis=-1), rtol=1e-12)


def test_bernoulli_log_likelihood_matches_the_direct_formula():
    rng = np.random.default_rng(2)
    x = (rng.uniform(size=(3, 6)) < 0.5).astype(float)
    logits = 4 * rng.standard_normal((2, 3, 6))
    p = 1 / (1 + np.exp(-logits))
    direct = (x * np.log(p) + (1 - x) * np.log(1 - p)).sum(axis=-1)
    log_p, _ = dist.bernoulli_log_likelihood(x, logits)
    np.testing.assert_allclose(log_p, direct, rtol=1e-10)


def test_kl_by_hand():
    # D = 2, mu = (1, 0), logvar = (0, log 2):
    # KL = 1/2 [(1 + 1 - 1 - 0) + (0 + 2 - 1 - log 2)] = 1/2 (2 - log 2)
    kl, _ = dist.kl_standard_normal(np.array([[1.0, 0.0]]), np.array([[0.0, np.log(2)]]))
    np.testing.assert_allclose(kl, [0.5 * (2 - np.log(2))], rtol=1e-14)


@given(B=dims, D=dims, seed=seeds)
def test_kl_is_nonnegative_and_zero_only_at_the_prior(B, D, seed):
    rng = np.random.default_rng(seed)
    kl, _ = dist.kl_standard_normal(rng.standard_normal((B, D)), 3 * rng.standard_normal((B, D)))
    assert (kl > 0).all()
    kl0, _ = dist.kl_standard_normal(np.zeros((B, D)), np.zeros((B, D)))
    assert (kl0 == 0).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kl_is_accurate_and_never_negative_where_q_is_near_the_prior(dtype):
    # mu = 0 and logvar ~ 0: an unused latent dimension.  The exact KL there is
    # 1/2 (e^v - 1 - v) = 1/2 sum_{n >= 2} v^n / n! (> 0 for v != 0); twelve terms, summed
    # in float64 with math.fsum, are exact to float64 rounding for |v| <= 1e-2.  The bound is
    # a few rounding errors of the inputs' size, eps max(KL, |v|), as expm1(v) - v gives;
    # exp(v) - 1 - v is off by eps * 1 (rounding e^v near 1), e.g. 6e-8 for v = 1e-4 in
    # float32, where the KL is 2.5e-9, and comes out < 0 for the tiniest v
    v = np.array([np.finfo(dtype).tiny, 1e-30, 1e-10, 1e-6, 1e-4, -1e-4, 1e-2, -1e-2])
    logvar = v.astype(dtype)[:, None]
    kl, _ = dist.kl_standard_normal(np.zeros_like(logvar), logvar)
    x = logvar[:, 0].astype(np.float64)
    exact = np.array([0.5 * math.fsum(u ** n / math.factorial(n) for n in range(2, 14)) for u in x])
    assert kl.dtype == dtype and (kl >= 0).all()
    error = np.abs(kl - exact)
    assert (error <= 4 * np.finfo(dtype).eps * np.maximum(exact, np.abs(x))).all(), error


def test_kl_matches_monte_carlo_estimate():
    # KL(q || p) = E_q[log q(z) - log p(z)]. With N = 200,000 samples (fixed seed) the Monte
    # Carlo mean has standard error sd/sqrt(N); we allow 4 standard errors (a false failure
    # has probability < 1e-4 per entry, and the seed is fixed so the test is deterministic).
    rng = np.random.default_rng(3)
    mu = np.array([[0.5, -1.0, 2.0], [0.0, 0.3, -0.2]])
    logvar = np.array([[0.0, -1.0, 1.0], [0.7, -2.0, 0.1]])
    N = 200_000
    z, _ = dist.gaussian_sample(mu, logvar, rng.standard_normal((N, 2, 3)))
    log_q, _ = dist.gaussian_log_density(z, mu, logvar)
    log_p, _ = dist.standard_normal_log_density(z)
    terms = log_q - log_p                                   # (N, B)
    kl_mc, se = terms.mean(axis=0), terms.std(axis=0) / np.sqrt(N)
    kl, _ = dist.kl_standard_normal(mu, logvar)
    assert np.all(np.abs(kl_mc - kl) < 4 * se), (kl, kl_mc, se)


def test_reparameterised_samples_have_mean_mu_and_variance_exp_logvar():
    # N = 100,000 draws: the sample mean has standard error sigma/sqrt(N) and the sample
    # variance sigma^2 sqrt(2/(N-1)) for a Gaussian; tolerance 4 standard errors, fixed seed.
    rng = np.random.default_rng(4)
    mu, logvar = np.array([[1.0, -2.0]]), np.array([[0.0, 1.5]])
    N = 100_000
    z, _ = dist.gaussian_sample(mu, logvar, rng.standard_normal((N, 1, 2)))
    var = np.exp(logvar)
    assert np.all(np.abs(z.mean(axis=0) - mu) < 4 * np.sqrt(var / N))
    assert np.all(np.abs(z.var(axis=0) - var) < 4 * var * np.sqrt(2 / (N - 1)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bernoulli_is_finite_for_logits_up_to_1e4(dtype):
    x = np.array([[0.0, 1.0, 0.0, 1.0, 0.5]], dtype=dtype)
    logits = np.array([[[1e4, -1e4, -1e4, 1e4, 1e4]]], dtype=dtype)
    log_p, cache = dist.bernoulli_log_likelihood(x, logits)
    dlogits = dist.bernoulli_log_likelihood_backward(np.ones((1, 1), dtype=dtype), cache)
    assert np.isfinite(log_p).all() and np.isfinite(dlogits).all()
    assert log_p.dtype == dtype and dlogits.dtype == dtype
    # the two confident mistakes cost 1e4 nats each, the pixel 0.5 costs 0.5 * 1e4
    np.testing.assert_allclose(log_p, [[-2.5e4]], rtol=1e-6)
    np.testing.assert_allclose(dlogits, [[[-1, 1, 0, 0, -0.5]]], atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gaussian_functions_keep_dtype_and_are_finite_for_extreme_logvar(dtype):
    mu = np.zeros((2, 3), dtype=dtype)
    logvar = np.array([[-30, 0, 30], [30, -30, 0]], dtype=dtype)
    eps = np.ones((4, 2, 3), dtype=dtype)
    z, s_cache = dist.gaussian_sample(mu, logvar, eps)
    log_q, q_cache = dist.gaussian_log_density(z, mu, logvar)
    kl, kl_cache = dist.kl_standard_normal(mu, logvar)
    outs = (z, log_q, kl, *dist.gaussian_sample_backward(np.ones_like(z), s_cache),
            *dist.gaussian_log_density_backward(np.ones_like(log_q), q_cache),
            *dist.kl_standard_normal_backward(np.ones_like(kl), kl_cache))
    for out in outs:
        assert out.dtype == dtype
        assert np.isfinite(out).all()


@given(st.lists(st.integers(1, 4), min_size=1, max_size=3), st.integers(0, 2), seeds)
def test_sum_to_shape_sums_over_broadcast_axes(shape, n_new, seed):
    rng = np.random.default_rng(seed)
    shape = tuple(1 if rng.uniform() < 0.3 else n for n in shape)
    big = tuple(rng.integers(1, 4, n_new)) + tuple(n if n != 1 else 3 for n in shape)
    grad = rng.standard_normal(big)
    # reference: the gradient of sum(broadcast_to(a, big) * grad) w.r.t. a, entry by entry
    expected = np.zeros(shape)
    for i in np.ndindex(shape):
        one_hot = np.zeros(shape)
        one_hot[i] = 1
        expected[i] = np.sum(np.broadcast_to(one_hot, big) * grad)
    np.testing.assert_allclose(dist.sum_to_shape(grad, shape), expected, atol=1e-12)


def test_float32_bernoulli_agrees_with_a_float64_logaddexp_reference():
    # the float32 fast path (softplus from exp(-|l|), sigmoid from the cached softplus)
    # against the textbook formulas in float64: x l - logaddexp(0, l) and x - expit(l)
    from scipy.special import expit
    rng = np.random.default_rng(5)
    x = (rng.uniform(size=(3, 200)) < 0.4).astype(np.float64)
    logits = 6 * rng.standard_normal((2, 3, 200))
    reference = (x * logits - np.logaddexp(0, logits)).sum(axis=-1)
    dlog_p = rng.standard_normal((2, 3))
    log_p, cache = dist.bernoulli_log_likelihood(x.astype(np.float32), logits.astype(np.float32))
    dlogits = dist.bernoulli_log_likelihood_backward(dlog_p.astype(np.float32), cache)
    assert log_p.dtype == dlogits.dtype == np.float32
    # the float32 inputs are themselves rounded (relative 6e-8 per logit), so compare with
    # tolerances of a few float32 roundings of the sums' and the entries' scale
    np.testing.assert_allclose(log_p, reference, rtol=1e-5)
    np.testing.assert_allclose(dlogits, dlog_p[..., None] * (x - expit(logits)), rtol=0, atol=1e-5)
