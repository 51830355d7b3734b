"""Tests of minivae.topics.marginal_likelihood: the z-gradient, HMC's samples and the App. D estimator.

The sampler and the estimator are checked where the answer is known: on the exact
linear-Gaussian model (linear_gaussian.vae_from_ppca: a VAE whose decoder is pPCA, with
the exact posterior and log p(x)) and on a small nonlinear Bernoulli decoder with a 2-D
latent space, whose log p(x) a fine grid over z gives to many digits.
"""
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from minivae.topics import linear_gaussian as lg
from minivae.topics import marginal_likelihood as ml
from minivae.gradcheck import numerical_gradient, rel_error
from minivae.vae import VAE

from strategies import BOUND, KINK_MARGIN, architectures, distance_to_relu_kink, seeds


def random_model(arch, likelihood, obs_logvar, seed):
    model = VAE(likelihood=likelihood, obs_logvar=obs_logvar, seed=seed, **arch)
    rng = np.random.default_rng(seed)
    for name in model.params:
        if name.endswith(".b"):
            model.params[name] += rng.uniform(-0.5, 0.5, model.params[name].shape)
    return model, rng


@settings(max_examples=40, deadline=None)
@given(arch=architectures(), likelihood=st.sampled_from(["bernoulli", "gaussian"]),
       obs_logvar=st.sampled_from(["learned", -0.5]), B=st.integers(1, 3), C=st.integers(1, 3),
       seed=seeds)
def test_log_joint_gradient_matches_finite_differences(arch, likelihood, obs_logvar, B, C, seed):
    model, rng = random_model(arch, likelihood, obs_logvar, seed)
    if likelihood == "gaussian" and obs_logvar == "learned":
        model.params["decoder.logvar"][...] = rng.uniform(-1, 1, model.x_dim)
    x = rng.uniform(size=(B, model.x_dim)) if likelihood == "bernoulli" else rng.normal(size=(B, model.x_dim))
    z = 1.5 * rng.standard_normal((C, B, model.z_dim))
    if model.activation == "relu":       # no derivative at a kink (tests/strategies.py)
        distance, _ = distance_to_relu_kink(model.params, "decoder", model.n_layers,
                                            z.reshape(-1, model.z_dim))
        assume(distance > KINK_MARGIN)
    _, dz = ml.log_joint_and_grad(model, x, z)
    # each z[c, b] enters only log p(x_b, z[c, b]): the gradient of the sum is every term's
    numeric = numerical_gradient(lambda p: float(ml.log_joint_and_grad(model, x, p["z"])[0].sum()),
                                 {"z": z})
    err = rel_error(dz, numeric["z"])
    assert err <= BOUND, (f"d log p(x, z) / dz = d log p(x|z) / dz - z: relative error {err:.2e} "
                          "(docs/derivations.md, 'Marginal likelihood by Hybrid Monte Carlo')")


def test_log_joint_and_gradient_of_the_linear_gaussian_model_are_its_closed_forms():
    # log N(x; W z + b, s2 I) + log N(z; 0, I) and its gradient W^T (x - W z - b) / s2 - z
    rng = np.random.default_rng(0)
    W, b, s2 = rng.normal(size=(5, 2)), rng.normal(size=5), 0.7
    x, z = rng.normal(size=(3, 5)), rng.normal(size=(4, 3, 2))
    log_joint, dz = ml.log_joint_and_grad(lg.vae_from_ppca(W, b, s2), x, z)
    residual = x - z @ W.T - b                                          # (4, 3, 5)
    expected = (-0.5 * (5 * math.log(2 * math.pi * s2) + (residual ** 2).sum(-1) / s2)
                - 0.5 * (2 * math.log(2 * math.pi) + (z ** 2).sum(-1)))
    np.testing.assert_allclose(log_joint, expected, rtol=1e-12)
    np.testing.assert_allclose(dz, residual @ W / s2 - z, rtol=1e-10, atol=1e-12)


def test_leapfrog_is_reversible_and_its_energy_error_is_second_order():
    # Metropolis with min(1, exp(-dH)) has the posterior as its stationary law only because
    # leapfrog is volume-preserving and reversible: from the end point with the momentum
    # negated it retraces its path exactly (to rounding).  Its energy error is O(step^2):
    # half the step over the same time gives a quarter of |dH|.
    model = VAE(6, 2, hidden=(5,), activation="tanh", seed=0)
    rng = np.random.default_rng(9)
    x = (rng.uniform(size=(3, 6)) < 0.5).astype(float)
    z, r = rng.normal(size=(4, 3, 2)), rng.normal(size=(4, 3, 2))
    log_joint, grad = ml.log_joint_and_grad(model, x, z)
    step = np.full(3, 0.05)
    z1, r1, log_joint1, grad1 = ml.leapfrog(model, x, z, r, grad, step, 20)
    z2, r2, _, _ = ml.leapfrog(model, x, z1, -r1, grad1, step, 20)
    np.testing.assert_allclose(z2, z, atol=1e-10, err_msg="leapfrog is not reversible")
    np.testing.assert_allclose(-r2, r, atol=1e-10, err_msg="leapfrog is not reversible")

    def energy_error(step, n_steps):
        z1, r1, log_joint1, _ = ml.leapfrog(model, x, z, r, grad, np.full(3, step), n_steps)
        return np.abs((-log_joint1 + 0.5 * (r1 ** 2).sum(-1)) - (-log_joint + 0.5 * (r ** 2).sum(-1)))

    ratio = energy_error(0.02, 50) / energy_error(0.01, 100)
    assert np.all((ratio > 3) & (ratio < 5)), f"|dH| ratio for half the step: {ratio} (expected ~4)"


def linear_gaussian_problem(seed=1, P=5, D=2, B=3):
    rng = np.random.default_rng(seed)
    W, b, s2 = rng.normal(size=(P, D)), rng.normal(size=P), 0.5
    x, _ = lg.sample(B, W, b, s2, rng)
    return lg.vae_from_ppca(W, b, s2), x, (W, b, s2)


def test_hmc_draws_have_the_exact_posterior_mean_and_covariance():
    # C = 600 independent chains per image, started from the prior, not the posterior; one
    # draw per chain after burn-in, so the draws are independent (no autocorrelation).
    # Standard errors of C independent draws of N(m, S): sqrt(S_ii / C) for a mean and
    # sqrt((S_ii S_jj + S_ij^2) / C) for a covariance entry (Gaussian fourth moments).
    # 3 images x (2 means + 3 covariance entries): |z| < 4.5 for all has a false-alarm
    # probability of about 1e-4.  Fixed seeds.
    model, x, (W, b, s2) = linear_gaussian_problem()
    C = 600
    z0 = np.random.default_rng(2).standard_normal((C, len(x), 2))
    draws, info = ml.hmc_sample(model, x, n_chains=C, n_burn=60, n_draws=1, z0=z0,
                                rng=np.random.default_rng(3))
    mean, cov = lg.posterior(x, W, b, s2)
    z = draws[-1]                                                       # (C, B, D)
    mean_z = (z.mean(axis=0) - mean) / np.sqrt(np.diag(cov) / C)
    assert np.abs(mean_z).max() < 4.5, f"HMC's mean is off the exact posterior mean: z = {mean_z}"
    sample_cov = np.einsum("cbi,cbj->bij", z - z.mean(0), z - z.mean(0)) / (C - 1)
    se = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov ** 2) / C)
    cov_z = (sample_cov - cov) / se
    assert np.abs(cov_z).max() < 4.5, f"HMC's covariance is off the exact one: z = {cov_z}"


def test_step_size_adaptation_approaches_the_target_acceptance_rate():
    # Not a statistical tolerance: the rate over 400 chains x 10 draws has a standard error
    # under 0.015, and 0.05 is the slack allowed to 40 iterations of dual averaging.  A step
    # size that did not adapt (or adapted the wrong way) misses by far more.  Targets below
    # about 0.85 are not used: on a Gaussian target leapfrog's energy error is bounded and
    # periodic, so the acceptance rate is flat (about 0.8 here) over a range of step sizes
    # before it falls off at the stability limit, 2 x the smallest posterior sd.
    model, x, _ = linear_gaussian_problem()
    steps = {}
    for target in (0.9, 0.99):
        _, info = ml.hmc_sample(model, x, n_chains=400, n_burn=40, n_draws=10,
                                target_accept=target, rng=np.random.default_rng(4))
        assert np.abs(info["accept_rate"] - target).max() < 0.05, (target, info["accept_rate"])
        steps[target] = info["step_size"]
    assert np.all(steps[0.99] < steps[0.9])          # a higher target needs smaller steps


def test_app_d_estimate_matches_the_exact_log_likelihood_of_the_linear_gaussian_model():
    # |estimate - exact| < 4 se per image, se from the spread of 20 independent chains'
    # means; the estimator's own bias (about se^2 / 2) is far below that.  Fixed seed.
    model, x, (W, b, s2) = linear_gaussian_problem(B=4)
    estimate, info = ml.hmc_log_likelihood(model, x, n_chains=40, n_burn=50, n_draws=25,
                                           rng=np.random.default_rng(5), return_info=True)
    exact = lg.log_marginal_likelihood(x, W, b, s2)
    z = (estimate - exact) / info["se"]
    assert np.abs(z).max() < 4, f"App. D estimate {estimate} vs exact {exact}: z = {z}"
    assert np.all(info["se"] < 0.05)           # a fitted Gaussian q is almost the posterior here


def test_app_d_estimate_matches_quadrature_for_a_nonlinear_bernoulli_decoder():
    # D = 2: log p(x) = log sum_grid p(x, z) h^2 on a 321 x 321 grid over [-8, 8]^2 (the
    # prior's mass outside is < 1e-14; the sum of a smooth integrand is accurate far beyond
    # the test's tolerance).  The posterior is not Gaussian, so q/p(x, z) varies and the
    # standard error matters: |estimate - quadrature| < 4 se per image.  Fixed seeds.
    model = VAE(8, 2, hidden=(6,), activation="tanh", seed=3)
    rng = np.random.default_rng(6)
    for name in model.params:
        model.params[name][...] = rng.normal(scale=1.2, size=model.params[name].shape)
    x = (rng.uniform(size=(3, 8)) < 0.5).astype(float)
    grid = np.linspace(-8, 8, 321)
    h = grid[1] - grid[0]
    z_grid = np.stack(np.meshgrid(grid, grid), axis=-1).reshape(-1, 1, 2).repeat(3, axis=1)
    log_joint, _ = ml.log_joint_and_grad(model, x, z_grid)
    exact = logsumexp(log_joint, axis=0) + 2 * math.log(h)
    estimate, info = ml.hmc_log_likelihood(model, x, n_chains=40, n_burn=50, n_draws=25,
                                           rng=np.random.default_rng(7), return_info=True)
    z = (estimate - exact) / info["se"]
    assert np.abs(z).max() < 4, f"App. D estimate {estimate} vs quadrature {exact}: z = {z}"


def test_fitted_gaussian_and_its_log_density_agree_with_scipy():
    rng = np.random.default_rng(8)
    A = rng.normal(size=(2, 3, 3))
    samples = np.einsum("bij,nbj->nbi", A, rng.normal(size=(500, 2, 3))) + np.array([1.0, -2.0, 0.5])
    m, chol = ml.fit_gaussian(samples)
    z = rng.normal(size=(4, 2, 3))
    log_q = ml.gaussian_log_density_full(z, m, chol)
    for b in range(2):
        S = np.cov(samples[:, b].T)
        np.testing.assert_allclose(chol[b] @ chol[b].T, S, rtol=1e-5)     # up to the ridge
        np.testing.assert_allclose(log_q[:, b], multivariate_normal(m[b], chol[b] @ chol[b].T)
                                   .logpdf(z[:, b]), rtol=1e-10)


def test_inputs_are_checked():
    model, x, _ = linear_gaussian_problem()
    with pytest.raises(TypeError, match="minivae.VAE"):
        ml.hmc_log_likelihood("model", x)
    with pytest.raises(ValueError, match="n_chains must be an integer >= 4"):
        ml.hmc_log_likelihood(model, x, n_chains=3)
    with pytest.raises(ValueError, match="z must be an array of shape"):
        ml.log_joint_and_grad(model, x, np.zeros((2, len(x) + 1, 2)))
    with pytest.raises(ValueError, match="target_accept"):
        ml.hmc_sample(model, x, target_accept=1.0)
    with pytest.raises(ValueError, match="z0 must be an array of shape"):
        ml.hmc_sample(model, x, n_chains=5, z0=np.zeros((4, len(x), 2)))
