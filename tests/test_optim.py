"""Tests of minivae.optim: hand-computed steps, convergence, in-place float32 updates, exact resume."""
import math
import re
import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minivae import optim
from minivae.utils import blocks

# (name, settings) covering every optimiser and both momentum formulations
CONFIGS = [("sgd", {}), ("momentum", {}), ("momentum", {"nesterov": True}),
           ("adagrad", {}), ("adam", {})]
CONFIG_IDS = ["sgd", "momentum", "nesterov", "adagrad", "adam"]


def run(opt, params, grads_list):
    for g in grads_list:
        opt.step(g)
    return params


# ---------------------------------------------------------------- hand-computed steps

def test_sgd_two_steps_match_hand_computation():
    # p0 = [1, -2], lr = 0.1, g1 = [0.5, 1], g2 = [-1, 3]
    # p1 = [1 - 0.05, -2 - 0.1]     = [0.95, -2.1]
    # p2 = [0.95 + 0.1, -2.1 - 0.3] = [1.05, -2.4]
    p = {"w": np.array([1.0, -2.0])}
    opt = optim.SGD(p, lr=0.1)
    run(opt, p, [{"w": np.array([0.5, 1.0])}, {"w": np.array([-1.0, 3.0])}])
    np.testing.assert_allclose(p["w"], [1.05, -2.4], rtol=1e-14,
                               err_msg="SGD: p <- p - lr g")


def test_momentum_two_steps_match_hand_computation():
    # p0 = [1, 0], lr = 0.1, mu = 0.9, g = [1, -2] at both steps
    # v1 = -0.1 g = [-0.1, 0.2];               p1 = p0 + v1 = [0.9, 0.2]
    # v2 = 0.9 v1 - 0.1 g = [-0.19, 0.38];     p2 = p1 + v2 = [0.71, 0.58]
    p = {"w": np.array([1.0, 0.0])}
    opt = optim.Momentum(p, lr=0.1, momentum=0.9)
    run(opt, p, [{"w": np.array([1.0, -2.0])}] * 2)
    np.testing.assert_allclose(p["w"], [0.71, 0.58], rtol=1e-14,
                               err_msg="heavy ball: v <- mu v - lr g; p <- p + v")


def test_nesterov_momentum_two_steps_match_hand_computation():
    # same numbers; p <- p + mu v - lr g with the new v
    # v1 = [-0.1, 0.2];    p1 = [1 - 0.09 - 0.1, 0 + 0.18 + 0.2]      = [0.81, 0.38]
    # v2 = [-0.19, 0.38];  p2 = [0.81 - 0.171 - 0.1, 0.38 + 0.342 + 0.2] = [0.539, 0.922]
    p = {"w": np.array([1.0, 0.0])}
    opt = optim.Momentum(p, lr=0.1, momentum=0.9, nesterov=True)
    run(opt, p, [{"w": np.array([1.0, -2.0])}] * 2)
    np.testing.assert_allclose(p["w"], [0.539, 0.922], rtol=1e-14,
                               err_msg="Nesterov: v <- mu v - lr g; p <- p + mu v - lr g")


def test_adagrad_two_steps_match_hand_computation():
    # p0 = [1, -1], lr = 0.1, eps = 0, g1 = [2, -3], g2 = [1, 4]
    # h1 = [4, 9];   p1 = [1 - 0.1 * 2/2, -1 + 0.1 * 3/3]        = [0.9, -0.9]
    # h2 = [5, 25];  p2 = [0.9 - 0.1/sqrt(5), -0.9 - 0.1 * 4/5]  = [0.855279.., -0.98]
    p = {"w": np.array([1.0, -1.0])}
    opt = optim.Adagrad(p, lr=0.1, eps=0.0)
    run(opt, p, [{"w": np.array([2.0, -3.0])}, {"w": np.array([1.0, 4.0])}])
    np.testing.assert_allclose(p["w"], [0.9 - 0.1 / np.sqrt(5), -0.98], rtol=1e-14,
                               err_msg="Adagrad: h <- h + g^2; p <- p - lr g / (sqrt(h) + eps)")


def test_adagrad_adds_eps_outside_the_square_root():
    # p0 = 1, lr = 0.1, eps = 1, g = 3:  h = 9,  p1 = 1 - 0.1 * 3 / (sqrt(9) + 1) = 0.925
    # (sqrt(h + eps) would give 1 - 0.3 / sqrt(10) = 0.905..)
    p = {"w": np.array([1.0])}
    optim.Adagrad(p, lr=0.1, eps=1.0).step({"w": np.array([3.0])})
    np.testing.assert_allclose(p["w"], [0.925], rtol=1e-14, err_msg="Adagrad: lr g / (sqrt(h) + eps)")


def test_adam_two_steps_match_hand_computation():
    # p0 = [1, -1], lr = 0.1, b1 = 0.9, b2 = 0.999, eps = 0, g1 = [2, -0.5], g2 = [1, 1]
    # t=1: m = 0.1 g1, v = 0.001 g1^2, so m_hat = g1, v_hat = g1^2 and the step is
    #      lr sign(g1):  p1 = [0.9, -0.9]
    # t=2: m = 0.9 m + 0.1 g2 = [0.28, 0.055];  m_hat = m / (1 - 0.9^2) = m / 0.19
    #      v = 0.999 v + 0.001 g2^2 = [0.004996, 0.00124975];  v_hat = v / (1 - 0.999^2) = v / 0.001999
    #      m_hat / sqrt(v_hat) = [0.932180.., 0.366104..]
    #      p2 = [0.9 - 0.0932180.., -0.9 - 0.0366104..] = [0.806782.., -0.936610..]
    p = {"w": np.array([1.0, -1.0])}
    opt = optim.Adam(p, lr=0.1, eps=0.0)
    run(opt, p, [{"w": np.array([2.0, -0.5])}, {"w": np.array([1.0, 1.0])}])
    expected = [0.9 - 0.1 * (0.28 / 0.19) / np.sqrt(0.004996 / 0.001999),
                -0.9 - 0.1 * (0.055 / 0.19) / np.sqrt(0.00124975 / 0.001999)]
    np.testing.assert_allclose(p["w"], expected, rtol=1e-12,
                               err_msg="Adam, Kingma & Ba Algorithm 1 with bias correction")
    np.testing.assert_allclose(p["w"], [0.8067820361, -0.9366103527], rtol=1e-9)


def test_adam_three_steps_with_a_large_eps_match_hand_computation():
    # eps comparable to sqrt(v_hat), so where eps enters (after the bias correction) matters.
    # p0 = 1, lr = 0.1, b1 = 0.9, b2 = 0.999, eps = 0.1, g = 2, 1, -3 (worked by hand, 10 digits):
    # t=1: m_hat = 2,           v_hat = 4,            p1 = 1 - 0.1 * 2 / (2 + 0.1)           = 0.9047619048
    # t=2: m_hat = 0.28 / 0.19, v_hat = 0.004996 / 0.001999 = 2.4992496248,
    #      p2 = p1 - 0.1 * 1.4736842105 / (1.5808952..+ 0.1)                                 = 0.8170896533
    # t=3: m_hat = -0.048 / 0.271, v_hat = 0.013991004 / 0.002997001 = 4.6683347787,
    #      p3 = p2 + 0.1 * 0.1771217712 / (2.1606329..+ 0.1)                                 = 0.8249247054
    p = {"w": np.array([1.0])}
    opt = optim.Adam(p, lr=0.1, eps=0.1)
    for g, expected in zip([2.0, 1.0, -3.0], [0.9047619048, 0.8170896533, 0.8249247054]):
        opt.step({"w": np.array([g])})
        np.testing.assert_allclose(p["w"], [expected], rtol=1e-9,
                                   err_msg="Adam, Kingma & Ba Algorithm 1: eps is added to sqrt(v_hat)")


@given(seed=st.integers(0, 2**32 - 1), scale=st.floats(1e-3, 1e3))
def test_adam_is_invariant_to_rescaling_the_gradients_and_eps_together(seed, scale):
    # m_hat / (sqrt(v_hat) + eps) is unchanged when every gradient and eps are multiplied by c > 0
    # (Kingma & Ba 2015, Sec. 2.1: the step size is invariant to the scale of the gradient)
    rng = np.random.default_rng(seed)
    grads = [rng.standard_normal((2, 3)) for _ in range(5)]
    p, q = {"w": np.ones((2, 3))}, {"w": np.ones((2, 3))}
    a = optim.Adam(p, lr=0.01, beta1=0.8, beta2=0.99, eps=1e-2)
    b = optim.Adam(q, lr=0.01, beta1=0.8, beta2=0.99, eps=1e-2 * scale)
    for g in grads:
        a.step({"w": g})
        b.step({"w": g * scale})
        np.testing.assert_allclose(q["w"], p["w"], rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- convergence

@pytest.mark.parametrize("name, settings, lr, steps", [
    ("sgd", {}, 0.1, 500), ("momentum", {}, 0.05, 500), ("momentum", {"nesterov": True}, 0.05, 500),
    ("adagrad", {}, 0.5, 2000), ("adam", {}, 0.3, 1000)], ids=CONFIG_IDS)
@given(shape=st.tuples(st.integers(1, 3), st.integers(1, 3)), seed=st.integers(0, 2**32 - 1))
def test_each_optimizer_minimises_a_convex_quadratic(name, settings, lr, steps, shape, seed):
    # f(P) = 1/2 (p - c)^T A (p - c) with p = vec(P); A SPD, eigenvalues in [0.5, 2]; minimum at c.
    # Gradient: A (p - c).  Stated tolerance: every coordinate within 1e-3 of c.
    # Adam with a constant lr can circle the minimum at a distance ~lr on a deterministic
    # problem; its convergence result (Kingma & Ba 2015, Sec. 4) uses lr_t = lr / sqrt(t).
    n = int(np.prod(shape))
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    A = Q @ np.diag(rng.uniform(0.5, 2.0, n)) @ Q.T
    c = rng.standard_normal(n)
    params = {"W": np.zeros(shape)}
    opt = optim.make_optimizer(name, params, lr=lr, **settings)
    for t in range(1, steps + 1):
        if name == "adam":
            opt.lr = lr / math.sqrt(t)
        opt.step({"W": (A @ (params["W"].ravel() - c)).reshape(shape)})
    error = np.abs(params["W"].ravel() - c).max()
    assert error < 1e-3, f"{name} {settings}: max |p - c| = {error:.2e} after {steps} steps"


# ---------------------------------------------------------------- dtype, in place, allocation

@pytest.mark.parametrize("name, settings", CONFIGS, ids=CONFIG_IDS)
@given(shape=st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple),
       grad_dtype=st.sampled_from([np.float32, np.float64]))
def test_float32_params_and_state_stay_float32(name, settings, shape, grad_dtype):
    params = {"enc.W": np.ones(shape, dtype=np.float32), "enc.b": np.ones(3, dtype=np.float32)}
    opt = optim.make_optimizer(name, params, lr=0.1, **settings)
    for _ in range(2):
        opt.step({k: np.full(p.shape, 0.5, dtype=grad_dtype) for k, p in params.items()})
    assert all(p.dtype == np.float32 for p in params.values())
    assert all(p.shape == shape for k, p in params.items() if k == "enc.W")
    buffers = {k: v for k, v in opt.state_dict().items() if "." in k}
    assert buffers or name == "sgd"
    assert all(v.dtype == np.float32 for v in buffers.values()), {k: v.dtype for k, v in buffers.items()}


@pytest.mark.parametrize("name, settings", CONFIGS, ids=CONFIG_IDS)
def test_step_updates_the_callers_arrays_in_place(name, settings):
    W, b = np.ones((3, 2)), np.zeros(2)
    params = {"W": W, "b": b}
    model_view = {"W": W, "b": b}        # the model holds the same array objects
    ids = {k: id(v) for k, v in params.items()}
    opt = optim.make_optimizer(name, params, lr=0.1, **settings)
    opt.step({"W": np.full((3, 2), 0.5), "b": np.full(2, -1.0)})
    assert {k: id(v) for k, v in params.items()} == ids, "params[k] must never be rebound"
    assert (model_view["W"] < 1).all() and (model_view["b"] > 0).all(), "the caller's arrays must change"


@pytest.mark.parametrize("name, settings", CONFIGS, ids=CONFIG_IDS)
def test_step_in_blocks_allocates_no_parameter_sized_arrays(name, settings, monkeypatch):
    # run block by block (minivae.utils.blocks), a formula's temporaries are block-sized
    monkeypatch.setattr(blocks, "BLOCK_ELEMENTS", 2048)
    rng = np.random.default_rng(0)
    params = {"W": rng.standard_normal((500, 200)), "b": rng.standard_normal(200)}
    grads = {k: rng.standard_normal(p.shape) for k, p in params.items()}
    opt = optim.make_optimizer(name, params, lr=1e-3, **settings)
    opt.step(grads)                                   # warm up
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        for _ in range(3):
            opt.step(grads)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < params["W"].nbytes // 10, (
        f"{name}: a step allocated {peak} bytes; W alone is {params['W'].nbytes} bytes")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, settings", CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize("block", [1, 7, 64])
def test_steps_in_blocks_equal_steps_over_whole_arrays_bit_for_bit(name, settings, dtype, block,
                                                                   monkeypatch):
    # every formula is elementwise, so slicing the arrays cannot change a single bit
    rng = np.random.default_rng(1)
    start = {"W": rng.standard_normal((13, 11)).astype(dtype), "b": rng.standard_normal(11).astype(dtype)}
    grads = [{k: rng.standard_normal(p.shape).astype(dtype) for k, p in start.items()} for _ in range(4)]
    results = []
    for size in (None, block):
        monkeypatch.setattr(blocks, "BLOCK_ELEMENTS", size)
        params = {k: p.copy() for k, p in start.items()}
        opt = optim.make_optimizer(name, params, lr=1e-2, **settings)
        run(opt, params, grads)
        results.append((params, opt.state_dict()))
    (p1, s1), (p2, s2) = results
    assert all(np.array_equal(p1[k], p2[k]) for k in p1)
    assert all(np.array_equal(s1[k], s2[k]) for k in s1)


# ---------------------------------------------------------------- subnormal buffer entries

def _subnormal(a):
    return (a != 0) & (np.abs(a) < np.finfo(a.dtype).tiny)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, settings", [c for c in CONFIGS if c[0] != "sgd"],
                         ids=[i for i in CONFIG_IDS if i != "sgd"])
def test_subnormal_buffer_entries_are_set_to_zero_every_flush_interval(name, settings, dtype):
    # entry 0 gets a gradient so small that its buffer is subnormal long before step 50
    # (Adagrad's h = g^2 from the first step, the others' m or v once they have decayed);
    # entry 1 a normal gradient every step; entry 2 a gradient once, then zeros
    tiny = np.finfo(dtype).tiny
    params = {"w": np.ones(3, dtype)}
    opt = optim.make_optimizer(name, params, lr=1e-3, **settings)
    small = np.sqrt(tiny) / 8 if name == "adagrad" else tiny * 64
    first = {"w": np.array([small, 0.5, 0.5], dtype)}
    later = {"w": np.array([0, 0.5, 0], dtype)}
    opt.step(first)
    while opt.t < optim.FLUSH_EVERY - 1:
        opt.step(later)
    buffers = [opt.state[b]["w"] for b in opt.buffers]
    assert any(_subnormal(buf)[0] for buf in buffers), "the test needs a subnormal before the flush"
    before = [buf.copy() for buf in buffers]
    opt.step(later)                                   # step FLUSH_EVERY: update, then flush
    for buf, old in zip(buffers, before):
        assert not _subnormal(buf).any()
        assert buf[1] != 0 and (buf[2] != 0 or old[2] == 0)   # normal entries are kept


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, settings", CONFIGS, ids=CONFIG_IDS)
def test_flushing_subnormals_leaves_the_parameters_bit_for_bit_unchanged(name, settings, dtype,
                                                                        monkeypatch):
    # three flush intervals of gradients that drive some buffer entries into the subnormal
    # range (entries 0, 2 and 3), while entry 1 sees normal gradients throughout
    tiny = np.finfo(dtype).tiny
    rng = np.random.default_rng(0)
    start = rng.standard_normal(4).astype(dtype)
    grads = [{"w": np.array([tiny * 64, 0.5, 0.5, np.sqrt(tiny) / 8], dtype)}]
    # 1 + (3 FLUSH_EVERY - 1) steps: the run ends with a flush
    grads += [{"w": np.array([0, g, 0, 0], dtype)}
              for g in rng.standard_normal(3 * optim.FLUSH_EVERY - 1)]

    def train():
        params = {"w": start.copy()}
        opt = optim.make_optimizer(name, params, lr=1e-3, **settings)
        return run(opt, params, grads)["w"], opt

    flushed, opt = train()
    monkeypatch.setattr(optim, "FLUSH_EVERY", 10 ** 9)          # the same run, never flushed
    plain, opt_plain = train()
    assert np.array_equal(flushed, plain)
    for b in opt.buffers:
        ours, theirs = opt.state[b]["w"], opt_plain.state[b]["w"]
        assert not _subnormal(ours).any()
        kept = ~_subnormal(theirs)
        assert np.array_equal(ours[kept], theirs[kept])


# ---------------------------------------------------------------- state_dict

def test_state_dict_is_flat_arrays_with_documented_keys():
    params = {"encoder.0.W": np.zeros((2, 3)), "encoder.0.b": np.zeros(3)}
    opt = optim.Adam(params, lr=0.01)
    opt.step({k: np.ones_like(p) for k, p in params.items()})
    state = opt.state_dict()
    assert set(state) == {"name", "t", "lr", "beta1", "beta2", "eps",
                          "m.encoder.0.W", "m.encoder.0.b", "v.encoder.0.W", "v.encoder.0.b"}
    assert all(isinstance(v, np.ndarray) for v in state.values())
    assert str(state["name"]) == "adam" and int(state["t"]) == 1 and float(state["lr"]) == 0.01
    np.testing.assert_allclose(state["m.encoder.0.W"], 0.1)    # m1 = (1 - b1) g
    assert set(optim.Momentum(params, lr=0.1).state_dict()) == {
        "name", "t", "lr", "momentum", "nesterov", "v.encoder.0.W", "v.encoder.0.b"}


def test_state_dict_is_a_snapshot_not_a_view():
    params = {"w": np.zeros(2)}
    opt = optim.Adagrad(params)
    opt.step({"w": np.ones(2)})
    saved = opt.state_dict()
    opt.step({"w": np.ones(2)})
    assert int(saved["t"]) == 1 and np.array_equal(saved["h.w"], [1.0, 1.0])


@pytest.mark.parametrize("name, settings", [
    ("sgd", {}), ("momentum", {"momentum": 0.5}), ("momentum", {"momentum": 0.7, "nesterov": True}),
    ("adagrad", {"eps": 1e-4}), ("adam", {"beta1": 0.8, "beta2": 0.99, "eps": 1e-6})], ids=CONFIG_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_state_dict_round_trip_through_npz_resumes_bit_for_bit(name, settings, dtype, tmp_path):
    # non-default settings: resuming must restore them too, not fall back to the defaults
    rng = np.random.default_rng(0)
    start = {"enc.W": rng.standard_normal((2, 3)).astype(dtype), "enc.b": rng.standard_normal(3).astype(dtype)}
    grads = [{k: rng.standard_normal(p.shape).astype(dtype) for k, p in start.items()} for _ in range(8)]

    straight = {k: v.copy() for k, v in start.items()}
    run(optim.make_optimizer(name, straight, lr=0.05, **settings), straight, grads)

    resumed = {k: v.copy() for k, v in start.items()}
    opt = optim.make_optimizer(name, resumed, lr=0.05, **settings)
    run(opt, resumed, grads[:3])
    np.savez(tmp_path / "state.npz", **opt.state_dict())
    with np.load(tmp_path / "state.npz", allow_pickle=False) as f:
        state = dict(f)
    params_after_3 = {k: v.copy() for k, v in resumed.items()}   # as a model checkpoint would hold
    opt = optim.optimizer_from_state(params_after_3, state)
    assert type(opt) is optim.OPTIMIZERS[name]
    run(opt, params_after_3, grads[3:])
    for k in start:
        assert params_after_3[k].dtype == dtype
        assert np.array_equal(straight[k], params_after_3[k]), f"{k}: resumed run differs"


# ---------------------------------------------------------------- bad inputs

def test_make_optimizer_rejects_an_unknown_name_listing_the_valid_ones():
    with pytest.raises(ValueError, match=r"optimizer must be one of \['adagrad', 'adam', 'momentum', 'sgd'\], got 'rmsprop'"):
        optim.make_optimizer("rmsprop", {"w": np.zeros(2)}, lr=0.1)


@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
@pytest.mark.parametrize("lr", [0, 0.0, -1e-3, float("nan"), float("inf")])
def test_a_learning_rate_that_is_not_finite_and_positive_is_rejected(name, lr):
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        optim.make_optimizer(name, {"w": np.zeros(2)}, lr=lr)
    with pytest.raises(ValueError, match="learning rate"):
        optim.OPTIMIZERS[name]({"w": np.zeros(2)}, lr)


@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
@pytest.mark.parametrize("lr", ["0.1", True, None, [0.1]])
def test_a_learning_rate_that_is_not_a_number_is_a_type_error(name, lr):
    # the package's one rule (minivae.utils.validation): a wrong type is a TypeError, a wrong value a ValueError
    with pytest.raises(TypeError, match="learning rate lr must be a real number"):
        optim.OPTIMIZERS[name]({"w": np.zeros(2)}, lr)


def test_sgd_and_momentum_need_an_explicit_learning_rate():
    for name in ("sgd", "momentum"):
        with pytest.raises(ValueError, match="no default learning rate"):
            optim.make_optimizer(name, {"w": np.zeros(2)})
    assert optim.make_optimizer("adam", {"w": np.zeros(2)}).lr == 1e-3


@pytest.mark.parametrize("name, settings, match", [
    ("momentum", {"momentum": 1.0}, "momentum must be"), ("momentum", {"momentum": -0.1}, "momentum must be"),
    ("adam", {"beta1": 1.0}, "beta1 must be"), ("adam", {"beta2": 1.5}, "beta2 must be"),
    ("adam", {"eps": -1e-8}, "eps must be"), ("adagrad", {"eps": float("nan")}, "eps must be")])
def test_out_of_range_settings_are_rejected(name, settings, match):
    with pytest.raises(ValueError, match=match):
        optim.make_optimizer(name, {"w": np.zeros(2)}, lr=0.1, **settings)


def test_params_must_be_floating_point_arrays():
    with pytest.raises(ValueError, match=r"params\['w'\] must be a floating-point NumPy array"):
        optim.SGD({"w": np.zeros(2, dtype=int)}, lr=0.1)
    with pytest.raises(ValueError, match=r"params\['w'\] must be a floating-point NumPy array"):
        optim.SGD({"w": [0.0, 1.0]}, lr=0.1)


@pytest.mark.parametrize("name, settings", CONFIGS, ids=CONFIG_IDS)
def test_step_rejects_grads_with_missing_or_unexpected_keys(name, settings):
    opt = optim.make_optimizer(name, {"W": np.zeros(2), "b": np.zeros(1)}, lr=0.1, **settings)
    with pytest.raises(ValueError, match=r"missing \['b'\], unexpected \[\]"):
        opt.step({"W": np.zeros(2)})
    with pytest.raises(ValueError, match=r"missing \[\], unexpected \['c'\]"):
        opt.step({"W": np.zeros(2), "b": np.zeros(1), "c": np.zeros(1)})


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_step_accepts_huge_finite_gradients_whose_sum_of_squares_overflows(dtype):
    # finite is finite, however large, even where the sum of squares g.g overflows
    huge = np.finfo(dtype).max / 4
    params = {"W": np.zeros((3, 4), dtype), "b": np.zeros(4, dtype)}
    grads = {"W": np.full((3, 4), huge, dtype), "b": np.array([-huge, 0, 1, huge], dtype)}
    opt = optim.SGD(params, lr=1e-30)
    with np.errstate(over="ignore"):
        assert not np.isfinite(np.dot(grads["W"].ravel(), grads["W"].ravel()))
    opt.step(grads)
    assert np.all(params["W"] < 0) and params["b"][0] > 0 and params["b"][3] < 0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_step_finds_one_non_finite_entry_among_huge_ones(bad):
    params = {"W": np.zeros((50, 40), np.float32)}
    g = np.full((50, 40), 1e30, np.float32)
    g[17, 23] = bad
    opt = optim.Adam(params)
    with pytest.raises(optim.NonFiniteGradient, match=r"grads\['W'\] contains NaN or inf"):
        opt.step({"W": g})
    assert not params["W"].any() and opt.t == 0


@pytest.mark.parametrize("name, settings", CONFIGS, ids=CONFIG_IDS)
def test_step_rejects_a_wrong_shape_before_changing_anything(name, settings):
    params = {"W": np.ones((2, 3)), "b": np.ones(3)}
    opt = optim.make_optimizer(name, params, lr=0.1, **settings)
    before = opt.state_dict()
    with pytest.raises(ValueError, match=r"grads\['b'\] has shape \(2,\), but params\['b'\] has shape \(3,\)"):
        opt.step({"W": np.ones((2, 3)), "b": np.ones(2)})        # W is fine and comes first
    assert np.array_equal(params["W"], np.ones((2, 3))), "W was updated although the step failed"
    after = opt.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_load_state_dict_rejects_foreign_incomplete_or_misshapen_state_and_changes_nothing():
    params = {"enc.W": np.zeros((2, 3)), "enc.b": np.zeros(3)}
    opt = optim.Adam(params)
    opt.step({k: np.ones_like(p) for k, p in params.items()})
    good = opt.state_dict()
    with pytest.raises(ValueError, match="this state is for optimizer 'sgd', not 'adam'"):
        opt.load_state_dict(optim.SGD(params, lr=0.1).state_dict())
    with pytest.raises(ValueError, match=r"missing \['v.enc.b'\]"):
        opt.load_state_dict({k: v for k, v in good.items() if k != "v.enc.b"})
    with pytest.raises(ValueError, match=r"unexpected \['m.enc.c'\]"):
        opt.load_state_dict({**good, "m.enc.c": np.zeros(3)})
    with pytest.raises(ValueError, match=r"state\['m.enc.W'\] has shape \(3, 2\), expected \(2, 3\)"):
        opt.load_state_dict({**good, "m.enc.W": np.zeros((3, 2)), "t": np.array(7)})
    with pytest.raises(ValueError, match="learning rate"):
        opt.load_state_dict({**good, "lr": np.array(-1.0)})
    after = opt.state_dict()
    assert all(np.array_equal(good[k], after[k]) for k in good), "a rejected state was partly loaded"
    with pytest.raises(ValueError, match="not an optimizer state"):
        optim.optimizer_from_state(params, {"t": np.array(1)})


@pytest.mark.parametrize("bad, error, match", [
    (np.ones((2, 3)) + 1j, TypeError, r"grads\['W'\] must be an array of real numbers, got an array of shape \(2, 3\) and dtype complex128"),
    ("0.5", TypeError, r"grads\['W'\] must be an array of real numbers"),
    (None, TypeError, r"grads\['W'\] must be an array of real numbers, got None \(NoneType\)"),
    ([["a"] * 3] * 2, TypeError, r"grads\['W'\] must be an array of real numbers"),
])
@pytest.mark.parametrize("name, settings", [("sgd", {}), ("momentum", {}), ("adagrad", {}), ("adam", {})])
def test_step_rejects_complex_string_and_none_gradients_before_changing_anything(
        name, settings, bad, error, match):
    params = {"W": np.ones((2, 3)), "b": np.ones(3)}
    opt = optim.make_optimizer(name, params, lr=0.1, **settings)
    opt.step({"W": np.ones((2, 3)), "b": np.ones(3)})
    before = opt.state_dict()
    W = params["W"].copy()
    with pytest.raises(error, match=match):
        opt.step({"W": bad, "b": np.ones(3)})
    after = opt.state_dict()
    assert opt.t == 1 and all(np.array_equal(before[k], after[k]) for k in before)
    assert np.array_equal(params["W"], W)
    with pytest.raises(TypeError, match="grads must be a dict"):
        opt.step([np.ones((2, 3)), np.ones(3)])


def test_a_list_of_numbers_is_accepted_as_a_gradient_like_an_array():
    a, b = {"w": np.ones(2)}, {"w": np.ones(2)}
    optim.Adam(a).step({"w": [0.5, -1.0]})
    optim.Adam(b).step({"w": np.array([0.5, -1.0])})
    assert np.array_equal(a["w"], b["w"])


@pytest.mark.parametrize("change, error, match", [
    ({"m.W": np.full((2, 3), np.nan)}, ValueError, r"state\['m.W'\] contains NaN or inf"),
    ({"v.W": -np.ones((2, 3))}, ValueError, r"state\['v.W'\] has negative entries"),
    ({"v.b": np.zeros(3, np.float32)}, TypeError, r"state\['v.b'\] must be an array of dtype float64"),
    ({"beta1": np.array(5.0)}, ValueError, r"beta1 must be a finite number >= 0 and < 1, got 5.0"),
    ({"beta2": np.array(np.nan)}, ValueError, "beta2 must be a finite number"),
    ({"eps": np.array(-1e-8)}, ValueError, "eps must be a finite number >= 0"),
    ({"lr": np.array("0.1")}, TypeError, r"state\['lr'\] must be a number"),
    ({"t": np.array(2.7)}, TypeError, r"state\['t'\] must be an integer"),
    ({"t": np.array(-1)}, ValueError, r"state\['t'\] \(steps taken\) must be an integer >= 0"),
    ({"t": np.array([1, 2])}, TypeError, r"state\['t'\] must be an integer \(a 0-d array\)"),
])
def test_load_state_dict_checks_every_buffer_setting_and_the_step_count(change, error, match):
    params = {"W": np.zeros((2, 3)), "b": np.zeros(3)}
    opt = optim.Adam(params)
    opt.step({k: np.ones_like(p) for k, p in params.items()})
    good = opt.state_dict()
    with pytest.raises(error, match=match):
        opt.load_state_dict({**good, **change})
    after = opt.state_dict()
    assert all(np.array_equal(good[k], after[k]) for k in good), "a rejected state was partly loaded"


def test_a_negative_momentum_velocity_is_a_valid_state():
    params = {"W": np.zeros(3)}
    opt = optim.Momentum(params, lr=0.1)
    opt.step({"W": np.ones(3)})                         # v = -0.1: velocities may be negative
    state = opt.state_dict()
    fresh = optim.Momentum({"W": np.zeros(3)}, lr=0.1)
    fresh.load_state_dict(state)
    assert np.array_equal(fresh.state["v"]["W"], state["v.W"])
    with pytest.raises(TypeError, match=r"state\['nesterov'\] must be True or False"):
        fresh.load_state_dict({**state, "nesterov": np.array(1)})


# ---------------------------------------------------------------- steps that would not be finite

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["adagrad", "adam"])
def test_a_gradient_whose_square_overflows_is_refused_before_anything_changes(name, dtype):
    # |g| > sqrt(finfo.max) (1.8e19 in float32): g^2 would be inf in Adam's v or Adagrad's h,
    # and every later step of that parameter NaN or 0
    huge = np.sqrt(np.finfo(dtype).max) * 2
    params = {"W": np.ones((2, 3), dtype), "b": np.ones(3, dtype)}
    opt = optim.make_optimizer(name, params, lr=0.1)
    opt.step({"W": np.ones((2, 3), dtype), "b": np.ones(3, dtype)})
    before = opt.state_dict()
    W = params["W"].copy()
    with pytest.raises(optim.NonFiniteGradient, match=rf"grads\['b'\] has entries up to .*overflows {np.dtype(dtype).name}"):
        opt.step({"W": np.ones((2, 3), dtype), "b": np.array([1, -huge, 0], dtype)})
    after = opt.state_dict()
    assert opt.t == 1 and all(np.array_equal(before[k], after[k]) for k in before)
    assert np.array_equal(params["W"], W)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adagrad_refuses_the_step_that_would_make_its_sum_of_squares_overflow(dtype):
    # each g^2 = max / 3.5 is finite, and so is h = 3 g^2, but not 4 g^2: steps 1-3 run, step 4 is refused
    g = np.sqrt(np.finfo(dtype).max / 3.5)
    params = {"w": np.zeros(2, dtype)}
    opt = optim.Adagrad(params, lr=0.1)
    for _ in range(3):
        opt.step({"w": np.array([g, 1], dtype)})
    assert np.isfinite(opt.state["h"]["w"]).all() and np.isfinite(params["w"]).all()
    with pytest.raises(optim.NonFiniteGradient, match=r"h \+ g\^2 overflows"):
        opt.step({"w": np.array([g, 1], dtype)})
    assert opt.t == 3 and np.isfinite(opt.state["h"]["w"]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_accepts_the_largest_gradient_whose_square_is_finite(dtype):
    g = np.nextafter(np.sqrt(np.finfo(dtype).max), 0, dtype=dtype)
    params = {"w": np.zeros(2, dtype)}
    opt = optim.Adam(params, lr=0.1)
    for _ in range(3):
        opt.step({"w": np.array([g, -g], dtype)})
    assert np.isfinite(opt.state["v"]["w"]).all()
    np.testing.assert_allclose(params["w"], [-0.3, 0.3], rtol=1e-5)      # a step of lr sign(g) each


@pytest.mark.parametrize("name", ["adagrad", "adam"])
def test_eps_0_on_a_gradient_that_was_always_0_is_refused_not_a_nan(name):
    # eps = 0 divides m (or g) by sqrt(v) (or sqrt(h)): 0 / 0 where every gradient so far is 0
    params = {"w": np.ones(3)}
    opt = optim.make_optimizer(name, params, lr=0.1, eps=0.0)
    opt.step({"w": np.array([1.0, -2.0, 3.0])})            # fine: no zero
    with pytest.raises(optim.NonFiniteGradient, match=r"eps = 0.0 would divide 0 by 0 .*params\['w'\]"):
        optim.make_optimizer(name, {"w": np.ones(3)}, lr=0.1, eps=0.0).step({"w": np.array([1.0, 0, 3])})
    opt.step({"w": np.zeros(3)})                           # fine: each entry had a gradient before
    assert np.isfinite(params["w"]).all()


@pytest.mark.parametrize("name", ["adagrad", "adam"])
def test_an_eps_that_rounds_to_0_in_float32_counts_as_0(name):
    params = {"w": np.ones(2, np.float32)}
    opt = optim.make_optimizer(name, params, lr=0.1, eps=1e-50)
    with pytest.raises(optim.NonFiniteGradient, match="divide 0 by 0"):
        opt.step({"w": np.zeros(2, np.float32)})
    assert np.array_equal(params["w"], np.ones(2)) and opt.t == 0


@pytest.mark.parametrize("nesterov", ["yes", 1, None, np.array([True])])
def test_nesterov_must_be_true_or_false(nesterov):
    with pytest.raises(TypeError, match=rf"nesterov must be True or False, got {re.escape(repr(nesterov))}"):
        optim.Momentum({"w": np.ones(2)}, lr=0.1, nesterov=nesterov)
    assert optim.Momentum({"w": np.ones(2)}, lr=0.1, nesterov=np.bool_(True)).nesterov is True


# ---------------------------------------------------------------- the block size, measured

def test_block_sizes_time_each_candidate_in_turn_and_keep_the_fastest_median(monkeypatch):
    # a fake clock: the candidate at index 2 is fastest by median, though another has the
    # single fastest step (a median, not a minimum, decides)
    monkeypatch.setattr(blocks, "BLOCK_ELEMENTS", blocks.MEASURE)
    sizes = blocks.BlockSizes()
    fastest = blocks.CANDIDATES[2]
    seen = []
    for step in range(blocks.SKIPPED_STEPS + blocks.ROUNDS * len(blocks.CANDIDATES)):
        assert sizes.chosen == blocks.MEASURE
        size = sizes.next_size()
        seen.append(size)
        seconds = 1.0 if size == fastest else 2.0
        if size == blocks.CANDIDATES[0] and step == blocks.SKIPPED_STEPS:
            seconds = 0.1                      # one lucky step of another candidate
        sizes.record(size, seconds)
    assert seen[:blocks.SKIPPED_STEPS] == [None] * blocks.SKIPPED_STEPS
    turns = seen[blocks.SKIPPED_STEPS:]
    assert turns == list(blocks.CANDIDATES) * blocks.ROUNDS, "candidates must alternate"
    assert sizes.chosen == fastest and sizes.next_size() == fastest
    assert all(len(t) == blocks.ROUNDS for t in sizes.seconds.values())
    sizes.record(fastest, 0.0)                 # once chosen, nothing more is recorded
    assert all(len(t) == blocks.ROUNDS for t in sizes.seconds.values())


@pytest.mark.parametrize("fixed", [None, 4096])
def test_a_fixed_block_size_is_used_and_nothing_is_measured(fixed, monkeypatch):
    monkeypatch.setattr(blocks, "BLOCK_ELEMENTS", fixed)
    sizes = blocks.BlockSizes()
    for _ in range(3 * len(blocks.CANDIDATES) * blocks.ROUNDS):
        assert sizes.next_size() == fixed
        sizes.record(fixed, 1.0)
    assert sizes.chosen == blocks.MEASURE and not any(sizes.seconds.values())


def test_arrays_no_larger_than_the_smallest_candidate_are_never_cut():
    # the grader's optimiser probes use such arrays, so no measured choice can change a grade,
    # even for an update that is (wrongly) not elementwise
    a = np.zeros(min(c for c in blocks.CANDIDATES if c is not None))
    for size in blocks.CANDIDATES:
        assert len(list(blocks.blocks(a, a, size=size))) == 1


@pytest.mark.parametrize("name, settings", CONFIGS, ids=CONFIG_IDS)
def test_a_run_that_measures_its_block_size_equals_one_over_whole_arrays_bit_for_bit(
        name, settings, monkeypatch):
    # parameters larger than every candidate, so each candidate really cuts them
    rng = np.random.default_rng(3)
    start = {"W": rng.standard_normal((400, 400)).astype(np.float32),
             "b": rng.standard_normal(400).astype(np.float32)}
    n_steps = blocks.SKIPPED_STEPS + blocks.ROUNDS * len(blocks.CANDIDATES) + 3
    grads = [{k: rng.standard_normal(p.shape).astype(np.float32) for k, p in start.items()}
             for _ in range(n_steps)]
    results = []
    for walk in (blocks.MEASURE, None):
        monkeypatch.setattr(blocks, "BLOCK_ELEMENTS", walk)
        params = {k: p.copy() for k, p in start.items()}
        opt = optim.make_optimizer(name, params, lr=1e-2, **settings)
        run(opt, params, grads)
        results.append((params, opt.state_dict(), opt.block_sizes))
    (p1, s1, measured), (p2, s2, _) = results
    assert measured.chosen in blocks.CANDIDATES, "the run must have finished measuring"
    assert all(np.array_equal(p1[k], p2[k]) for k in p1)
    assert all(np.array_equal(s1[k], s2[k]) for k in s1)
