"""Tests of minivae.topics.gradient_estimators: score-function and reparameterised encoder gradients.

Both are checked against finite differences draw by draw, tied to VAE.backward, and
compared statistically: same expectation, and the reparameterised one has the smaller
variance on the standard model (an MLP encoder and decoder, Bernoulli likelihood).
"""
import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from scipy.stats import norm

from minivae.topics import gradient_estimators as es
from minivae import evaluate
from minivae.gradcheck import numerical_gradient, rel_error
from minivae.vae import VAE

from strategies import (BOUND, architectures, errors_relative_to_the_whole_gradient, off_relu_kinks,
                        seeds)


def random_model(arch, likelihood, seed):
    model = VAE(likelihood=likelihood, seed=seed, **arch)
    rng = np.random.default_rng(seed)
    for name in model.params:        # random biases make a relu kink rare (see off_relu_kinks)
        if name.endswith(".b"):
            model.params[name] += rng.uniform(-0.5, 0.5, model.params[name].shape)
    return model


def encoder_params(model):
    # the model's own arrays: numerical_gradient perturbs them in place
    return {name: model.params[name] for name in es.encoder_names(model)}


@given(arch=architectures(), N=st.integers(1, 4), B=st.integers(1, 3), seed=seeds)
def test_encoder_score_matches_finite_differences(arch, N, B, seed):
    # d/dphi (1/B) sum_b log q_phi(z_nb | x_b) with z fixed, for every draw n: checked through a
    # random projection over draws, f = sum_n c_n (1/B) sum_b log q(z_nb|x_b), so a mistake
    # in any single draw's gradient would show
    model = random_model(arch, "bernoulli", seed)
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(B, model.x_dim))
    z = 1.5 * rng.standard_normal((N, B, model.z_dim))
    c = rng.standard_normal(N)
    assume(off_relu_kinks(model, x))          # log q uses the encoder only
    score = es.encoder_score(model, x, z)
    assert sorted(score) == sorted(es.encoder_names(model))

    def f(params):
        return float(c @ es.log_q(model, x, z).mean(axis=1))

    numeric = numerical_gradient(f, encoder_params(model))
    for name, g in score.items():
        assert g.shape == (N,) + model.params[name].shape
    projected = {name: np.tensordot(c, g, axes=1) for name, g in score.items()}
    for name, err in errors_relative_to_the_whole_gradient(projected, numeric).items():
        assert err <= BOUND, f"d log q / d {name}: relative error {err:.2e}"


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@given(arch=architectures(), N=st.integers(1, 4), B=st.integers(1, 3), seed=seeds)
def test_reparameterised_gradients_match_finite_differences(likelihood, arch, N, B, seed):
    # g_RP[n] = d/dphi (1/B) sum_b log w(x_b, mu_b + sigma_b eps_nb), eps fixed, per draw
    model = random_model(arch, likelihood, seed)
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(B, model.x_dim))
    eps = rng.standard_normal((N, B, model.z_dim))
    c = rng.standard_normal(N)
    assume(off_relu_kinks(model, x, eps))
    grads = es.reparameterised_gradients(model, x, eps)

    def f(params):
        return float(c @ evaluate.log_weights(model, x, eps).mean(axis=1))

    numeric = numerical_gradient(f, encoder_params(model))
    projected = {name: np.tensordot(c, g, axes=1) for name, g in grads.items()}
    for name, err in errors_relative_to_the_whole_gradient(projected, numeric).items():
        assert err <= BOUND, f"reparameterised d/d {name}: relative error {err:.2e}"


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@given(arch=architectures(), N=st.integers(1, 5), B=st.integers(1, 3), seed=seeds)
def test_mean_of_reparameterised_draws_is_what_vae_backward_computes(likelihood, arch, N, B, seed):
    # averaged over the N draws, the per-draw gradients are VAE.loss_and_grads's with L = N
    # samples (estimator A, beta = 1), negated: the same chain rule, kept per draw
    model = random_model(arch, likelihood, seed)
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(B, model.x_dim))
    eps = rng.standard_normal((N, B, model.z_dim))
    _, vae_grads = model.loss_and_grads(x, eps=eps, estimator="A")
    grads = es.reparameterised_gradients(model, x, eps)
    for name, g in grads.items():
        assert rel_error(g.mean(axis=0), -vae_grads[name]) <= 1e-12, name


def small_standard_model():
    # the standard architecture (MLP encoder and decoder, relu, Bernoulli likelihood), small
    model = VAE(12, 2, hidden=(10,), seed=7)
    x = np.random.default_rng(7).uniform(0.05, 0.95, size=(4, 12))     # grey levels, none 0
    return model, x


def bonferroni_z(n_tests, family_error=1e-3):
    """The two-sided normal quantile that keeps P(any of n_tests |t| exceeds it) below family_error."""
    return norm.isf(family_error / (2 * n_tests))


def assert_zero_mean(mean, variance, n_draws, z):
    """|mean| <= z standard errors per entry; entries with zero variance must be exactly 0."""
    se = np.sqrt(variance / n_draws)
    assert np.all(np.abs(mean) <= z * se), np.max(np.abs(mean) / np.where(se > 0, se, np.inf))


def test_score_has_zero_mean_under_q():
    # E_q[grad_phi log q_phi(z|x)] = 0, the identity that makes the score-function estimator
    # unbiased. N = 20,000 draws, each entry within the Bonferroni z (family error 1e-3).
    model, x = small_standard_model()
    N = 20_000
    rng = np.random.default_rng(1)
    mu, logvar = model.encode(x)
    z = mu + np.exp(logvar / 2) * rng.standard_normal((N,) + mu.shape)
    score = es.encoder_score(model, x, z)
    n_tests = sum(g[0].size for g in score.values())
    for name, g in score.items():
        assert_zero_mean(g.mean(axis=0), g.var(axis=0, ddof=1), N, bonferroni_z(n_tests))


@pytest.fixture(scope="module")
def statistics():
    model, x = small_standard_model()
    return es.estimator_variances(model, x, 20_000, rng=np.random.default_rng(0), chunk=5000)


def test_score_function_and_reparameterised_means_agree_within_standard_errors(statistics):
    # Both are unbiased for grad_phi ELBO. Paired draws (same eps): g_SF - g_RP has mean 0,
    # and its per-entry mean over N = 20,000 draws must lie within the Bonferroni z
    # (family error 1e-3 over all entries) times its standard error sqrt(Var / N).
    N = statistics["n_draws"]
    score, reparam = statistics["score"]["mean"], statistics["reparameterised"]["mean"]
    n_tests = sum(v.size for v in score.values())
    for name in score:
        assert_zero_mean(score[name] - reparam[name], statistics["difference_variance"][name], N,
                         bonferroni_z(n_tests))
    # the comparison is sharp: for the largest entry of the gradient, the standard error of the
    # difference is below a tenth of the entry (measured: 0.03), so a bias of 15% would be caught
    for name in reparam:
        i = np.unravel_index(np.argmax(np.abs(reparam[name])), reparam[name].shape)
        assert math.sqrt(statistics["difference_variance"][name][i] / N) < abs(reparam[name][i]) / 10, name


def test_reparameterised_variance_is_smaller_on_the_standard_model(statistics):
    # summed over each parameter array (the trace of its covariance), and overall; with
    # N = 20,000 draws the estimated variances are accurate to a few per cent, far below the
    # measured ratio (22x here)
    score, reparam = statistics["score"]["variance"], statistics["reparameterised"]["variance"]
    for name in score:
        assert reparam[name].sum() < score[name].sum(), name
    assert statistics["reparameterised"]["total_variance"] * 5 < statistics["score"]["total_variance"]


def test_chunked_statistics_equal_numpy_on_all_draws_at_once():
    model, x = small_standard_model()
    stats = es.estimator_variances(model, x, 50, rng=np.random.default_rng(3), chunk=7)
    eps = np.random.default_rng(3).standard_normal((50, 4, 2))   # the same draws, in one piece
    for key, draws in (("score", es.score_function_gradients(model, x, eps)),
                       ("reparameterised", es.reparameterised_gradients(model, x, eps))):
        for name, g in draws.items():
            np.testing.assert_allclose(stats[key]["mean"][name], g.mean(axis=0), rtol=1e-10, atol=1e-14)
            np.testing.assert_allclose(stats[key]["variance"][name], g.var(axis=0, ddof=1),
                                       rtol=1e-9, atol=1e-14)


def test_float32_models_keep_their_dtype():
    model = VAE(5, 2, hidden=(4,), dtype=np.float32)
    x = np.random.default_rng(0).uniform(size=(3, 5))
    eps = np.random.default_rng(1).standard_normal((6, 3, 2))
    for grads in (es.score_function_gradients(model, x, eps), es.reparameterised_gradients(model, x, eps)):
        assert all(g.dtype == np.float32 and g.shape[0] == 6 for g in grads.values())


def test_bad_input_is_a_clear_value_error():
    model = VAE(4, 2, hidden=(3,))
    x = np.zeros((2, 4))
    with pytest.raises(ValueError, match=r"eps must be an array of shape \(n_samples, 2, 2\)"):
        es.reparameterised_gradients(model, x, np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"z must be an array of shape"):
        es.encoder_score(model, x, np.zeros((3, 3, 2)))
    with pytest.raises(ValueError, match="n_draws must be an integer >= 2"):
        es.estimator_variances(model, x, 1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        es.score_function_gradients(model, -x - 1, np.zeros((1, 2, 2)))
