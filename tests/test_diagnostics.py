"""Tests of minivae.topics.diagnostics: KL per dimension, active units, the ELBO of a free q and its gradient."""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from minivae.topics import diagnostics
from minivae import distributions as dist
from minivae.evaluate import log_weights
from minivae.gradcheck import numerical_gradient
from minivae.optim import Adam
from minivae.vae import VAE

from strategies import BOUND, KINK_MARGIN, architectures, distance_to_relu_kink, seeds


def data_for(model, B, rng):
    if model.likelihood == "bernoulli":
        return rng.uniform(size=(B, model.x_dim))
    return rng.standard_normal((B, model.x_dim))


def test_kl_per_dimension_sums_to_the_analytic_kl():
    rng = np.random.default_rng(0)
    mu, logvar = rng.standard_normal((2, 7, 4))
    per_dim = diagnostics.kl_per_dimension(mu, logvar)
    assert per_dim.shape == (7, 4) and np.all(per_dim >= 0)
    np.testing.assert_allclose(per_dim.sum(axis=1), dist.kl_standard_normal(mu, logvar)[0], rtol=1e-12)


def test_kl_per_dimension_by_hand():
    # mu = 1, sigma^2 = e: 1/2 (1 + e - 1 - 1) = (e - 1)/2; q = prior: 0
    kl = diagnostics.kl_per_dimension(np.array([[1.0, 0.0]]), np.array([[1.0, 0.0]]))
    np.testing.assert_allclose(kl, [[(np.e - 1) / 2, 0.0]], rtol=1e-14)


def test_active_units_are_the_dimensions_whose_mean_varies_with_x():
    rng = np.random.default_rng(1)
    mu = np.stack([rng.normal(0, 1.0, 500),       # variance 1: active
                   rng.normal(3, 0.01, 500),      # a constant code, far from 0: inactive
                   rng.normal(0, 0.3, 500)], 1)   # variance 0.09: active
    activity, active = diagnostics.active_units(mu)
    np.testing.assert_allclose(activity, mu.var(axis=0))
    assert active.tolist() == [True, False, True]
    assert diagnostics.active_units(mu, threshold=0.5)[1].tolist() == [True, False, False]


@pytest.mark.parametrize("args, error", [
    ((np.zeros((1, 3)),), ValueError),                  # one example has no variance
    ((np.zeros(3),), ValueError),
    ((np.array([["a", "b"]]),), TypeError),
    ((np.zeros((4, 2)), -1.0), ValueError),
    ((np.zeros((4, 2)), "0.1"), TypeError),
])
def test_active_units_rejects_bad_input(args, error):
    with pytest.raises(error):
        diagnostics.active_units(*args)


def test_kl_per_dimension_rejects_mismatched_shapes_and_nan():
    with pytest.raises(ValueError, match="shape"):
        diagnostics.kl_per_dimension(np.zeros((2, 3)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="NaN"):
        diagnostics.kl_per_dimension(np.full((2, 3), np.nan), np.zeros((2, 3)))


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_local_elbo_at_the_encoder_output_is_the_models_elbo(likelihood):
    model = VAE(6, 3, hidden=(5,), likelihood=likelihood, activation="tanh", seed=2)
    rng = np.random.default_rng(2)
    x = data_for(model, 4, rng)
    eps = rng.standard_normal((3, 4, 3))
    mu, logvar = model.encode(x)
    elbo, _, _ = diagnostics.local_elbo(model, x, mu, logvar, eps)
    np.testing.assert_allclose(elbo, model.elbo(x, eps=eps), rtol=1e-12)
    # and the log-weights with that q are the encoder's importance weights
    np.testing.assert_allclose(diagnostics.local_log_weights(model, x, mu, logvar, eps),
                               log_weights(model, x, eps), rtol=1e-12)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("n_samples", [1, 3])
@given(arch=architectures(), B=st.integers(1, 4), seed=seeds, obs=st.sampled_from(["learned", -0.5]))
def test_local_elbo_gradient_matches_finite_differences(likelihood, n_samples, arch, B, seed, obs):
    model = VAE(likelihood=likelihood, seed=seed, obs_logvar=obs, **arch)
    rng = np.random.default_rng(seed)
    for name in model.params:
        if name.endswith(".b"):
            model.params[name] += rng.uniform(-0.5, 0.5, model.params[name].shape)
    if "decoder.logvar" in model.params:
        model.params["decoder.logvar"] += rng.uniform(-0.5, 0.5, model.x_dim)
    x = data_for(model, B, rng)
    q = {"mu": rng.standard_normal((B, model.z_dim)),
         "logvar": rng.uniform(-1, 1, (B, model.z_dim))}
    eps = rng.standard_normal((n_samples, B, model.z_dim))
    if model.activation == "relu":       # a decoder pre-activation near relu's kink has no derivative
        z = q["mu"] + np.exp(q["logvar"] / 2) * eps
        distance, _ = distance_to_relu_kink(model.params, "decoder", model.n_layers,
                                            z.reshape(-1, model.z_dim))
        assume(distance > KINK_MARGIN)
    _, dmu, dlogvar = diagnostics.local_elbo(model, x, q["mu"], q["logvar"], eps)

    def f(p):
        return diagnostics.local_elbo(model, x, p["mu"], p["logvar"], eps, grad=False).sum()

    numeric = numerical_gradient(f, q)
    scale = max(np.abs(dmu).max(), np.abs(dlogvar).max(), np.abs(numeric["mu"]).max(),
                np.abs(numeric["logvar"]).max())
    for name, analytic in (("mu", dmu), ("logvar", dlogvar)):
        err = np.abs(analytic - numeric[name]).max() / scale if scale else 0.0
        assert err <= BOUND, (f"d sum_b ELBO_b / d {name}: relative error {err:.2e} "
                              "(docs/derivations.md, 'Gradient of the ELBO estimators', steps 1-4)")


def test_ascending_the_local_elbo_beats_the_encoder():
    # an untrained encoder is far from the best q for a fixed decoder: a few hundred Adam
    # steps on (mu, logvar) alone must raise the ELBO, measured on fresh common noise
    model = VAE(20, 2, hidden=(16,), activation="tanh", seed=3)
    rng = np.random.default_rng(3)
    x = (rng.uniform(size=(8, 20)) < 0.3).astype(float)
    mu, logvar = model.encode(x)
    q = {"mu": mu.copy(), "logvar": logvar.copy()}
    optimiser = Adam(q, lr=0.05)
    for _ in range(300):
        eps = rng.standard_normal((4, 8, 2))
        _, dmu, dlogvar = diagnostics.local_elbo(model, x, q["mu"], q["logvar"], eps)
        optimiser.step({"mu": -dmu, "logvar": -dlogvar})
    eps = rng.standard_normal((2000, 8, 2))
    before = diagnostics.local_elbo(model, x, mu, logvar, eps, grad=False)
    after = diagnostics.local_elbo(model, x, q["mu"], q["logvar"], eps, grad=False)
    assert np.all(after > before)


def test_local_elbo_rejects_bad_input():
    model = VAE(6, 2, hidden=(4,))
    x = np.zeros((3, 6))
    good = np.zeros((3, 2))
    eps = np.zeros((1, 3, 2))
    with pytest.raises(TypeError, match="minivae.VAE"):
        diagnostics.local_elbo("model", x, good, good, eps)
    with pytest.raises(ValueError, match=r"mu must be an array of shape \(3, 2\), got an array of shape \(3, 3\)"):
        diagnostics.local_elbo(model, x, np.zeros((3, 3)), np.zeros((3, 3)), eps)
    with pytest.raises(ValueError, match="eps"):
        diagnostics.local_elbo(model, x, good, good, np.zeros((1, 2, 2)))
    with pytest.raises(ValueError, match="Bernoulli"):
        diagnostics.local_elbo(model, x + 2, good, good, eps)
