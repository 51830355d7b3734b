"""Tests of minivae.topics.wake_sleep: both phases' gradients, which parameters each phase moves, a step."""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from minivae import distributions as dist
from minivae.gradcheck import numerical_gradient
from minivae.optim import make_optimizer
from minivae.vae import VAE
from minivae.topics.wake_sleep import sleep_loss_and_grads, wake_loss_and_grads, wake_sleep_step

from strategies import BOUND, architectures, errors_relative_to_the_whole_gradient, off_relu_kinks, seeds


def random_model(arch, seed):
    model = VAE(seed=seed, **arch)
    rng = np.random.default_rng(seed)
    for name in model.params:
        if name.endswith(".b"):
            model.params[name] += rng.uniform(-0.5, 0.5, model.params[name].shape)
    return model, rng


def check(analytic, f, params, phase):
    numeric = numerical_gradient(f, params)
    assert sorted(analytic) == sorted(params)
    for name, err in errors_relative_to_the_whole_gradient(analytic, numeric).items():
        assert err <= BOUND, f"{phase} phase, d loss / d {name}: relative error {err:.2e}"


@settings(max_examples=30, deadline=None)
@given(arch=architectures(), B=st.integers(1, 3), L=st.integers(1, 3), seed=seeds)
def test_wake_grads_match_finite_differences_in_theta(arch, B, L, seed):
    model, rng = random_model(arch, seed)
    x = rng.uniform(size=(B, model.x_dim))
    eps = rng.standard_normal((L, B, model.z_dim))
    assume(off_relu_kinks(model, x, eps))
    _, grads = wake_loss_and_grads(model, x, eps)
    decoder = {k: v for k, v in model.params.items() if k.startswith("decoder.")}
    check(grads, lambda p: wake_loss_and_grads(model, x, eps)[0], decoder, "wake")


@settings(max_examples=30, deadline=None)
@given(arch=architectures(), B=st.integers(1, 3), seed=seeds)
def test_sleep_grads_match_finite_differences_in_phi(arch, B, seed):
    model, rng = random_model(arch, seed)
    z = rng.standard_normal((B, model.z_dim))
    u = rng.uniform(size=(B, model.x_dim))
    dream = (u < model.decode(z)).astype(float)      # the x the encoder sees (fixed: phi moves, not theta)
    assume(off_relu_kinks(model, dream))
    _, grads = sleep_loss_and_grads(model, z, u)
    encoder = {k: v for k, v in model.params.items() if k.startswith("encoder.")}
    check(grads, lambda p: sleep_loss_and_grads(model, z, u)[0], encoder, "sleep")


def test_wake_loss_is_minus_log_joint_and_the_encoder_gets_no_gradient():
    model = VAE(5, 2, hidden=(4,), activation="tanh", seed=0)
    x = (np.random.default_rng(0).uniform(size=(3, 5)) > 0.5).astype(float)
    eps = np.random.default_rng(1).standard_normal((2, 3, 2))
    loss, grads = wake_loss_and_grads(model, x, eps)
    _, cache = model.forward(x, eps, estimator="A")
    assert loss == pytest.approx(-float((cache["log_px_z"] + cache["log_pz"]).mean()), rel=1e-12)
    assert all(k.startswith("decoder.") for k in grads)


def test_sleep_loss_is_minus_log_q_of_the_dream():
    model = VAE(5, 2, hidden=(4,), activation="tanh", seed=0)
    z = np.random.default_rng(0).standard_normal((4, 2))
    u = np.random.default_rng(1).uniform(size=(4, 5))
    loss, grads = sleep_loss_and_grads(model, z, u)
    x = (u < model.decode(z)).astype(float)
    mu, logvar = model.encode(x)
    assert loss == pytest.approx(-dist.gaussian_log_density(z, mu, logvar)[0].mean(), rel=1e-12)
    assert all(k.startswith("encoder.") for k in grads)


def test_wake_sleep_step_moves_every_parameter_and_training_raises_the_elbo():
    rng = np.random.default_rng(0)
    x = (rng.uniform(size=(200, 12)) < np.linspace(0.1, 0.9, 12)).astype(float)
    model = VAE(12, 2, hidden=(8,), activation="tanh", seed=0)
    before = {k: v.copy() for k, v in model.params.items()}
    elbo_before = model.elbo(x, n_samples=20, rng=np.random.default_rng(1)).mean()
    opt = make_optimizer("adagrad", model.params, lr=0.05)
    for step in range(150):
        wake_sleep_step(model, opt, x[(step % 4) * 50:(step % 4 + 1) * 50], rng)
    assert all(not np.array_equal(before[k], model.params[k]) for k in before)
    assert model.elbo(x, n_samples=20, rng=np.random.default_rng(1)).mean() > elbo_before


def test_wake_sleep_needs_a_bernoulli_model_and_well_shaped_noise():
    with pytest.raises(ValueError, match="model.likelihood must be .bernoulli."):
        wake_loss_and_grads(VAE(3, 1, hidden=(), likelihood="gaussian"), np.zeros((1, 3)),
                            np.zeros((1, 1, 1)))
    with pytest.raises(ValueError, match="u must be an array of shape"):
        sleep_loss_and_grads(VAE(3, 1, hidden=()), np.zeros((2, 1)), np.zeros((3, 3)))
    with pytest.raises(TypeError):
        sleep_loss_and_grads(VAE(3, 1, hidden=()), np.array([["a"]]), np.zeros((1, 3)))
