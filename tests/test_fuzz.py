"""Fuzzing the public API with hypothesis: random shapes, dtypes and values.

The contract checked everywhere: a call either raises a documented exception (a
ValueError or a TypeError, which CheckpointError is a kind of) with a message, raised by
minivae's own code rather than from deep inside NumPy or zipfile; or it returns finite
arrays of the documented shape and dtype.

"Extreme" means up to the edge of what the float types can hold for the quantity at
hand: logvar up to +-30 (exp(30) ~ 1e13, whose square is still finite in float32),
logits up to +-1e4, means up to +-1e3, data up to +-10 for a Gaussian model.  Beyond
that exp() and squares overflow and the true values are not representable: the results
are inf, and the training loop reports them as TrainingDiverged (test_train_on_random_...).

The fuzzing first found five holes (non-finite z to decode, n = -1 or 2.5 to sample, a
seed where a Generator belongs, fractional hidden sizes, NaN gradients to an optimiser);
the tests named after them keep them closed.
"""
import contextlib
import os
import re
import traceback
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minivae
from minivae import optim
from minivae.runs import checkpoint
from minivae.data import datasets, idx, preprocessing
from minivae import distributions as dist
from minivae.training import TrainingDiverged, train
from minivae.vae import VAE

PACKAGE = os.path.dirname(os.path.abspath(minivae.__file__))
ACTIVATIONS = ["relu", "tanh", "softplus", "sigmoid", "identity"]
FLOATS = [np.float32, np.float64]
# what a student may pass as data: mostly floats, but every other kind too
DTYPES = [np.float64, np.float64, np.float32, np.float32, np.float16, np.int8, np.uint8,
          np.int64, np.bool_, np.complex128, object, str]
SPECIAL = [0.0, 1.0, 0.5, -1.0, 10.0, np.nan, np.inf, -np.inf]
seeds = st.integers(0, 2**32 - 1)
# tmp_path_factory is shared by all examples of a test; each example overwrites its files
shared_tmp = settings(suppress_health_check=[HealthCheck.function_scoped_fixture,
                                             HealthCheck.too_slow])


def assert_clear_error(error):
    """A documented exception type, with a message, raised in minivae's own code."""
    assert isinstance(error, (ValueError, TypeError)), f"{type(error).__name__}: {error}"
    assert str(error).strip(), f"{type(error).__name__} without a message"
    innermost = os.path.abspath(traceback.extract_tb(error.__traceback__)[-1].filename)
    assert innermost.startswith(PACKAGE), f"raised inside {innermost}, not minivae: {error!r}"


def attempt(call):
    """call()'s result, or None once the exception it raised has passed assert_clear_error."""
    try:
        with np.errstate(all="ignore"):
            return call()
    except Exception as error:              # noqa: BLE001 -- judged by assert_clear_error
        assert_clear_error(error)
        return None


def assert_finite(array, shape, dtype, finite=True):
    assert isinstance(array, np.ndarray), type(array)
    assert array.shape == shape, f"shape {array.shape}, expected {shape}"
    assert array.dtype == dtype, f"dtype {array.dtype}, expected {dtype}"
    if finite:
        assert np.isfinite(array).all(), f"non-finite values: {array}"


def largest_magnitude(x):
    """max |x| over the real numbers in x (0 for other dtypes: the data checks reject those)."""
    x = np.asarray(x)
    if x.dtype.kind not in "biuf" or x.size == 0:
        return 0.0
    with np.errstate(all="ignore"):
        return float(np.nanmax(np.abs(x.astype(np.float64))))


def cast(x, dtype):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")            # NaN to int, complex parts
        return x.astype(dtype)


@st.composite
def models(draw, dtypes=FLOATS):
    likelihood = draw(st.sampled_from(["bernoulli", "gaussian"]))
    obs_logvar = draw(st.sampled_from(["learned", -3.0, 0.0, 2.0])) if likelihood == "gaussian" \
        else "learned"
    return VAE(draw(st.integers(1, 5)), draw(st.integers(1, 3)),
               hidden=tuple(draw(st.lists(st.integers(1, 4), max_size=2))),
               likelihood=likelihood, activation=draw(st.sampled_from(ACTIVATIONS)),
               dtype=draw(st.sampled_from(dtypes)), seed=draw(seeds), obs_logvar=obs_logvar)


@st.composite
def data_like(draw, width):
    """Arrays passed as x: usually (B, width) but any shape, any dtype, any values."""
    if draw(st.integers(0, 3)) > 0:
        shape = (draw(st.integers(0, 4)), width)
    else:
        shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
    kind = draw(st.sampled_from(["grey", "binary", "constant", "any"]))
    if kind == "constant":                           # zero-variance data
        x = np.full(shape, draw(st.sampled_from(SPECIAL)))
    else:
        elements = {"grey": st.floats(0, 1), "binary": st.sampled_from([0.0, 1.0]),
                    "any": st.one_of(st.floats(-10, 10), st.sampled_from(SPECIAL + [255.0]))}[kind]
        x = draw(hnp.arrays(np.float64, shape, elements=elements))
    return cast(x, draw(st.sampled_from(DTYPES)))


# --- the VAE ----------------------------------------------------------------------------

@given(model=models(), data=st.data())
def test_vae_methods_on_random_arrays_raise_clear_errors_or_return_finite_results(model, data):
    x = data.draw(data_like(model.x_dim))
    method = data.draw(st.sampled_from(["loss_and_grads", "elbo", "encode", "reconstruct"]))
    estimator, L = data.draw(st.sampled_from(["B", "A"])), data.draw(st.integers(1, 3))
    rng = np.random.default_rng(0)
    result = attempt({
        "loss_and_grads": lambda: model.loss_and_grads(x, n_samples=L, estimator=estimator, rng=rng),
        "elbo": lambda: model.elbo(x, n_samples=L, estimator=estimator, rng=rng),
        "encode": lambda: model.encode(x),
        "reconstruct": lambda: model.reconstruct(x)}[method])
    event("clear error" if result is None else "finite result")    # --hypothesis-show-statistics
    if result is None:
        return
    # a Gaussian model's results are promised finite for data within +-10 (module docstring);
    # NaN or inf cast to int64 gives -9.2e18, whose square overflows: then only the shapes
    # and dtypes are checked (test_train_on_random_settings_... covers what training does)
    finite = model.likelihood == "bernoulli" or largest_magnitude(x) <= 10
    B, D, P = len(x), model.z_dim, model.x_dim
    if method == "loss_and_grads":
        loss, grads = result
        assert isinstance(loss, float) and (np.isfinite(loss) or not finite)
        assert grads.keys() == model.params.keys()
        for k, g in grads.items():
            assert_finite(g, model.params[k].shape, model.dtype, finite)
    elif method == "elbo":
        assert_finite(result, (B,), model.dtype, finite)
    elif method == "encode":
        for part in result:
            assert_finite(part, (B, D), model.dtype, finite)
    else:
        assert_finite(result, (B, P), model.dtype, finite)


@given(P=st.integers(1, 5), D=st.integers(1, 3), dtype=st.sampled_from(FLOATS),
       likelihood=st.sampled_from(["bernoulli", "gaussian"]), estimator=st.sampled_from(["B", "A"]),
       L=st.integers(1, 3), data=st.data())
def test_extreme_logits_huge_logvar_and_zero_variance_data_give_finite_loss_and_gradients(
        P, D, dtype, likelihood, estimator, L, data):
    model = VAE(P, D, hidden=(), likelihood=likelihood, dtype=dtype, seed=0)
    def biases(n, bound):
        return data.draw(hnp.arrays(np.float64, n, elements=st.floats(-bound, bound)))

    # an affine encoder's bias is (mu, logvar) for x = 0; its decoder's is the logits or mean
    model.params["encoder.0.b"][:] = np.concatenate([biases(D, 1e3), biases(D, 30.0)])
    model.params["decoder.0.b"][:] = biases(P, 1e4 if likelihood == "bernoulli" else 1e3)
    if likelihood == "gaussian":
        model.params["decoder.logvar"][:] = biases(P, 20.0)
    B = data.draw(st.integers(1, 4))
    if data.draw(st.booleans()):                      # zero variance: every example the same
        x = np.full((B, P), data.draw(st.sampled_from([0.0, 0.5, 1.0])))
    else:
        x = data.draw(hnp.arrays(np.float64, (B, P), elements=st.sampled_from([0.0, 1.0])))
    with np.errstate(all="ignore"):
        loss, grads = model.loss_and_grads(x, n_samples=L, estimator=estimator, rng=np.random.default_rng(0))
    assert np.isfinite(loss)
    for k, g in grads.items():
        assert_finite(g, model.params[k].shape, dtype)


@given(model=models(), data=st.data())
def test_decode_and_sample_give_finite_arrays_of_the_model_dtype(model, data):
    N = data.draw(st.integers(0, 4))
    z = data.draw(hnp.arrays(np.float64, (N, model.z_dim), elements=st.floats(-1e3, 1e3)))
    with np.errstate(all="ignore"):
        means = model.decode(z)
        samples = model.sample(data.draw(st.integers(1, 4)), rng=np.random.default_rng(0))
    assert_finite(means, (N, model.x_dim), model.dtype)
    assert_finite(samples, samples.shape, model.dtype)
    if model.likelihood == "bernoulli":
        assert ((means >= 0) & (means <= 1)).all() and ((samples >= 0) & (samples <= 1)).all()


sizes = st.one_of(st.integers(-2, 4), st.sampled_from([2.0, 2.5, None, "3", "a"]))


@given(x_dim=sizes, z_dim=sizes, hidden=st.lists(st.integers(-1, 4), max_size=2),
       likelihood=st.sampled_from(["bernoulli", "gaussian", "poisson"]),
       activation=st.sampled_from(ACTIVATIONS + ["gelu", None]),
       dtype=st.sampled_from([np.float32, np.float64, "float64", np.float16, np.int32, "garbage"]),
       obs_logvar=st.sampled_from(["learned", 0.0, -2.0, np.nan, np.inf, "abc"]), seed=seeds)
def test_vae_constructor_raises_clear_errors_or_builds_a_consistent_model(
        x_dim, z_dim, hidden, likelihood, activation, dtype, obs_logvar, seed):
    model = attempt(lambda: VAE(x_dim, z_dim, hidden=hidden, likelihood=likelihood,
                                activation=activation, dtype=dtype, seed=seed, obs_logvar=obs_logvar))
    if model is None:
        return
    assert (model.x_dim, model.z_dim, model.hidden) == (x_dim, z_dim, tuple(hidden))
    sizes_in = [model.x_dim, *model.hidden, 2 * model.z_dim]
    for k in range(model.n_layers):
        assert_finite(model.params[f"encoder.{k}.W"], (sizes_in[k], sizes_in[k + 1]), model.dtype)
    assert model.params[f"decoder.{model.n_layers - 1}.W"].shape[1] == model.x_dim
    assert VAE(**model.config()).config() == model.config()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, None])
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_decode_rejects_non_finite_z(bad, likelihood):
    model = VAE(4, 2, hidden=(3,), likelihood=likelihood)
    z = np.array([[0.5, -1.0], [bad, 0.0]], dtype=object if bad is None else np.float64)
    # None makes an object array: not numbers at all (TypeError), rather than non-finite ones
    error, message = (TypeError, "real numbers") if bad is None else (ValueError, "NaN or inf")
    with np.errstate(all="ignore"), pytest.raises(error, match=message):
        model.decode(z)


@pytest.mark.parametrize("n", [-1, 2.5, "3"])
def test_sample_rejects_a_count_that_is_not_a_whole_number(n):
    model = VAE(4, 2, hidden=(3,))
    with pytest.raises((ValueError, TypeError), match="n must be") as info:
        model.sample(n, rng=np.random.default_rng(0))
    assert_clear_error(info.value)


@pytest.mark.parametrize("method", ["sample", "loss_and_grads", "elbo"])
def test_an_rng_that_is_not_a_generator_is_a_type_error(method):
    model = VAE(4, 2, hidden=(3,))
    x = np.full((2, 4), 0.5)
    call = {"sample": lambda: model.sample(2, rng=5),
            "loss_and_grads": lambda: model.loss_and_grads(x, rng=5),
            "elbo": lambda: model.elbo(x, rng=5)}[method]
    with pytest.raises(TypeError, match="Generator"):
        call()


@pytest.mark.parametrize("kwargs", [dict(hidden=(2.5,)), dict(seed=-1)])
def test_constructor_rejects_fractional_hidden_sizes_and_negative_seeds_itself(kwargs):
    with pytest.raises(ValueError) as info:
        VAE(4, 2, **kwargs)
    assert_clear_error(info.value)


# --- distributions ----------------------------------------------------------------------

@given(L=st.integers(1, 3), B=st.integers(1, 4), D=st.integers(1, 3),
       dtype=st.sampled_from(FLOATS), data=st.data())
def test_distributions_and_their_gradients_stay_finite_at_extreme_values(L, B, D, dtype, data):
    def draw(shape, bound):
        return data.draw(hnp.arrays(dtype, shape, elements=st.floats(-bound, bound, width=32)))

    mu, logvar, eps = draw((B, D), 1e3), draw((B, D), 30.0), draw((L, B, D), 10.0)
    x = data.draw(hnp.arrays(dtype, (B, D), elements=st.sampled_from([0.0, 0.5, 1.0])))
    logits, obs_logvar = draw((L, B, D), 1e4), draw((D,), 20.0)
    up = np.ones((L, B), dtype)                        # an upstream gradient

    z, cache = dist.gaussian_sample(mu, logvar, eps)
    assert_finite(z, (L, B, D), dtype)
    for g in dist.gaussian_sample_backward(np.ones_like(z), cache):
        assert_finite(g, (B, D), dtype)
    # q(z|x) at its own samples, and a Gaussian likelihood with a far-away mean
    for value, mean, lv in [(z, mu, logvar), (x, draw((L, B, D), 1e3), obs_logvar)]:
        log_n, cache = dist.gaussian_log_density(value, mean, lv)
        assert_finite(log_n, (L, B), dtype)
        for g, like in zip(dist.gaussian_log_density_backward(up, cache), (value, mean, lv)):
            assert_finite(g, like.shape, dtype)
    log_p, cache = dist.standard_normal_log_density(z)
    assert_finite(log_p, (L, B), dtype)
    assert_finite(dist.standard_normal_log_density_backward(up, cache), (L, B, D), dtype)
    kl, cache = dist.kl_standard_normal(mu, logvar)
    assert_finite(kl, (B,), dtype)
    assert (kl >= 0).all()
    for g in dist.kl_standard_normal_backward(np.ones(B, dtype), cache):
        assert_finite(g, (B, D), dtype)
    log_b, cache = dist.bernoulli_log_likelihood(x, logits)
    assert_finite(log_b, (L, B), dtype)
    assert (log_b <= 0).all()
    assert_finite(dist.bernoulli_log_likelihood_backward(up, cache), (L, B, D), dtype)
    assert_finite(dist.bernoulli_mean(logits), (L, B, D), dtype)


# --- optimisers -------------------------------------------------------------------------

@st.composite
def params_and_grads(draw, grad_elements):
    dtype = draw(st.sampled_from(FLOATS))
    shapes = draw(st.lists(hnp.array_shapes(min_dims=0, max_dims=2, max_side=3), min_size=1,
                           max_size=3))
    params = {f"p{i}": draw(hnp.arrays(dtype, s, elements=st.floats(-1e3, 1e3, width=32)))
              for i, s in enumerate(shapes)}
    grads = {k: draw(hnp.arrays(dtype, p.shape, elements=grad_elements)) for k, p in params.items()}
    return params, grads


HUGE = float(np.float32(1e15))      # squares to 1e30, finite in float32


@given(pg=params_and_grads(st.floats(-HUGE, HUGE, width=32)), name=st.sampled_from(sorted(optim.OPTIMIZERS)),
       lr=st.floats(1e-6, 1.0), steps=st.integers(1, 3))
def test_optimizer_steps_on_huge_finite_gradients_stay_finite_in_place_and_in_dtype(pg, name, lr, steps):
    params, grads = pg
    arrays = dict(params)
    opt = optim.make_optimizer(name, params, lr=lr)
    with np.errstate(all="ignore"):
        for _ in range(steps):
            opt.step(grads)
    for k, p in params.items():
        assert p is arrays[k]                         # updated in place, never rebound
        assert_finite(p, arrays[k].shape, grads[k].dtype)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
def test_optimizer_rejects_non_finite_gradients_and_changes_nothing(name, bad):
    params = {"W": np.ones((2, 3)), "b": np.zeros(3, dtype=np.float64)}
    grads = {"W": np.full((2, 3), 0.5), "b": np.array([0.1, bad, 0.1])}
    before = {k: p.copy() for k, p in params.items()}
    opt = optim.make_optimizer(name, params, lr=0.1)
    with np.errstate(all="ignore"), pytest.raises(ValueError, match="NaN or inf"):
        opt.step(grads)
    assert all(np.array_equal(params[k], before[k]) for k in params)


# --- datasets ---------------------------------------------------------------------------

@st.composite
def idx_like_bytes(draw):
    """Random bytes; or an IDX header with random sizes and a body of random length; maybe gzipped."""
    import gzip

    if draw(st.booleans()):
        raw = draw(st.binary(max_size=64))
    else:
        ndim = draw(st.integers(0, 3))
        sizes = draw(st.lists(st.integers(0, 5), min_size=ndim, max_size=ndim))
        header = bytes([0, 0, draw(st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x07])), ndim])
        raw = header + b"".join(s.to_bytes(4, "big") for s in sizes) + draw(st.binary(max_size=80))
    if draw(st.booleans()):
        raw = gzip.compress(raw)
        raw = raw[:draw(st.integers(0, len(raw)))]   # possibly cut short
    return raw


@shared_tmp
@given(raw=idx_like_bytes())
def test_read_idx_on_random_bytes_raises_a_value_error_or_returns_exactly_the_data(raw, tmp_path_factory):
    path = tmp_path_factory.getbasetemp() / "fuzz.idx"
    path.write_bytes(raw)
    array = attempt(lambda: idx.read_idx(path))
    event("clear error" if array is None else "read")
    if array is not None:
        # only a file whose data part has exactly the length its header promises is read
        import gzip
        plain = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
        ndim = plain[3]
        assert array.shape == tuple(int.from_bytes(plain[4 + 4 * k:8 + 4 * k], "big")
                                    for k in range(ndim))
        assert array.nbytes == len(plain) - 4 - 4 * ndim


@given(x=data_like(3), rng=st.sampled_from([np.random.default_rng(0), 0, None, "seed"]))
def test_binarize_raises_clear_errors_or_gives_zeros_and_ones_of_the_same_shape(x, rng):
    out = attempt(lambda: preprocessing.bernoulli_binarize(x, rng))
    if out is not None:
        assert_finite(out, x.shape, np.float32)
        assert set(np.unique(out)) <= {0.0, 1.0}
        assert (out[x == 0] == 0).all() and (out[x == 1] == 1).all()
    out = attempt(lambda: preprocessing.threshold_binarize(x, 0.5))
    if out is not None:
        assert np.array_equal(out, (x > 0.5).astype(np.float32))


@given(test_size=st.one_of(st.integers(-5, 0), st.integers(10_000, 20_000),
                           st.sampled_from([5.5, True, None, "100"])),
       seed=st.one_of(st.integers(0, 5), st.integers(-5, -1), st.sampled_from([1.5, None, "a"])))
def test_load_mnist_rejects_bad_test_sizes_and_seeds_before_loading(test_size, seed):
    # every test_size drawn is invalid, so nothing is ever loaded (fast), whatever the seed
    assert attempt(lambda: datasets.load_mnist(test_size=test_size, seed=seed)) is None
    if isinstance(seed, int) and seed < 0:
        with pytest.raises((TypeError, ValueError), match="seed|test_size"):
            datasets.load_mnist(test_size=100 if test_size is None else test_size, seed=seed)


# --- checkpoints ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory):
    model = VAE(3, 2, hidden=(2,), seed=1)
    path = tmp_path_factory.mktemp("fuzz_ckpt") / "good.npz"
    checkpoint.save(path, model)
    return model, path.read_bytes()


@shared_tmp
@given(damage=st.sampled_from(["random", "cut", "flip", "splice"]), data=st.data())
def test_checkpoint_load_on_random_or_damaged_bytes_is_a_checkpoint_error_or_the_saved_model(
        good_checkpoint, tmp_path_factory, damage, data):
    model, good = good_checkpoint
    raw = bytearray(good)
    if damage == "random":
        raw = bytearray(data.draw(st.binary(max_size=300)))
        if data.draw(st.booleans()):
            raw[:4] = b"PK\x03\x04"                       # looks like a zip
    elif damage == "cut":
        raw = raw[:data.draw(st.integers(0, len(raw) - 1))]
    elif damage == "flip":
        for _ in range(data.draw(st.integers(1, 4))):
            raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
    else:                                                 # a block of random bytes pasted in
        at = data.draw(st.integers(0, len(raw) - 1))
        block = data.draw(st.binary(min_size=1, max_size=40))
        raw[at:at + len(block)] = block
    path = tmp_path_factory.getbasetemp() / "fuzz.npz"
    path.write_bytes(bytes(raw))
    try:
        loaded = checkpoint.load(path)
    except checkpoint.CheckpointError as error:
        assert_clear_error(error)
        assert str(path) in str(error)
        return
    for k, v in model.params.items():                     # CRC-32 protects the arrays
        assert np.array_equal(loaded["model"].params[k], v)


# --- training ---------------------------------------------------------------------------

@shared_tmp
@given(likelihood=st.sampled_from(["bernoulli", "gaussian"]), dtype=st.sampled_from(FLOATS),
       optimizer=st.sampled_from(sorted(optim.OPTIMIZERS)), log_lr=st.floats(-4, 6),
       data_kind=st.sampled_from(["grey", "binary", "constant"]), estimator=st.sampled_from(["B", "A"]),
       seed=st.integers(0, 100))
def test_train_on_random_settings_finishes_finite_or_stops_with_the_last_good_state(
        tmp_path_factory, likelihood, dtype, optimizer, log_lr, data_kind, estimator, seed):
    rng = np.random.default_rng(seed)
    x = {"grey": rng.uniform(size=(16, 5)), "binary": rng.integers(0, 2, (16, 5)) * 1.0,
         "constant": np.full((16, 5), 0.5)}[data_kind]      # constant: zero-variance data
    model = VAE(5, 2, hidden=(4,), likelihood=likelihood, dtype=dtype, seed=seed)
    path = tmp_path_factory.getbasetemp() / "fuzz_train.npz"
    if path.exists():
        path.unlink()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            history = train(model, x, epochs=3, batch_size=4, optimizer=optimizer, lr=10 ** log_lr,
                            estimator=estimator, seed=seed, checkpoint_path=path, verbose=False)
    except TrainingDiverged as error:
        assert f"step {error.step}" in str(error)
        if error.checkpoint_path is not None:             # the last good state, finite
            saved = checkpoint.load(error.checkpoint_path)["model"]
            assert all(np.isfinite(p).all() for p in saved.params.values())
        return
    assert np.isfinite(history["train_elbo"]).all()
    for k, p in model.params.items():
        assert_finite(p, p.shape, dtype)
    assert all(np.array_equal(checkpoint.load(path)["model"].params[k], p)
               for k, p in model.params.items())


# --- entry points: no raw NumPy error, no silent non-finite result (issue 27) ----------

from minivae import evaluate, gradcheck                     # noqa: E402 (grouped with its tests)
from minivae.utils import memory, progress                  # noqa: E402

nested = st.recursive(st.floats(-2, 2) | st.sampled_from([0.0, 1.0, np.nan]),
                      lambda inner: st.lists(inner, max_size=3), max_leaves=12)


@given(x=nested, eps=nested, entry=st.sampled_from(
    ["loss_and_grads", "elbo", "encode", "decode", "forward", "evaluate_elbo", "log_likelihood",
     "log_weights", "check_vae"]))
@settings(max_examples=300, deadline=None)
def test_nested_lists_ragged_or_not_at_every_entry_point_give_a_clear_error_or_a_finite_result(
        x, eps, entry):
    model = VAE(3, 2, hidden=(2,))
    result = attempt({
        "loss_and_grads": lambda: model.loss_and_grads(x, eps=eps)[0],
        "elbo": lambda: model.elbo(x, eps=eps),
        "encode": lambda: model.encode(x)[0],
        "decode": lambda: model.decode(x),
        "forward": lambda: model.forward(x, eps)[0],
        "evaluate_elbo": lambda: evaluate.evaluate_elbo(model, x),
        "log_likelihood": lambda: evaluate.log_likelihood(model, x, k=2),
        "log_weights": lambda: evaluate.log_weights(model, x, eps),
        "check_vae": lambda: gradcheck.check_vae(model, x)}[entry])
    if result is not None and entry != "forward":        # forward checks shapes, not values
        assert np.isfinite(result).all()


@given(shape=st.lists(st.integers(0, 4), max_size=4), estimator=st.sampled_from(["B", "A", "iwae"]))
def test_forward_with_noise_of_any_shape_is_a_clear_error_or_the_elbo_of_each_example(shape, estimator):
    model = VAE(3, 2, hidden=(2,))
    x = np.ones((2, 3))
    result = attempt(lambda: model.forward(x, np.zeros(shape), estimator)[0])
    assert (result is None) == (len(shape) != 3 or shape[0] == 0 or tuple(shape[1:]) != (2, 2))


@pytest.mark.parametrize("x", [None, np.zeros((0, 3)), [], "data", np.zeros(3)])
def test_evaluate_elbo_on_nothing_is_a_clear_error_before_any_batch(x):
    with pytest.raises((ValueError, TypeError), match=r"^x must be"):
        evaluate.evaluate_elbo(VAE(3, 2, hidden=(2,)), x)


def test_a_model_too_large_for_memory_is_refused_before_any_allocation(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: 2**20)       # pretend: 1 MiB free
    with pytest.raises(ValueError, match=r"a VAE with x_dim=784, z_dim=20, hidden=\(20000,\) would "
                                         r"need about [\d.]+ GB of memory, but only 1.0 MB"):
        VAE(784, 20, hidden=(20000,))
    model = VAE(784, 20, hidden=(100,))                 # small requests are not even compared
    with pytest.raises(ValueError, match=r"^sample\(1000000000\) would need about [\d,.]+ GB"):
        model.sample(10**9)
    with pytest.raises(ValueError, match=r"^n_samples=100000000 draws for 2 examples would need"):
        model.loss_and_grads(np.zeros((2, 784)), n_samples=10**8)
    with pytest.raises(ValueError, match=r"^chunks of 1000000000 samples for batches of 2 examples would need"):
        evaluate.log_likelihood(model, np.zeros((2, 784)), k=10**9, chunk=10**9)
    assert model.sample(3).shape == (3, 784)


@pytest.mark.parametrize("stream", [5, "log.txt", object(), [1]])
def test_a_progress_stream_that_is_not_a_stream_is_a_type_error_at_once(stream):
    with pytest.raises(TypeError, match=r"^stream must be None or a text stream"):
        progress.Progress(stream)
    with pytest.raises(TypeError, match=r"^progress must be None or a text stream"):
        evaluate.log_likelihood(VAE(3, 2, hidden=(2,)), np.ones((1, 3)), k=1, progress=stream)


@pytest.mark.parametrize("where", ["x", "eps"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_nan_or_inf_in_the_data_or_the_noise_is_named_not_propagated(where, bad):
    model = VAE(3, 2, hidden=(2,))
    x, eps = np.full((2, 3), 0.5), np.zeros((1, 2, 2))
    index = (1, 2) if where == "x" else (0, 1, 1)
    (x if where == "x" else eps)[index] = bad
    for call in (lambda: model.loss_and_grads(x, eps=eps), lambda: model.elbo(x, eps=eps),
                 lambda: evaluate.log_weights(model, x, eps)):
        with pytest.raises(ValueError, match=rf"^{where} must be finite \(no NaN or inf\), got "
                                             rf"{bad!r} at index {re.escape(str(index))}"):
            call()


def test_an_init_std_whose_products_overflow_is_refused_and_one_that_overflows_later_is_named():
    with pytest.raises(ValueError, match=r"init_std must be a finite number > 0 and <= 1.8\d+e\+19"):
        VAE(3, 2, init_std=1e20, dtype=np.float32)
    model = VAE(3, 2, hidden=(4,), init_std=1e100)      # x W W overflows float64 to inf
    message = r"^the ELBO estimate must be a number, got nan for example \d \(x and eps are finite\): "
    for estimator in ("B", "A", "iwae"):
        with np.errstate(all="ignore"), pytest.raises(ValueError, match=message):   # NumPy's own
            model.elbo(np.full((2, 3), 0.5), estimator=estimator)                   # warnings off
        with np.errstate(all="ignore"), pytest.warns(RuntimeWarning, match=message):
            model.loss_and_grads(np.full((2, 3), 0.5), estimator=estimator)   # the grader compares NaNs


def float32_model_with_logvar(value):
    """A float32 model whose encoder outputs logvar = value and mu = 1 for every input."""
    model = VAE(4, 2, hidden=(3,), dtype=np.float32)
    model.params["encoder.1.W"][:] = 0
    model.params["encoder.1.b"][:] = [1.0, 1.0, value, value]
    return model


@pytest.mark.parametrize("estimator", ["A", "iwae"])
def test_a_float32_log_variance_of_minus_100_is_named_not_a_silent_nan(estimator):
    # exp(-logvar) = exp(100) overflows float32 (max ~ exp(88.7)) in log q(z|x)
    model, x = float32_model_with_logvar(-100.0), np.ones((2, 4))
    message = r"log-variance reaches -100, beyond \+-88.7 where exp\(logvar\) or exp\(-logvar\) overflows float32"
    # NumPy warns first, at the line that overflows (exp(-logvar)), and at the NaNs that follow;
    # minivae's error (or, from loss_and_grads, its warning) then names why
    for call, error in ((lambda: model.elbo(x, estimator=estimator, n_samples=2), ValueError),
                        (lambda: model.loss_and_grads(x, estimator=estimator, n_samples=2), None),
                        (lambda: evaluate.log_likelihood(model, x, k=3), ValueError)):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            with pytest.raises(error, match=message) if error else contextlib.nullcontext():
                call()
        said = [str(w.message) for w in seen if w.category is RuntimeWarning]
        assert said[0] == "overflow encountered in exp", said
        assert error or any(re.search(message, w) for w in said), said
    # estimator B never forms exp(-logvar): its loss stays finite and so do its gradients
    loss, grads = model.loss_and_grads(x, estimator="B")
    assert np.isfinite(loss) and all(np.isfinite(g).all() for g in grads.values())


@pytest.mark.parametrize("entry", ["evaluate_elbo", "log_likelihood", "log_weights", "check_vae",
                                   "score_function", "wake_sleep_step", "local_elbo"])
@pytest.mark.parametrize("model", ["vae", None, {"params": {}}])
def test_a_model_that_is_not_a_vae_is_a_type_error_naming_it(entry, model):
    from minivae.topics import diagnostics, gradient_estimators, wake_sleep
    x, eps = np.ones((2, 3)), np.zeros((1, 2, 2))
    call = {"evaluate_elbo": lambda: evaluate.evaluate_elbo(model, x),
            "log_likelihood": lambda: evaluate.log_likelihood(model, x, k=2),
            "log_weights": lambda: evaluate.log_weights(model, x, eps),
            "check_vae": lambda: gradcheck.check_vae(model, x),
            "score_function": lambda: gradient_estimators.score_function_gradients(model, x, eps),
            "wake_sleep_step": lambda: wake_sleep.wake_sleep_step(model, None, x, np.random.default_rng(0)),
            "local_elbo": lambda: diagnostics.local_elbo(model, x, eps[0], eps[0], eps)}[entry]
    name = type(model).__name__
    with pytest.raises(TypeError, match=rf"^model must be (a minivae.VAE|an object with .* \(a minivae.VAE\)), "
                                        rf"got ({name}|'{name}' lacking .*)$"):
        call()


@pytest.mark.parametrize("call, error, message", [
    (lambda: preprocessing.to_unit_interval([[1, 2], [3]]), ValueError, r"^x_uint8 must be an array of real"),
    (lambda: preprocessing.threshold_binarize([[0.1, 0.2], [0.3]]), ValueError, r"^x must be an array of real"),
    (lambda: datasets.load_mnist(3), TypeError, r"^root must be a path \(a str or os.PathLike\), got 3"),
    (lambda: idx.read_idx(None), TypeError, r"^path must be a path"),
    (lambda: evaluate.iwae_bound(VAE(3, 2), np.ones((1, 3)), 2, return_se="yes"), TypeError,
     r"^return_se must be True or False, got 'yes'"),
])
def test_data_and_evaluation_entry_points_name_a_bad_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()
