"""Tests of minivae.training: learning happens, resume is exact, divergence and bad input are clear."""
import os
import signal

import numpy as np
import pytest

from minivae import checkpoint
from minivae.datasets import load_mnist
from minivae.training import TrainingDiverged, beta_schedule, train
from minivae.vae import VAE


@pytest.fixture(scope="module")
def digits():
    data = load_mnist()
    return data.train.x[:600], data.test.x[:200]


def small_model(dtype=np.float64):
    return VAE(784, 4, hidden=(32,), dtype=dtype, seed=1)


def test_training_raises_the_test_elbo(digits):
    x_train, x_test = digits
    model = small_model(np.float32)
    history = train(model, x_train, x_test, epochs=4, batch_size=50, lr=3e-3, verbose=False)
    assert history["epoch"] == [1, 2, 3, 4]
    # an untrained model scores about -545 nats (784 pixels at p = 1/2); training must do far better
    assert history["valid_elbo"][-1] > history["valid_elbo"][0] + 10
    assert history["valid_elbo"][-1] > -250
    assert all(p.dtype == np.float32 for p in model.params.values())


def test_same_seed_gives_bit_identical_training(digits):
    x_train, _ = digits
    a, b = small_model(), small_model()
    train(a, x_train, epochs=2, batch_size=64, seed=5, verbose=False)
    train(b, x_train, epochs=2, batch_size=64, seed=5, verbose=False)
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)


def test_resume_after_sigterm_mid_epoch_matches_an_uninterrupted_run(digits, tmp_path, monkeypatch):
    x_train, _ = digits
    straight = small_model()
    train(straight, x_train, epochs=3, batch_size=64, seed=2, verbose=False)

    # send SIGTERM to ourselves during the 13th step (epoch 2 of 3): the handler installed by
    # train() turns it into a checkpoint after that step and a clean return
    interrupted = small_model()
    calls = {"n": 0}
    original = interrupted.loss_and_grads

    def loss_and_grads(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 13:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(*args, **kwargs)

    monkeypatch.setattr(interrupted, "loss_and_grads", loss_and_grads)
    path = tmp_path / "model.npz"
    history = train(interrupted, x_train, epochs=3, batch_size=64, seed=2,
                    checkpoint_path=path, verbose=False)
    assert history["interrupted"] and calls["n"] == 13

    saved = checkpoint.load(path)
    resumed = saved["model"]
    train(resumed, x_train, epochs=3, batch_size=64, seed=2, resume=saved, verbose=False)
    assert all(np.array_equal(straight.params[k], resumed.params[k]) for k in straight.params)


def test_divergence_stops_with_a_message_naming_the_learning_rate(digits, tmp_path):
    x_train, _ = digits
    model = VAE(784, 4, hidden=(32,), likelihood="gaussian", seed=0)
    with pytest.raises(TrainingDiverged, match="learning rate"):
        train(model, x_train, epochs=5, batch_size=50, optimizer="sgd", lr=1e6,
              checkpoint_path=tmp_path / "m.npz", verbose=False)
    assert all(np.isfinite(p).all() for p in model.params.values())
    assert all(np.isfinite(p).all() for p in checkpoint.load(tmp_path / "m.npz")["model"].params.values())


@pytest.mark.parametrize("kwargs, match", [
    (dict(epochs=0), "epochs"),
    (dict(batch_size=10_000), "larger than the training set"),
    (dict(lr=-1.0), "learning rate"),
    (dict(optimizer="lbfgs"), "unknown optimizer"),
])
def test_bad_training_arguments_are_clear_errors(digits, kwargs, match):
    x_train, _ = digits
    args = dict(epochs=1, batch_size=50, verbose=False)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        train(small_model(), x_train, **args)


def test_pixels_0_to_255_get_a_hint_to_divide(digits):
    x_train, _ = digits
    with pytest.raises(ValueError, match="divide by 255"):
        train(small_model(), x_train * 255, epochs=1, verbose=False)


def test_beta_schedule_rises_linearly_to_one():
    assert [beta_schedule(e, 4) for e in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert beta_schedule(0, 0) == 1.0
