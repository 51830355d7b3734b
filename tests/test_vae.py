"""Tests of minivae.vae: the ELBO estimators, their gradients, shapes, dtypes and input errors."""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from minivae import distributions as dist
from minivae.gradcheck import check_vae, numerical_gradient
from minivae.vae import VAE

from strategies import (BOUND, architectures, errors_relative_to_the_whole_gradient, off_relu_kinks,
                        seeds)


def data_for(model, B, rng):
    if model.likelihood == "bernoulli":
        return rng.uniform(size=(B, model.x_dim))
    return rng.standard_normal((B, model.x_dim))


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("estimator", ["B", "A"])
@pytest.mark.parametrize("n_samples", [1, 5])
@given(arch=architectures(), B=st.integers(1, 4), seed=seeds)
def test_loss_and_grads_match_finite_differences(likelihood, estimator, n_samples, arch, B, seed):
    # The acceptance check of the core issue: float64, fixed eps, random architecture,
    # both likelihoods, both estimators, L = 1 and 5, beta = 0.5.
    model = VAE(likelihood=likelihood, seed=seed, **arch)
    rng = np.random.default_rng(seed)
    for name in model.params:        # random biases make a relu kink rare (see off_relu_kinks)
        if name.endswith(".b"):
            model.params[name] += rng.uniform(-0.5, 0.5, model.params[name].shape)
    x = data_for(model, B, rng)
    eps = rng.standard_normal((n_samples, B, model.z_dim))
    assume(off_relu_kinks(model, x, eps))     # the biases make a kink rare, not impossible
    loss, grads = model.loss_and_grads(x, estimator=estimator, beta=0.5, eps=eps)

    def f(params):
        return model.loss_and_grads(x, estimator=estimator, beta=0.5, eps=eps)[0]

    numeric = numerical_gradient(f, model.params)
    assert sorted(grads) == sorted(model.params)
    for name, err in errors_relative_to_the_whole_gradient(grads, numeric).items():
        assert err <= BOUND, f"d loss / d {name}: relative error {err:.2e} (see docs/derivations.md)"


def test_gradcheck_helper_agrees_with_the_test_above_on_the_standard_shapes():
    model = VAE(8, 2, hidden=(6, 5), activation="tanh", seed=1)
    x = np.random.default_rng(1).uniform(size=(3, 8))
    report = check_vae(model, x, n_samples=2, estimator="A", beta=0.3)
    assert max(r["rel_error"] for r in report.values()) <= BOUND


def test_loss_is_deterministic_given_eps_and_random_without_it():
    model = VAE(6, 2, hidden=(4,))
    x = np.random.default_rng(0).uniform(size=(5, 6))
    eps = np.random.default_rng(1).standard_normal((3, 5, 2))
    a, ga = model.loss_and_grads(x, eps=eps)
    b, gb = model.loss_and_grads(x, eps=eps)
    assert a == b and all(np.array_equal(ga[k], gb[k]) for k in ga)
    c, _ = model.loss_and_grads(x, rng=np.random.default_rng(2))
    d, _ = model.loss_and_grads(x, rng=np.random.default_rng(3))
    assert c != d


@given(arch=architectures(), L=st.integers(2, 4), estimator=st.sampled_from(["B", "A"]), seed=seeds)
def test_l_samples_at_once_equal_the_mean_of_one_sample_runs(arch, L, estimator, seed):
    # vectorising over samples must not change the estimate: (L, B, D) at once == mean of L runs
    model = VAE(seed=seed, **arch)
    rng = np.random.default_rng(seed)
    x = data_for(model, 3, rng)
    eps = rng.standard_normal((L, 3, model.z_dim))
    together = model.elbo(x, estimator=estimator, eps=eps)
    one_by_one = np.mean([model.elbo(x, estimator=estimator, eps=eps[l:l + 1]) for l in range(L)], axis=0)
    np.testing.assert_allclose(together, one_by_one, rtol=1e-12, atol=1e-12)


def test_estimators_a_and_b_agree_in_expectation():
    # Both are unbiased for the same ELBO. Use the same eps for both (a paired comparison);
    # with N = 20,000 draws the mean difference has standard error sd(diff)/sqrt(N), and we
    # allow 4 of them (fixed seed: deterministic; false-failure probability < 1e-4).
    model = VAE(10, 3, hidden=(8,), seed=5)
    rng = np.random.default_rng(5)
    x = (rng.uniform(size=(4, 10)) < 0.4).astype(float)
    N = 20_000
    eps = rng.standard_normal((N, 4, 3))
    _, cache_a = model.forward(x, eps, estimator="A")
    _, cache_b = model.forward(x, eps, estimator="B")
    a = cache_a["log_px_z"] + cache_a["log_pz"] - cache_a["log_qz"]          # (N, B) estimator A
    b = cache_b["log_px_z"] - cache_b["kl_qp"]                               # (N, B) estimator B
    diff = a - b
    se = diff.std(axis=0) / np.sqrt(N)
    assert np.all(np.abs(diff.mean(axis=0)) < 4 * se), (diff.mean(axis=0), se)
    # and estimator B has the smaller variance, the reason the paper prefers it
    assert np.all(b.var(axis=0) < a.var(axis=0))


@given(arch=architectures(), seed=seeds)
def test_kl_is_nonnegative_and_estimator_b_is_nonpositive_for_binary_data(arch, seed):
    # log p(x|z) <= 0 for binary x, and KL >= 0, so every estimate of estimator B is <= 0
    model = VAE(seed=seed, **arch)
    rng = np.random.default_rng(seed)
    x = (rng.uniform(size=(4, model.x_dim)) < 0.5).astype(float)
    _, _, cache = model.loss_and_grads(x, n_samples=3, rng=rng, return_cache=True)
    assert np.all(cache["kl_qp"] >= 0)
    assert np.all(cache["log_px_z"] <= 0)
    assert np.all(cache["elbo"] <= 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("estimator", ["B", "A"])
def test_every_intermediate_and_gradient_keeps_the_model_dtype(dtype, likelihood, estimator):
    model = VAE(12, 3, hidden=(7, 5), likelihood=likelihood, dtype=dtype)
    x = np.random.default_rng(0).uniform(size=(6, 12))       # float64 input is cast once
    loss, grads, cache = model.loss_and_grads(x, n_samples=2, estimator=estimator, return_cache=True)
    assert np.isfinite(loss)
    for name, value in cache.items():
        if isinstance(value, np.ndarray):
            assert value.dtype == dtype, f"cache[{name!r}] is {value.dtype}"
    for name, g in grads.items():
        assert g.dtype == dtype, f"grads[{name!r}] is {g.dtype}"
        assert g.shape == model.params[name].shape


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("estimator", ["B", "A"])
def test_extreme_logits_and_logvar_give_finite_loss_and_gradients(dtype, estimator):
    model = VAE(5, 2, hidden=(), dtype=dtype)
    # push the encoder's logvar to +-30 and the decoder's logits to about +-1e4
    model.params["encoder.0.b"][:] = [0.0, 0.0, 30.0, -30.0]
    model.params["decoder.0.b"][:] = [1e4, -1e4, 1e4, -1e4, 0.0]
    x = np.array([[1.0, 0.0, 0.0, 1.0, 0.5]])
    loss, grads = model.loss_and_grads(x, estimator=estimator, n_samples=3, rng=np.random.default_rng(0))
    assert np.isfinite(loss)
    assert all(np.isfinite(g).all() for g in grads.values())


def test_no_hidden_layer_gives_affine_encoder_and_decoder():
    model = VAE(4, 2, hidden=())
    assert sorted(model.params) == ["decoder.0.W", "decoder.0.b", "encoder.0.W", "encoder.0.b"]
    z = np.random.default_rng(0).standard_normal((3, 2))
    np.testing.assert_allclose(model.decode(z), 1 / (1 + np.exp(-(z @ model.params["decoder.0.W"]
                                                                  + model.params["decoder.0.b"]))))


def test_encode_decode_sample_reconstruct_shapes_and_ranges():
    model = VAE(9, 2, hidden=(6,))
    x = np.random.default_rng(0).uniform(size=(4, 9))
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (4, 2)
    samples = model.sample(7, rng=np.random.default_rng(1))
    recon = model.reconstruct(x)
    assert samples.shape == (7, 9) and recon.shape == (4, 9)
    assert samples.min() >= 0 and samples.max() <= 1            # Bernoulli means
    np.testing.assert_allclose(recon, model.decode(mu))
    assert model.elbo(x, n_samples=2).shape == (4,)


def test_return_cache_exposes_the_named_intermediates():
    model = VAE(6, 2, hidden=(4,))
    x = np.random.default_rng(0).uniform(size=(3, 6))
    _, _, cache = model.loss_and_grads(x, n_samples=2, return_cache=True)
    assert cache["h"].shape == (3, 4) and cache["mu"].shape == (3, 2)
    assert cache["z"].shape == (2, 3, 2) and cache["out"].shape == (2, 3, 6)
    np.testing.assert_allclose(cache["z"], cache["mu"] + np.exp(cache["logvar"] / 2) * cache["eps"])


def test_gaussian_likelihood_learns_or_fixes_its_logvar():
    learned = VAE(3, 1, hidden=(), likelihood="gaussian")
    fixed = VAE(3, 1, hidden=(), likelihood="gaussian", obs_logvar=-1.0)
    assert learned.params["decoder.logvar"].shape == (3,)
    assert "decoder.logvar" not in fixed.params
    x = np.zeros((1, 3))
    eps = np.zeros((1, 1, 1))
    _, cache = fixed.forward(x, eps)
    expected, _ = dist.gaussian_log_density(x, cache["out"], np.full(3, -1.0))
    np.testing.assert_allclose(cache["log_px_z"], expected)


def test_beta_scales_only_the_kl_term():
    model = VAE(5, 2, hidden=(3,))
    x = np.random.default_rng(0).uniform(size=(2, 5))
    eps = np.random.default_rng(1).standard_normal((1, 2, 2))
    _, c1 = model.forward(x, eps, beta=1.0)
    e0, _ = model.forward(x, eps, beta=0.0)
    e_half, _ = model.forward(x, eps, beta=0.5)
    np.testing.assert_allclose(e0, c1["log_px_z"][0])
    np.testing.assert_allclose(e_half, c1["log_px_z"][0] - 0.5 * c1["kl_qp"])


# --- bad input: clear ValueErrors that name the problem -------------------------------

@pytest.fixture
def model():
    return VAE(4, 2, hidden=(3,))


@pytest.mark.parametrize("x, match", [
    (np.zeros((2, 5)), r"shape \(B, 4\)"),
    (np.zeros(4), r"shape \(B, 4\)"),
    (np.zeros((2, 2, 4)), r"shape \(B, 4\)"),
    (np.zeros((0, 4)), "B >= 1"),
    (np.array([[0.0, np.nan, 0.0, 0.0]]), "NaN or inf"),
    (np.array([[0.0, np.inf, 0.0, 0.0]]), "NaN or inf"),
    (np.array([[0.0, 255.0, 3.0, 0.0]]), "divide by 255"),
    (np.array([[0.0, -0.5, 0.0, 0.0]]), r"\[0, 1\]"),
])
def test_bad_x_is_a_clear_value_error(model, x, match):
    with pytest.raises(ValueError, match=match):
        model.loss_and_grads(x)


def test_eps_of_the_wrong_shape_is_a_clear_value_error(model):
    x = np.zeros((2, 4))
    with pytest.raises(ValueError, match=r"eps must be an array of shape"):
        model.loss_and_grads(x, eps=np.zeros((1, 3, 2)))
    with pytest.raises(ValueError, match=r"eps must be an array of shape"):
        model.loss_and_grads(x, eps=np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"eps must be an array of shape"):
        model.loss_and_grads(x, n_samples=3, eps=np.zeros((2, 2, 2)))


def test_eps_with_zero_samples_is_a_clear_value_error_not_a_nan_loss(model):
    x = np.zeros((2, 4))
    for call in (model.loss_and_grads, model.elbo):
        with pytest.raises(ValueError, match=r"n_samples >= 1, got an array of shape \(0, 2, 2\)"):
            call(x, eps=np.zeros((0, 2, 2)))


@pytest.mark.parametrize("kwargs, match", [
    (dict(activation="gelu"), r"activation must be one of \[.*\], got 'gelu'"),
    (dict(likelihood="poisson"), r"likelihood must be one of \['bernoulli', 'gaussian'\], got 'poisson'"),
    (dict(hidden=(0,)), "positive integer"),
    (dict(dtype=np.int32), "float32 or float64"),
])
def test_bad_constructor_arguments_are_clear_value_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        VAE(4, 2, **kwargs)


def test_unknown_estimator_and_bad_sample_count_are_clear_value_errors(model):
    x = np.zeros((2, 4))
    with pytest.raises(ValueError, match=r"estimator must be one of \['A', 'B', 'iwae'\], got 'exact'"):
        model.loss_and_grads(x, estimator="exact")
    with pytest.raises(ValueError, match="n_samples must be a positive integer"):
        model.loss_and_grads(x, n_samples=0)
    with pytest.raises(ValueError, match="beta"):
        model.loss_and_grads(x, beta=float("nan"))


def arrays_in(obj, path="cache"):
    """Every NumPy array inside nested dicts, lists and tuples, with where it was found."""
    if isinstance(obj, np.ndarray):
        yield path, obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from arrays_in(value, f"{path}[{key!r}]")
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from arrays_in(value, f"{path}[{i}]")


@pytest.mark.parametrize("likelihood, estimator", [("bernoulli", "B"), ("bernoulli", "A"),
                                            ("gaussian", "B")])
def test_a_float32_training_step_is_float32_everywhere(likelihood, estimator):
    # no silent upcast anywhere in a whole step: every array of the cache (sub-caches of every
    # layer included), every gradient, every Adam buffer and the updated parameters.  beta is
    # a NumPy float64 scalar on purpose: by NumPy's promotion rules it would turn float32
    # arrays into float64 ones if it reached them unconverted.
    from minivae.optim import Adam
    model = VAE(12, 3, hidden=(7, 5), likelihood=likelihood, dtype=np.float32)
    opt = Adam(model.params)
    x = np.random.default_rng(0).uniform(size=(6, 12)).astype(np.float32)
    loss, grads, cache = model.loss_and_grads(x, n_samples=2, estimator=estimator, beta=np.float64(0.5),
                                              return_cache=True)
    opt.step(grads)
    found = dict(arrays_in(cache))
    assert len(found) >= 20, sorted(found)               # the walk did reach the sub-caches
    found.update(arrays_in(grads, "grads"))
    found.update(arrays_in(opt.state, "adam"))
    found.update(arrays_in(model.params, "params"))
    wrong = {where: a.dtype for where, a in found.items() if a.dtype != np.float32}
    assert not wrong, f"upcast (or other dtype) in a float32 step: {wrong}"


def test_check_false_skips_only_the_value_scan():
    model = VAE(4, 2, hidden=(3,))
    bad_values = np.array([[0.0, 2.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.loss_and_grads(bad_values)
    model.loss_and_grads(bad_values, check=False)        # the caller vouches for the values
    with pytest.raises(ValueError, match=r"shape \(B, 4\)"):
        model.loss_and_grads(np.zeros((2, 5)), check=False)
    x = np.random.default_rng(0).uniform(size=(3, 4))
    eps = np.random.default_rng(1).standard_normal((2, 3, 2))
    checked = model.loss_and_grads(x, eps=eps)
    unchecked = model.loss_and_grads(x, eps=eps, check=False)
    assert checked[0] == unchecked[0]
    assert all(np.array_equal(checked[1][k], unchecked[1][k]) for k in checked[1])


def test_init_std_draws_every_weight_and_bias_from_a_small_normal_and_leaves_the_default_alone():
    small = VAE(784, 20, hidden=(500,), activation="tanh", init_std=0.01, seed=0)
    everything = np.concatenate([p.ravel() for p in small.params.values()])
    assert abs(everything.std() - 0.01) < 1e-4 and abs(everything.mean()) < 1e-4
    assert all(small.params[k].any() for k in small.params if k.endswith(".b"))
    default, again = VAE(6, 2, hidden=(4,), seed=3), VAE(6, 2, hidden=(4,), seed=3, init_std=None)
    assert all(np.array_equal(default.params[k], again.params[k]) for k in default.params)
    assert all(not default.params[k].any() for k in default.params if k.endswith(".b"))
    with pytest.raises(ValueError, match="init_std"):
        VAE(6, 2, init_std=0.0)
