"""Tests of minivae.topics.linear_gaussian: the seed's identities, exactly, on the model where all is known.

Every closed form is checked against something computed another way (numerical
integration, Bayes' rule, finite differences, the VAE's Monte Carlo estimators),
and the identities between them (Eq. 5 of the seed) to rounding error.
"""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.integrate import quad

from minivae import distributions as dist
from minivae.topics import linear_gaussian as lg
from minivae.optim import Adam
from minivae.vae import VAE

seeds = st.integers(0, 2**32 - 1)


def random_model(rng, P, D):
    W = rng.standard_normal((P, D)) * rng.uniform(0.3, 2.0)
    b = rng.standard_normal(P)
    sigma2 = float(rng.uniform(0.05, 3.0))
    return W, b, sigma2


def random_covariances(rng, B, D):
    A = rng.standard_normal((B, D, D))
    return A @ np.swapaxes(A, 1, 2) + 0.1 * np.eye(D)        # symmetric positive definite


def full_gaussian_log_density(z, mean, cov):
    """log N(z; mean, cov) for a full covariance, written out independently: z, mean (B, D)."""
    L = np.linalg.cholesky(cov)
    white = np.linalg.solve(L, (z - mean)[..., None])[..., 0]
    return -0.5 * (z.shape[-1] * math.log(2 * math.pi) + 2 * np.log(np.diagonal(L, axis1=-2, axis2=-1)).sum(-1)
                   + (white * white).sum(-1))


@given(P=st.integers(1, 6), D=st.integers(1, 4), B=st.integers(1, 4), seed=seeds)
def test_eq5_kl_to_posterior_equals_minus_elbo_plus_log_evidence(P, D, B, seed):
    # The seed's Eq. 5, KL(q || p(z|x)) = -L(q) + log p(x), for random q with full covariance.
    # The three sides come from three separate formulas, so this checks all of them; the
    # tolerance is 1e-9 relative to the size of the terms (rounding is ~1e-14 of it).
    rng = np.random.default_rng(seed)
    W, b, sigma2 = random_model(rng, P, D)
    x = rng.standard_normal((B, P)) * 2
    q_mean, q_cov = rng.standard_normal((B, D)) * 2, random_covariances(rng, B, D)
    kl = lg.kl_to_posterior(x, W, b, sigma2, q_mean, q_cov)
    L = lg.elbo(x, W, b, sigma2, q_mean, q_cov)
    log_px = lg.log_marginal_likelihood(x, W, b, sigma2)
    scale = max(1.0, np.abs(L).max())
    np.testing.assert_allclose(kl, -L + log_px, rtol=0, atol=1e-9 * scale,
                               err_msg="Eq. 5: KL(q || p(z|x)) = -L + log p(x) (docs/evaluation.md)")
    assert np.all(kl >= -1e-9 * scale) and np.all(L <= log_px + 1e-9 * scale)   # KL >= 0: L is a lower bound


@given(P=st.integers(1, 6), D=st.integers(1, 4), B=st.integers(1, 4), seed=seeds)
def test_elbo_equals_log_evidence_when_q_is_the_exact_posterior(P, D, B, seed):
    # q = p(z|x), a full-covariance Gaussian in general: the bound is tight and the KL is zero
    rng = np.random.default_rng(seed)
    W, b, sigma2 = random_model(rng, P, D)
    x = rng.standard_normal((B, P)) * 2
    post_mean, post_cov = lg.posterior(x, W, b, sigma2)
    log_px = lg.log_marginal_likelihood(x, W, b, sigma2)
    scale = max(1.0, np.abs(log_px).max())
    np.testing.assert_allclose(lg.elbo(x, W, b, sigma2, post_mean, post_cov), log_px, rtol=0, atol=1e-9 * scale)
    np.testing.assert_allclose(lg.kl_to_posterior(x, W, b, sigma2, post_mean, post_cov), 0, atol=1e-9 * scale)


@given(P=st.integers(1, 4), seed=seeds)
def test_log_evidence_matches_numerical_integration_over_z(P, seed):
    # D = 1: p(x) = integral N(z; 0, 1) N(x; W z + b, sigma^2 I) dz by adaptive quadrature
    rng = np.random.default_rng(seed)
    W, b, sigma2 = random_model(rng, P, 1)
    x = rng.standard_normal((1, P))
    post_mean, post_cov = lg.posterior(x, W, b, sigma2)

    def log_joint(z):
        log_pz, _ = dist.standard_normal_log_density(np.array([[[z]]]))
        log_px_z, _ = dist.gaussian_log_density(x, (z * W.T + b)[None], np.full(P, math.log(sigma2)))
        return float(log_pz[0, 0] + log_px_z[0, 0])

    centre, width = post_mean[0, 0], math.sqrt(post_cov[0, 0])
    peak = log_joint(centre)       # integrate exp(log_joint - peak) so the integrand is O(1)
    integral, _ = quad(lambda z: math.exp(log_joint(z) - peak), centre - 40 * width, centre + 40 * width,
                       points=[centre], epsabs=0, epsrel=1e-12, limit=200)
    np.testing.assert_allclose(lg.log_marginal_likelihood(x, W, b, sigma2), peak + math.log(integral),
                               rtol=1e-9, atol=1e-9)


@given(P=st.integers(1, 6), D=st.integers(1, 4), seed=seeds)
def test_posterior_satisfies_bayes_rule(P, D, seed):
    # log p(z|x) = log p(z) + log p(x|z) - log p(x) at random z, with the likelihood terms
    # from minivae.distributions (the functions the VAE uses)
    rng = np.random.default_rng(seed)
    W, b, sigma2 = random_model(rng, P, D)
    x = rng.standard_normal((3, P))
    z = rng.standard_normal((3, D)) * 2
    post_mean, post_cov = lg.posterior(x, W, b, sigma2)
    log_pz, _ = dist.standard_normal_log_density(z)
    log_px_z, _ = dist.gaussian_log_density(x, z @ W.T + b, np.full(P, math.log(sigma2)))
    np.testing.assert_allclose(full_gaussian_log_density(z, post_mean, post_cov),
                               log_pz + log_px_z - lg.log_marginal_likelihood(x, W, b, sigma2),
                               rtol=1e-10, atol=1e-10)


@given(P=st.integers(2, 6), data=st.data(), seed=seeds)
def test_mean_field_posterior_is_the_best_diagonal_gaussian(P, data, seed):
    D = data.draw(st.integers(1, P))
    rng = np.random.default_rng(seed)
    W, b, sigma2 = random_model(rng, P, D)
    x = rng.standard_normal((2, P))
    mean, var = lg.mean_field_posterior(x, W, b, sigma2)
    best = lg.kl_to_posterior(x, W, b, sigma2, mean, np.diag(var))
    for _ in range(5):   # any other diagonal Gaussian is further from p(z|x)
        other_mean = mean + 0.1 * rng.standard_normal(mean.shape)
        other_var = var * np.exp(0.2 * rng.standard_normal(D))
        assert np.all(lg.kl_to_posterior(x, W, b, sigma2, other_mean, np.diag(other_var)) > best)
    # with orthogonal columns in W the posterior is diagonal, and the mean-field q is exact
    W_orth = np.linalg.qr(rng.standard_normal((P, D)))[0][:, :D] * rng.uniform(0.5, 2.0, D)
    mean, var = lg.mean_field_posterior(x, W_orth, b, sigma2)
    post_mean, post_cov = lg.posterior(x, W_orth, b, sigma2)
    np.testing.assert_allclose(mean, post_mean, atol=1e-12)
    np.testing.assert_allclose(np.diag(var), post_cov, atol=1e-12)


@given(P=st.integers(2, 6), data=st.data(), seed=seeds)
def test_max_likelihood_is_a_stationary_maximum_with_the_closed_form_value(P, data, seed):
    D = data.draw(st.integers(1, P - 1))
    rng = np.random.default_rng(seed)
    W_true, b_true, sigma2_true = random_model(rng, P, D)
    x, _ = lg.sample(50, W_true, b_true, sigma2_true, rng)
    W, b, sigma2 = lg.max_likelihood(x, D)

    def mean_log_lik(W, b, log_sigma2):
        return lg.log_marginal_likelihood(x, W, b, math.exp(log_sigma2)).mean()

    best = mean_log_lik(W, b, math.log(sigma2))
    # the value at the maximum (docs/evaluation.md): -1/2 [P log 2pi + sum_{j<=D} log l_j + (P-D) log s2 + P]
    eigenvalues = np.sort(np.linalg.eigvalsh(np.cov(x.T, bias=True)))[::-1]
    closed_form = -0.5 * (P * math.log(2 * math.pi) + np.log(eigenvalues[:D]).sum()
                          + (P - D) * math.log(sigma2) + P)
    np.testing.assert_allclose(best, closed_form, rtol=1e-10)
    # stationary: every central-difference partial derivative vanishes. At a true stationary
    # point the FD value is rounding plus O(h^2) truncation, at most 2.5e-10 (relative) over
    # 40 random cases; an error in W or sigma^2 of 1% gives derivatives of order 1e-2.
    h = 1e-5
    params = {"W": W.copy(), "b": b.copy(), "log_sigma2": np.array([math.log(sigma2)])}
    for name, p in params.items():
        for i in np.ndindex(p.shape):
            old = p[i]
            p[i] = old + h
            up = mean_log_lik(params["W"], params["b"], params["log_sigma2"][0])
            p[i] = old - h
            down = mean_log_lik(params["W"], params["b"], params["log_sigma2"][0])
            p[i] = old
            assert abs(up - down) / (2 * h) < 1e-7 * max(1.0, abs(best)), (name, i)
    # and a maximum: random nearby parameters are worse
    for _ in range(5):
        assert mean_log_lik(W + 0.05 * rng.standard_normal(W.shape), b + 0.05 * rng.standard_normal(P),
                            math.log(sigma2) + 0.05 * rng.standard_normal()) < best


def test_vae_monte_carlo_elbo_estimators_converge_to_the_closed_form():
    # A linear VAE whose decoder is a pPCA model and whose encoder is some other q: the
    # closed-form ELBO of that q is exact, and both estimators of vae.py are unbiased for it.
    # N = 20,000 samples per example; we allow 4.5 standard errors (sample sd / sqrt(N)),
    # a two-sided false-failure probability of 7e-6 per comparison, 8 comparisons: < 1e-4.
    rng = np.random.default_rng(4)
    P, D, B, N = 5, 2, 4, 20_000
    W, b, sigma2 = random_model(rng, P, D)
    model = lg.vae_from_ppca(W, b, sigma2)
    model.params["encoder.0.W"] += 0.3 * rng.standard_normal(model.params["encoder.0.W"].shape)
    model.params["encoder.0.b"] += 0.3 * rng.standard_normal(model.params["encoder.0.b"].shape)
    x, _ = lg.sample(B, W, b, sigma2, rng)
    mu, logvar = model.encode(x)
    exact = lg.elbo(x, W, b, sigma2, mu, np.exp(logvar)[..., None] * np.eye(D))
    assert np.all(exact < lg.log_marginal_likelihood(x, W, b, sigma2) - 0.1)   # q is really off

    eps = rng.standard_normal((N, B, D))
    _, cache = model.forward(x, eps, estimator="A")
    per_sample_a = cache["log_px_z"] + cache["log_pz"] - cache["log_qz"]        # estimator A, (N, B)
    _, cache = model.forward(x, eps, estimator="B")
    per_sample_b = cache["log_px_z"] - cache["kl_qp"]                           # estimator B, (N, B)
    for name, samples in (("A (estimator='A')", per_sample_a), ("B (estimator='B')", per_sample_b)):
        se = samples.std(axis=0) / math.sqrt(N)
        error = np.abs(samples.mean(axis=0) - exact)
        assert np.all(error < 4.5 * se), f"estimator {name}: error {error} vs standard error {se}"
    # and VAE.elbo (the mean over samples) is the same estimate
    np.testing.assert_allclose(model.elbo(x, estimator="A", eps=eps), per_sample_a.mean(axis=0), rtol=1e-12)


@given(P=st.integers(2, 6), data=st.data(), seed=seeds)
def test_with_the_exact_posterior_every_estimator_a_sample_equals_log_evidence(P, data, seed):
    # W with orthogonal columns: the VAE's diagonal q can be p(z|x), and then
    # log p(x|z) + log p(z) - log q(z|x) = log p(x) for EVERY z: zero-variance estimator A
    D = data.draw(st.integers(1, P))
    rng = np.random.default_rng(seed)
    W = np.linalg.qr(rng.standard_normal((P, D)))[0][:, :D] * rng.uniform(0.5, 2.0, D)
    b, sigma2 = rng.standard_normal(P), float(rng.uniform(0.1, 2.0))
    model = lg.vae_from_ppca(W, b, sigma2)
    x = rng.standard_normal((3, P))
    _, cache = model.forward(x, rng.standard_normal((4, 3, D)), estimator="A")
    log_w = cache["log_px_z"] + cache["log_pz"] - cache["log_qz"]
    np.testing.assert_allclose(log_w, np.broadcast_to(lg.log_marginal_likelihood(x, W, b, sigma2), (4, 3)),
                               rtol=1e-10, atol=1e-10)


def test_linear_vae_trained_on_ppca_data_approaches_the_maximum_likelihood():
    # Train a linear VAE (affine encoder and decoder, diagonal q, fixed noise variance
    # sigma^2_ML) with Adam on full-batch ELBO gradients. Its decoder is a pPCA model, whose
    # exact log-likelihood can never exceed the ML value; at the ELBO's optimum it equals it
    # (Lucas, Tucker, Grosse & Norouzi 2019: the linear VAE's ELBO optimum is the pPCA ML
    # solution). Measured on this seed: gap 24.5 nats/example at initialisation, 0.006 after
    # 500 steps (0.5 s); the bound 0.05 allows for rounding differences between platforms and
    # the remaining stochastic jitter of L = 1 gradients, and is 500x below the initial gap.
    rng = np.random.default_rng(0)
    P, D, N = 6, 2, 1000
    x, _ = lg.sample(N, 1.5 * rng.standard_normal((P, D)), rng.standard_normal(P), 0.3, rng)
    W_ml, b_ml, sigma2_ml = lg.max_likelihood(x, D)
    best = lg.log_marginal_likelihood(x, W_ml, b_ml, sigma2_ml).mean()

    model = VAE(P, D, hidden=(), likelihood="gaussian", activation="identity",
                obs_logvar=math.log(sigma2_ml), seed=0)

    def exact_gap():
        W, b, sigma2 = lg.ppca_from_vae(model)
        return best - lg.log_marginal_likelihood(x, W, b, sigma2).mean()

    initial_gap = exact_gap()
    optimizer, noise = Adam(model.params, lr=0.05), np.random.default_rng(1)
    for _ in range(500):
        _, grads = model.loss_and_grads(x, rng=noise)
        optimizer.step(grads)
    gap = exact_gap()
    assert initial_gap > 10
    assert -1e-9 <= gap < 0.05, f"exact log-likelihood {gap:.4f} nats/example below the ML value"
    # the trained ELBO (closed form for the trained encoder) is below the exact log-likelihood
    W, b, sigma2 = lg.ppca_from_vae(model)
    mu, logvar = model.encode(x)
    trained_elbo = lg.elbo(x, W, b, sigma2, mu, np.exp(logvar)[..., None] * np.eye(D)).mean()
    assert trained_elbo <= best - gap + 1e-9


def test_vae_from_ppca_decodes_w_z_plus_b_and_reads_back():
    rng = np.random.default_rng(0)
    W, b, sigma2 = random_model(rng, 4, 2)
    model = lg.vae_from_ppca(W, b, sigma2, dtype=np.float32)
    z = rng.standard_normal((3, 2))
    np.testing.assert_allclose(model.decode(z), z @ W.T + b, rtol=1e-5, atol=1e-5)
    assert model.params["decoder.0.W"].dtype == np.float32
    W2, b2, s2 = lg.ppca_from_vae(model)
    np.testing.assert_allclose(W2, W, rtol=1e-6)
    np.testing.assert_allclose(b2, b, rtol=1e-6)
    assert math.isclose(s2, sigma2, rel_tol=1e-12)
    x = rng.standard_normal((5, 4))
    mean, var = lg.mean_field_posterior(x, W, b, sigma2)
    mu, logvar = model.encode(x)
    np.testing.assert_allclose(mu, mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.exp(logvar), np.broadcast_to(var, mu.shape), rtol=1e-5)


@pytest.mark.parametrize("call, match", [
    (lambda W, b, x: lg.log_marginal_likelihood(x, W, b, 0.0), "sigma2"),
    (lambda W, b, x: lg.log_marginal_likelihood(x, W, b[:2], 1.0), r"b \(one per row of W\) must be an array of shape \(3,\)"),
    (lambda W, b, x: lg.log_marginal_likelihood(x[:, :2], W, b, 1.0), r"x must be an array of shape \(any, 3\)"),
    (lambda W, b, x: lg.posterior(x, W[0], b, 1.0), r"W must be an array of shape \(P, D\)"),
    (lambda W, b, x: lg.elbo(x, W, b, 1.0, np.zeros((2, 2)), -np.eye(2)), "positive definite"),
    (lambda W, b, x: lg.elbo(x, W, b, 1.0, np.zeros((2, 2)), np.ones(2)), "q_cov must be an array of shape"),
    (lambda W, b, x: lg.kl_to_posterior(x, W, b, 1.0, np.zeros((2, 2)), np.array([[1.0, 0.5], [0.0, 1.0]])),
     "symmetric"),
    (lambda W, b, x: lg.max_likelihood(x, 3), "z_dim"),
    (lambda W, b, x: lg.ppca_from_vae(VAE(3, 2)), r"model must be a VAE with hidden=\(\)"),
])
def test_bad_input_is_a_clear_value_error(call, match):
    W, b, x = np.ones((3, 2)), np.zeros(3), np.zeros((2, 3))
    with pytest.raises(ValueError, match=match):
        call(W, b, x)
