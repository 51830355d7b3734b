"""Tests of minivae.elbo's IWAE bound: gradients, k = 1 is estimator A, and evaluate's estimate."""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from minivae.elbo import log_mean_exp
from minivae.evaluate import iwae_bound
from minivae.gradcheck import numerical_gradient
from minivae.vae import VAE

from strategies import BOUND, architectures, errors_relative_to_the_whole_gradient, off_relu_kinks, seeds


def model_and_data(arch, B, seed, likelihood="bernoulli"):
    model = VAE(likelihood=likelihood, seed=seed, **arch)
    rng = np.random.default_rng(seed)
    for name in model.params:        # random biases make a relu kink rare (see off_relu_kinks)
        if name.endswith(".b"):
            model.params[name] += rng.uniform(-0.5, 0.5, model.params[name].shape)
    if likelihood == "bernoulli":
        x = rng.uniform(size=(B, model.x_dim))
    else:
        x = rng.standard_normal((B, model.x_dim))
    return model, x, rng


@pytest.mark.parametrize("k", [1, 2, 5])
@settings(max_examples=25, deadline=None)
@given(arch=architectures(), B=st.integers(1, 3), seed=seeds,
       likelihood=st.sampled_from(["bernoulli", "gaussian"]))
def test_iwae_loss_and_grads_match_finite_differences(k, arch, B, seed, likelihood):
    model, x, rng = model_and_data(arch, B, seed, likelihood)
    eps = rng.standard_normal((k, B, model.z_dim))
    assume(off_relu_kinks(model, x, eps))
    _, grads = model.loss_and_grads(x, estimator="iwae", eps=eps)

    def f(params):
        return model.loss_and_grads(x, estimator="iwae", eps=eps)[0]

    numeric = numerical_gradient(f, model.params)
    assert sorted(grads) == sorted(model.params)
    for name, err in errors_relative_to_the_whole_gradient(grads, numeric).items():
        assert err <= BOUND, (f"d(-L_k)/d {name}: relative error {err:.2e} (docs/derivations.md, "
                              f"'Gradient of the IWAE bound': the weights are w_l / sum w)")


@given(arch=architectures(), B=st.integers(1, 4), seed=seeds)
def test_iwae_with_one_sample_is_estimator_a_exactly(arch, B, seed):
    model, x, rng = model_and_data(arch, B, seed)
    eps = rng.standard_normal((1, B, model.z_dim))
    loss_a, grads_a = model.loss_and_grads(x, estimator="A", eps=eps)
    loss_i, grads_i = model.loss_and_grads(x, estimator="iwae", eps=eps)
    assert loss_i == loss_a
    for name in grads_a:
        np.testing.assert_array_equal(grads_i[name], grads_a[name], err_msg=name)


@pytest.mark.parametrize("k", [1, 3, 20])
def test_iwae_value_equals_evaluate_iwae_bound_for_the_same_eps(k):
    model = VAE(7, 3, hidden=(5,), activation="tanh", seed=2)
    x = (np.random.default_rng(3).uniform(size=(6, 7)) > 0.5).astype(float)
    # iwae_bound with one batch and one chunk draws exactly this eps from the same seed
    eps = np.random.default_rng(11).standard_normal((k, 6, 3))
    expected = iwae_bound(model, x, k, rng=np.random.default_rng(11), batch_size=6, chunk=k)
    np.testing.assert_allclose(model.elbo(x, estimator="iwae", eps=eps), expected, rtol=1e-12, atol=1e-12)


def test_iwae_bound_is_at_least_the_elbo_of_the_same_samples():
    # Jensen: log mean w >= mean log w, sample by sample
    model = VAE(7, 3, hidden=(5,), seed=0)
    x = np.random.default_rng(0).uniform(size=(4, 7))
    eps = np.random.default_rng(1).standard_normal((5, 4, 3))
    assert np.all(model.elbo(x, estimator="iwae", eps=eps) >= model.elbo(x, estimator="A", eps=eps) - 1e-12)


def test_log_mean_exp_is_stable_and_its_weights_sum_to_one():
    log_w = np.array([[-1000.0, 800.0], [-1001.0, 801.0], [-np.inf, 799.0]])
    value, weights = log_mean_exp(log_w)
    expected = [np.log(np.exp(0) + np.exp(-1)) - 1000 - np.log(3),
                np.log(np.exp(-1) + 1 + np.exp(-2)) + 801 - np.log(3)]
    np.testing.assert_allclose(value, expected, rtol=1e-12)
    np.testing.assert_allclose(weights.sum(axis=0), 1.0)
    assert weights[2, 0] == 0.0


def test_iwae_refuses_a_kl_weight():
    model = VAE(4, 2, hidden=(3,))
    with pytest.raises(ValueError, match="beta must be 1"):
        model.loss_and_grads(np.full((2, 4), 0.5), estimator="iwae", beta=0.5)
