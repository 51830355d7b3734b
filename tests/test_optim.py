"""Tests of minivae.optim: hand-computed steps, convergence, in-place float32 updates, exact resume."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minivae import optim


def test_sgd_step_by_hand():
    p = {"w": np.array([1.0, -2.0])}
    optim.SGD(p, lr=0.1).step({"w": np.array([0.5, 1.0])})
    np.testing.assert_allclose(p["w"], [1.0 - 0.05, -2.0 - 0.1])


def test_momentum_two_steps_by_hand():
    # v1 = -0.1 * 1 = -0.1, p1 = 0.9;  v2 = 0.9 * -0.1 - 0.1 * 1 = -0.19, p2 = 0.71
    p = {"w": np.array([1.0])}
    opt = optim.Momentum(p, lr=0.1, momentum=0.9)
    opt.step({"w": np.array([1.0])})
    opt.step({"w": np.array([1.0])})
    np.testing.assert_allclose(p["w"], [0.71], rtol=1e-14)


def test_adagrad_two_steps_by_hand():
    # h1 = 4, p1 = 1 - 0.1 * 2 / 2 = 0.9;  h2 = 4 + 1 = 5, p2 = 0.9 - 0.1 * 1 / sqrt(5)
    p = {"w": np.array([1.0])}
    opt = optim.Adagrad(p, lr=0.1, eps=0.0)
    opt.step({"w": np.array([2.0])})
    opt.step({"w": np.array([1.0])})
    np.testing.assert_allclose(p["w"], [0.9 - 0.1 / np.sqrt(5)], rtol=1e-14)


def test_adam_two_steps_match_algorithm_1():
    # Kingma & Ba Algorithm 1 written out literally, with eps included
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-3
    g1, g2 = np.array([0.3, -2.0]), np.array([-0.1, 0.5])
    p = {"w": np.array([1.0, 1.0])}
    opt = optim.Adam(p, lr=lr, beta1=b1, beta2=b2, eps=eps)
    expected, m, v = np.array([1.0, 1.0]), 0, 0
    for t, g in enumerate([g1, g2], start=1):
        opt.step({"w": g})
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        expected = expected - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    np.testing.assert_allclose(p["w"], expected, rtol=1e-12)


@pytest.mark.parametrize("name, lr, steps", [("sgd", 0.1, 500), ("momentum", 0.05, 500),
                                             ("adagrad", 0.5, 2000), ("adam", 0.05, 2000)])
@given(n=st.integers(1, 5), seed=st.integers(0, 2**32 - 1))
def test_each_optimizer_minimises_a_convex_quadratic(name, lr, steps, n, seed):
    # f(p) = 1/2 (p - c)^T A (p - c), A symmetric with eigenvalues in [0.5, 2]: minimum at c
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    A = Q @ np.diag(rng.uniform(0.5, 2.0, n)) @ Q.T
    c = rng.standard_normal(n)
    p = {"w": np.zeros(n)}
    opt = optim.make_optimizer(name, p, lr=lr)
    for _ in range(steps):
        opt.step({"w": A @ (p["w"] - c)})
    assert np.abs(p["w"] - c).max() < 1e-3, (name, p["w"], c)


@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
def test_updates_are_in_place_and_keep_float32(name):
    w = np.ones((3, 2), dtype=np.float32)
    p = {"w": w}
    opt = optim.make_optimizer(name, p, lr=0.1)
    opt.step({"w": np.full((3, 2), 0.5, dtype=np.float32)})
    assert p["w"] is w and w.dtype == np.float32 and (w < 1).all()
    assert all(v.dtype == np.float32 for k, v in opt.state_dict().items() if "." in k)


@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
def test_state_dict_round_trip_resumes_bit_for_bit(name, tmp_path):
    rng = np.random.default_rng(0)
    grads = [{"a": rng.standard_normal((2, 3)), "b": rng.standard_normal(3)} for _ in range(6)]
    start = {"a": rng.standard_normal((2, 3)), "b": rng.standard_normal(3)}

    straight = {k: v.copy() for k, v in start.items()}
    opt = optim.make_optimizer(name, straight, lr=0.05)
    for g in grads:
        opt.step(g)

    resumed = {k: v.copy() for k, v in start.items()}
    opt = optim.make_optimizer(name, resumed, lr=0.05)
    for g in grads[:3]:
        opt.step(g)
    np.savez(tmp_path / "state.npz", **opt.state_dict())
    with np.load(tmp_path / "state.npz", allow_pickle=False) as f:
        state = dict(f)
    opt = optim.optimizer_from_state(resumed, state)
    for g in grads[3:]:
        opt.step(g)
    assert all(np.array_equal(straight[k], resumed[k]) for k in start)


def test_bad_arguments_are_clear_value_errors():
    p = {"w": np.zeros(2)}
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        optim.make_optimizer("rmsprop", p)
    with pytest.raises(ValueError, match="learning rate"):
        optim.make_optimizer("adam", p, lr=0.0)
    with pytest.raises(ValueError, match="learning rate"):
        optim.make_optimizer("adam", p, lr=float("nan"))
    opt = optim.Adam(p)
    with pytest.raises(ValueError, match=r"missing \['w'\]"):
        opt.step({"v": np.zeros(2)})
    with pytest.raises(ValueError, match="shape"):
        opt.step({"w": np.zeros(3)})
    with pytest.raises(ValueError, match="not 'adam'"):
        opt.load_state_dict(optim.SGD(p).state_dict())
