"""Tests of minivae.training: learning happens, resume is exact, divergence and bad input are clear."""
import os
import signal

import numpy as np
import pytest

from minivae.runs import checkpoint
from minivae.data.datasets import load_mnist
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
    assert history["test_elbo"][-1] > history["test_elbo"][0] + 10
    assert history["test_elbo"][-1] > -250
    assert all(p.dtype == np.float32 for p in model.params.values())


def test_same_seed_gives_bit_identical_training(digits):
    x_train, _ = digits
    a, b = small_model(), small_model()
    train(a, x_train, epochs=1, batch_size=64, seed=5, verbose=False)
    train(b, x_train, epochs=1, batch_size=64, seed=5, verbose=False)
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
    (dict(batch_size=10_000), "batch_size must be at most the training set.s 600 examples, got 10000"),
    (dict(lr=-1.0), "learning rate"),
    (dict(optimizer="lbfgs"), r"optimizer must be one of \[.*\], got 'lbfgs'"),
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


# --- divergence: the step, the last finite loss, the last good checkpoint ------------------

def record_calls(model, monkeypatch):
    """Wrap model.loss_and_grads; return a list that gets, per call: the batch, the state of
    the Generator it draws eps from, the parameters before the step, and the loss."""
    calls = []
    original = model.loss_and_grads

    def loss_and_grads(x, **kwargs):
        call = {"x": np.array(x), "rng": kwargs["rng"].bit_generator.state,
                "params": {k: v.copy() for k, v in model.params.items()}}
        call["loss"], grads = original(x, **kwargs)
        calls.append(call)
        return call["loss"], grads

    monkeypatch.setattr(model, "loss_and_grads", loss_and_grads)
    return calls


def diverging_run(tmp_path, monkeypatch):
    """Momentum at lr 0.3 on a small Gaussian model blows up after a few epochs."""
    x = np.random.default_rng(0).standard_normal((40, 6))
    model = VAE(6, 2, hidden=(5,), likelihood="gaussian", seed=0)
    calls = record_calls(model, monkeypatch)
    settings = dict(epochs=6, batch_size=8, optimizer="momentum", lr=0.3, verbose=False)
    with pytest.raises(TrainingDiverged) as info:
        train(model, x, checkpoint_path=tmp_path / "m.npz", **settings)
    return info.value, calls, model, x, settings


def test_divergence_names_the_step_and_last_finite_loss_and_keeps_the_last_good_checkpoint(
        tmp_path, monkeypatch):
    error, calls, model, _, _ = diverging_run(tmp_path, monkeypatch)
    losses = [call["loss"] for call in calls]
    # it blew up after at least one epoch, so an older end-of-epoch checkpoint was on disk
    assert error.epoch >= 2 and error.step == len(losses)
    assert not np.isfinite(losses[-1]) and np.isfinite(losses[:-1]).all()
    assert error.last_loss == losses[-2]
    message = str(error)
    assert f"at step {error.step} (epoch {error.epoch}, batch" in message
    assert f"last finite loss: {losses[-2]}" in message
    assert "learning rate (0.3)" in message and "'momentum'" in message
    # the file now holds the state just before the failing step, which the model also keeps
    assert error.checkpoint_path == str(tmp_path / "m.npz")
    saved = checkpoint.load(tmp_path / "m.npz")
    for k, before in calls[-1]["params"].items():
        assert np.array_equal(saved["model"].params[k], before)
        assert np.array_equal(model.params[k], before)
    state = saved["train_state"]
    assert state["epoch"] * 5 + state["batch"] + 1 == error.step        # 5 batches per epoch


def test_resuming_from_a_divergence_checkpoint_repeats_the_failing_step_exactly(
        tmp_path, monkeypatch):
    # the checkpoint holds the Generator state from before the step's draws: resuming with
    # the same settings replays the failing step with the same batch, parameters and noise
    error, calls, _, x, settings = diverging_run(tmp_path, monkeypatch)
    saved = checkpoint.load(tmp_path / "m.npz")
    replay = record_calls(saved["model"], monkeypatch)
    with pytest.raises(TrainingDiverged) as again:
        train(saved["model"], x, resume=saved, **settings)
    assert again.value.step == error.step and len(replay) == 1
    assert np.array_equal(replay[0]["x"], calls[-1]["x"])
    assert replay[0]["rng"] == calls[-1]["rng"]
    assert str(replay[0]["loss"]) == str(calls[-1]["loss"])
    # the resumed run names the last finite loss of the run it continues, not None
    assert again.value.last_loss == error.last_loss is not None
    assert f"last finite loss: {error.last_loss}" in str(again.value)


def test_a_divergence_never_names_a_checkpoint_of_another_run(grey, tmp_path):
    # a file from an earlier run sits at checkpoint_path; this run overflows its parameters
    # at the first update, before saving anything: the message must not call that file the
    # last good state of this run
    path = tmp_path / "model.npz"
    train(VAE(8, 2, hidden=(6,), seed=1), grey, epochs=1, batch_size=10, verbose=False,
          checkpoint_path=path)
    before = path.read_bytes()
    with pytest.raises(TrainingDiverged) as info:      # float32: lr * g overflows to inf
        train(VAE(8, 2, hidden=(6,), dtype=np.float32), grey, epochs=1, batch_size=10,
              optimizer="sgd", lr=1e300, verbose=False, checkpoint_path=path)
    assert info.value.checkpoint_path is None and str(path) not in str(info.value)
    assert "no checkpoint was saved" in str(info.value)
    assert path.read_bytes() == before


def test_no_runtime_warning_reaches_the_user_when_training_diverges(grey):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")             # any warning fails the test
        with pytest.raises(TrainingDiverged):
            train(VAE(8, 2, hidden=(6,)), grey, epochs=2, batch_size=10, lr=1e300, verbose=False)


# --- bad input: a TypeError/ValueError before anything is trained or written ---------------

@pytest.fixture(scope="module")
def grey():
    """60 examples of 8 grey levels, and a small Bernoulli model for them."""
    return np.random.default_rng(0).uniform(size=(60, 8))


def tiny_model(**kwargs):
    return VAE(8, 2, hidden=(6,), seed=0, **kwargs)


@pytest.mark.parametrize("make_x, error, match", [
    (lambda x: (x * 255).astype(np.uint8), TypeError, r"float32 or float64.*uint8.*divide by 255"),
    (lambda x: (x * 255).astype(np.int64), TypeError, r"got dtype int64.*divide by 255"),
    (lambda x: x > 0.5, TypeError, r"got dtype bool"),
    (lambda x: x.astype(object), TypeError, r"got dtype object"),
    (lambda x: x.astype(np.float16), TypeError, r"got dtype float16.*astype\(np.float32\)"),
    (lambda x: x[:, :5], ValueError, r"x_train must be an array of shape \(B, 8\).*\(60, 5\)"),
    (lambda x: x[0], ValueError, r"x_train must be an array of shape \(B, 8\).*\(8,\)"),
    (lambda x: x[:0], ValueError, r"x_train must be an array of shape \(B, 8\) with B >= 1, got an array of shape \(0, 8\)"),
    (lambda x: np.where(x > 0.9, np.nan, x), ValueError, r"x_train must be finite \(no NaN or inf\), got nan at index"),
    (lambda x: x * 255, ValueError, "divide by 255"),
])
def test_bad_training_data_is_a_clear_error(grey, make_x, error, match):
    with pytest.raises(error, match=match):
        train(tiny_model(), make_x(grey), epochs=1, batch_size=10, verbose=False)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(n_samples=0), ValueError, r"n_samples must be a positive integer, got 0"),
    (dict(warmup_epochs=-1), ValueError, r"warmup_epochs must be an integer >= 0, got -1"),
    (dict(seed=-1), ValueError, r"seed must be an integer >= 0, got -1"),
    (dict(epochs=2.5), ValueError, r"epochs must be a positive integer, got 2.5"),
    (dict(epochs="3"), TypeError, r"epochs must be a positive integer, got '3' \(str\)"),
    (dict(batch_size=float("nan")), ValueError, r"batch_size must be a positive integer, got nan"),
    (dict(lr=0.0), ValueError, r"lr must be a finite number > 0, got 0.0"),
    (dict(lr=float("inf")), ValueError, r"lr must be a finite number > 0, got inf"),
    (dict(estimator="exact"), ValueError, r"estimator must be one of \['A', 'B', 'iwae'\], got 'exact'"),
    (dict(x_test=np.zeros((5, 7))), ValueError, r"x_test must be an array of shape \(B, 8\)"),
])
def test_bad_training_arguments_are_clear_errors_and_write_nothing(grey, tmp_path, kwargs, error,
                                                                   match):
    args = dict(epochs=1, batch_size=10, verbose=False, checkpoint_path=tmp_path / "run" / "m.npz")
    args.update(kwargs)
    with pytest.raises(error, match=match):
        train(tiny_model(), grey, **args)
    assert not (tmp_path / "run").exists()


def test_a_model_that_is_not_a_vae_and_a_folder_as_checkpoint_path_are_clear_errors(grey, tmp_path):
    with pytest.raises(TypeError, match="model must be an object with params, check_data, likelihood, loss_and_grads "
                       r"\(the model contract of minivae.train\), got 'dict'"):
        train({"W": np.zeros(3)}, grey, epochs=1, verbose=False)
    with pytest.raises(ValueError, match="checkpoint_path must be a file path.*model.npz"):
        train(tiny_model(), grey, epochs=1, batch_size=10, checkpoint_path=tmp_path, verbose=False)


def test_resume_refuses_what_would_not_continue_the_run_exactly(grey, tmp_path):
    path = tmp_path / "m.npz"
    train(tiny_model(), grey, epochs=1, batch_size=10, checkpoint_path=path, verbose=False)
    saved = checkpoint.load(path)
    settings = dict(epochs=2, batch_size=10, verbose=False)
    with pytest.raises(ValueError, match=r"run with batch_size=10; this call has batch_size=20"):
        train(saved["model"], grey, resume=saved, **dict(settings, batch_size=20))
    with pytest.raises(ValueError, match="run with lr=0.001, seed=0; this call has lr=0.01, seed=1"):
        train(saved["model"], grey, resume=saved, **dict(settings, lr=0.01, seed=1))
    with pytest.raises(ValueError, match="training on 60 examples; x_train has 50"):
        train(saved["model"], grey[:50], resume=saved, **settings)
    with pytest.raises(ValueError, match="written while training on other data"):   # same size
        train(saved["model"], grey[::-1], resume=saved, **settings)
    with pytest.raises(ValueError, match=r"not the checkpoint's.*model=resume\['model'\]"):
        train(tiny_model(), grey, resume=saved, **settings)
    checkpoint.save(tmp_path / "plain.npz", tiny_model())               # a model without training state
    plain = checkpoint.load(tmp_path / "plain.npz")
    with pytest.raises(ValueError, match="no training state"):
        train(plain["model"], grey, resume=plain, **settings)
    # and the checkpoint, given what it needs, continues (epoch 2 of 2)
    history = train(saved["model"], grey, resume=saved, **settings)
    assert history["epoch"] == [1, 2]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pixels_0_to_255_given_to_a_gaussian_model_are_refused_with_advice_to_standardise(
        grey, dtype, tmp_path):
    # float32 overflows exp(logvar) on the first batch; float64 does not, and used to train on
    # to an ELBO of -2.7e85 without a word: both are refused before the first step
    model = VAE(8, 2, hidden=(6,), likelihood="gaussian", dtype=dtype, seed=0)
    before = {k: v.copy() for k, v in model.params.items()}
    pixels = np.round(grey * 255).astype(dtype)       # grey levels 0-255, not standardised
    with pytest.raises(ValueError, match=r"x_train must be near unit scale \(\|x\| <= 100\), got values up to 2\d\d"
                                         r".*standardise"):
        train(model, pixels, epochs=1, batch_size=10, verbose=False,
              checkpoint_path=tmp_path / "run" / "model.npz")
    with pytest.raises(ValueError, match=r"x_test must be near unit scale.*got values up to 2\d\d"):
        train(model, grey.astype(dtype), pixels, epochs=1, batch_size=10, verbose=False)
    assert not (tmp_path / "run").exists()
    assert all(np.array_equal(before[k], model.params[k]) for k in before)


def test_a_failure_at_the_first_step_blames_the_data_not_the_learning_rate(grey):
    # parameters 1e4 times too large overflow exp(logvar) before any update happened
    model = VAE(8, 2, hidden=(6,), likelihood="gaussian", dtype=np.float32, seed=0)
    for name in model.params:
        model.params[name] *= 1e4
    with pytest.raises(TrainingDiverged, match=r"step 1 .*no step had a finite loss.*first "
                                               r"step.*standardise") as info:
        train(model, grey, epochs=1, batch_size=10, verbose=False)
    assert info.value.last_loss is None and "learning rate" not in str(info.value)


def test_weight_decay_adds_lambda_over_n_times_the_parameters_to_the_gradient():
    # the N(0, I/lambda) prior per example: -(1/N) log p(theta) has gradient (lambda / N) theta
    from minivae.optim import make_optimizer
    from minivae.training import train_step

    x = np.random.default_rng(0).uniform(size=(10, 6))
    plain, decayed = VAE(6, 2, hidden=(4,), seed=1), VAE(6, 2, hidden=(4,), seed=1)
    before = {k: v.copy() for k, v in plain.params.items()}
    for model, c in ((plain, 0.0), (decayed, 0.25)):
        train_step(model, make_optimizer("sgd", model.params, lr=0.1), x, np.random.default_rng(2),
                   weight_decay=c)
    for k in before:
        np.testing.assert_allclose(decayed.params[k] - plain.params[k], -0.1 * 0.25 * before[k],
                                   rtol=1e-10, atol=1e-14)


def test_train_passes_weight_decay_over_n_and_refuses_a_negative_one():
    x = np.random.default_rng(0).uniform(size=(20, 6))
    runs = []
    for wd in (0.0, 2.0):
        model = VAE(6, 2, hidden=(4,), seed=1)
        train(model, x, epochs=1, batch_size=20, optimizer="sgd", lr=0.1, weight_decay=wd, verbose=False)
        runs.append(model)
    assert not np.array_equal(runs[0].params["encoder.0.W"], runs[1].params["encoder.0.W"])
    with pytest.raises(ValueError, match="weight_decay"):
        train(VAE(6, 2, hidden=(4,)), x, epochs=1, batch_size=20, weight_decay=-1.0)


def test_train_cli_has_the_papers_settings():
    from minivae.cli.main import build_parser

    args = build_parser().parse_args(["train", "--init-std", "0.01", "--weight-decay", "1",
                                      "--activation", "tanh", "--optimizer", "adagrad", "--estimator", "iwae"])
    assert (args.init_std, args.weight_decay, args.estimator) == (0.01, 1.0, "iwae")
    defaults = build_parser().parse_args(["train"])
    assert (defaults.init_std, defaults.weight_decay) == (None, 0.0)


@pytest.mark.parametrize("lr, lr_final, epochs", [(1e-3, 1e-4, 200), (3e-3, 1e-5, 7), (1e-3, 1e-2, 3)])
def test_geometric_lr_falls_by_equal_ratios_from_lr_to_lr_final(lr, lr_final, epochs):
    from minivae.training import geometric_lr
    rates = np.array([geometric_lr(e, lr, lr_final, epochs) for e in range(epochs)])
    assert rates[0] == lr and rates[-1] == pytest.approx(lr_final, rel=1e-12)
    ratios = rates[1:] / rates[:-1]
    assert np.allclose(ratios, (lr_final / lr) ** (1 / (epochs - 1)), rtol=1e-12)
    assert geometric_lr(0, lr, lr_final, 1) == lr           # a one-epoch run keeps lr


def test_lr_final_is_the_geometric_schedule_and_changes_the_run(digits):
    from functools import partial

    from minivae.training import geometric_lr
    x_train, _ = digits
    decayed, scheduled, constant = small_model(), small_model(), small_model()
    settings = dict(epochs=3, batch_size=64, lr=3e-3, seed=2, verbose=False)
    train(decayed, x_train, lr_final=1e-4, **settings)
    train(scheduled, x_train, lr_schedule=partial(geometric_lr, lr=3e-3, lr_final=1e-4, epochs=3),
          **settings)
    train(constant, x_train, **settings)
    assert all(np.array_equal(decayed.params[k], scheduled.params[k]) for k in decayed.params)
    assert not all(np.array_equal(decayed.params[k], constant.params[k]) for k in decayed.params)


def test_resume_mid_epoch_with_a_decaying_rate_matches_an_uninterrupted_run(digits, tmp_path):
    x_train, _ = digits
    settings = dict(epochs=4, batch_size=64, lr=3e-3, lr_final=1e-4, seed=2, verbose=False)
    straight = small_model()
    train(straight, x_train, **settings)
    steps = {"n": 0}

    def stop_at_step_23(model, examples):          # epoch 3 of 4, mid-epoch (10 steps an epoch)
        steps["n"] += 1
        return steps["n"] == 23

    path = tmp_path / "model.npz"
    assert train(small_model(), x_train, checkpoint_path=path, on_step=stop_at_step_23,
                 **settings)["interrupted"] is False
    saved = checkpoint.load(path)                  # its optimiser's rate is epoch 3's
    assert saved["train_state"]["settings"]["lr_final"] == 1e-4
    train(saved["model"], x_train, resume=saved, checkpoint_path=path, **settings)
    assert all(np.array_equal(straight.params[k], saved["model"].params[k]) for k in straight.params)
    finished = checkpoint.load(path)               # the finished run's checkpoint loads too
    assert finished["train_state"]["epoch"] == 4


def test_resume_refuses_another_schedule_and_a_decaying_run_made_longer(digits, tmp_path):
    x_train, _ = digits
    path = tmp_path / "model.npz"
    settings = dict(batch_size=64, lr=3e-3, seed=2, verbose=False)
    train(small_model(), x_train, epochs=2, lr_final=1e-4, checkpoint_path=path, **settings)
    saved = checkpoint.load(path)
    with pytest.raises(ValueError, match=r"run with lr_final=0.0001; this call has lr_final=None"):
        train(saved["model"], x_train, epochs=2, resume=saved, **settings)
    with pytest.raises(ValueError, match=r"run with lr_final=0.0001; this call has lr_final=0.001"):
        train(saved["model"], x_train, epochs=2, lr_final=1e-3, resume=saved, **settings)
    with pytest.raises(ValueError, match=r"decays to lr_final=0.0001 over its 2 epochs, so epochs "
                                         r"cannot change \(got 5\)"):
        train(saved["model"], x_train, epochs=5, lr_final=1e-4, resume=saved, **settings)


@pytest.mark.parametrize("kwargs, match", [
    (dict(lr_final=0.0), "lr_final must be a finite number > 0, got 0.0"),
    (dict(lr_final=float("nan")), "lr_final must be a finite number > 0, got nan"),
    (dict(lr_final=1e-4, lr_schedule=lambda epoch: 1e-3), "lr_final must be None when an lr_schedule"),
])
def test_bad_lr_final_is_a_clear_error(digits, kwargs, match):
    with pytest.raises(ValueError, match=match):
        train(small_model(), digits[0], epochs=1, verbose=False, **kwargs)
