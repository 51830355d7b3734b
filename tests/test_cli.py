"""Tests of the minivae command: a short real run writes everything; user errors exit 2."""
import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from minivae.runs import checkpoint
from minivae.cli.main import main


def test_train_writes_model_history_metrics_and_figures(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--epochs", "2", "--hidden", "64", "--z-dim", "2", "--out", str(out), "--quiet"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and -545 < metrics["test_elbo"] < -100
    assert {"train_elbo", "seconds"} <= set(metrics)
    history = json.loads((out / "history.json").read_text())
    assert len(history["test_elbo"]) == 2
    for name in ["model.npz", "reconstructions.png", "samples.png", "elbo.png", "manifold.png",
                 "latent_scatter.png"]:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" or name.endswith(".npz")
    assert "test ELBO" in capsys.readouterr().out

    assert main(["sample", str(out / "model.npz"), "--n", "9", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"


def test_user_errors_print_one_line_and_exit_2(tmp_path):
    result = subprocess.run([sys.executable, "-m", "minivae", "train", "--data", str(tmp_path / "nowhere")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "error" in result.stderr
    result = subprocess.run([sys.executable, "-m", "minivae", "sample", str(tmp_path / "none.npz")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "no checkpoint" in result.stderr


def test_evaluate_reports_the_training_test_elbo_and_a_higher_log_likelihood(tmp_path, capsys, monkeypatch):
    # `minivae evaluate` binarises the test split with the run's seed and draws the ELBO's noise
    # as `minivae train` does, so its test ELBO is the one in metrics.json; the importance-sampled
    # log-likelihood (k = 20, an IWAE bound) lies above the ELBO (k = 1), by far more than the
    # printed Monte Carlo standard error over 1,000 test images.
    import re

    from minivae.cli import train as train_command

    monkeypatch.setattr(train_command, "save_run_figures", lambda *args, **kwargs: [])   # tested above; slow
    out = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--hidden", "16", "--z-dim", "3", "--seed", "3",
                 "--batch-size", "500", "--out", str(out), "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    capsys.readouterr()
    assert main(["evaluate", str(out / "model.npz"), "--k", "20", "--batch-size", "250"]) == 0
    printed = capsys.readouterr().out
    elbo = float(re.search(r"test ELBO (-?[\d.]+)", printed).group(1))
    log_px, se = map(float, re.search(r"test log-likelihood (-?[\d.]+) .* standard error ([\d.]+)",
                                      printed).groups())
    assert elbo == round(metrics["test_elbo"], 2)
    assert "binarised once with seed 3" in printed
    assert log_px - elbo > 4 * max(se, 0.01)


def test_evaluate_user_errors_exit_2(tmp_path):
    result = subprocess.run([sys.executable, "-m", "minivae", "evaluate", str(tmp_path / "none.npz")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "no checkpoint" in result.stderr and "Traceback" not in result.stderr
    assert main(["evaluate", str(tmp_path / "none.npz"), "--k", "0"]) == 2


# --- reliability (issue 6): bad numbers, damaged files, divergence ------------------------

def one_line(text):
    lines = text.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


def test_bad_numbers_exit_2_with_one_line_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "run"
    for flags, expected in [(["--lr", "0"], "--lr must be a finite number > 0, got 0.0"),
                            (["--lr", "nan"], "--lr must be a finite number > 0, got nan"),
                            (["--warmup-epochs", "-1"], "--warmup-epochs must be an integer >= 0, got -1"),
                            (["--seed", "-3"], "--seed must be an integer >= 0, got -3"),
                            (["--batch-size", "0"], "--batch-size must be a positive integer, got 0")]:
        assert main(["train", "--out", str(out), "--quiet", *flags]) == 2
        assert expected in one_line(capsys.readouterr().err)
        assert not out.exists()
    assert main(["sample", str(tmp_path / "m.npz"), "--n", "0"]) == 2
    assert "--n must be a positive integer, got 0" in one_line(capsys.readouterr().err)
    assert main(["gradcheck", "--seed", "-1"]) == 2
    assert "--seed must be an integer >= 0, got -1" in one_line(capsys.readouterr().err)


def test_a_damaged_checkpoint_exits_2_with_one_line(tmp_path, capsys):
    from minivae.vae import VAE

    checkpoint.save(tmp_path / "good.npz", VAE(784, 2, hidden=(8,)))
    (tmp_path / "cut.npz").write_bytes((tmp_path / "good.npz").read_bytes()[:500])
    assert main(["sample", str(tmp_path / "cut.npz")]) == 2
    assert "cut.npz is not a readable minivae checkpoint" in one_line(capsys.readouterr().err)
    assert main(["train", "--resume", str(tmp_path / "cut.npz"), "--out", str(tmp_path / "run"),
                 "--quiet"]) == 2
    assert "not a readable minivae checkpoint" in one_line(capsys.readouterr().err)
    assert not (tmp_path / "run").exists()


def test_divergence_exits_1_with_one_line_and_keeps_a_checkpoint_that_resume_checks(tmp_path, capsys):
    out = tmp_path / "run"
    common = ["train", "--likelihood", "gaussian", "--optimizer", "sgd", "--epochs", "1",
              "--hidden", "8", "--z-dim", "2", "--out", str(out), "--quiet"]
    assert main(common + ["--lr", "1e6"]) == 1
    line = one_line(capsys.readouterr().err)
    assert "training diverged" in line and "at step" in line and "learning rate (1000000.0)" in line
    from minivae.runs import checkpoint
    assert checkpoint.load(out / "model.npz")["train_state"]["epoch"] == 0     # loads, before the bad step
    # resuming it with another learning rate would not continue the same run: refused, exit 2
    assert main(common + ["--lr", "1e-3", "--resume", str(out / "model.npz")]) == 2
    assert "--lr 0.001 contradicts the checkpoint" in one_line(capsys.readouterr().err)


def test_resume_takes_the_runs_own_settings_for_options_not_typed(tmp_path, capsys):
    # a run with non-default settings, stopped after 1 of 2 epochs, then resumed with the command
    # the CLI prints (only --resume and --out, plus --epochs): it must continue with batch 300,
    # lr 3e-3, seed 5, not the defaults, and end exactly where an uninterrupted run ends
    from minivae.runs import checkpoint
    settings = ["--batch-size", "300", "--lr", "3e-3", "--seed", "5", "--hidden", "8",
                "--z-dim", "2", "--quiet"]
    assert main(["train", "--epochs", "1", "--out", str(tmp_path / "first")] + settings) == 0
    assert main(["train", "--resume", str(tmp_path / "first" / "model.npz"), "--epochs", "2",
                 "--out", str(tmp_path / "resumed"), "--quiet"]) == 0
    assert main(["train", "--epochs", "2", "--out", str(tmp_path / "straight")] + settings) == 0
    capsys.readouterr()
    resumed = checkpoint.load(tmp_path / "resumed" / "model.npz")
    straight = checkpoint.load(tmp_path / "straight" / "model.npz")
    assert resumed["train_state"]["settings"]["batch_size"] == 300
    for name, value in straight["model"].params.items():
        assert np.array_equal(resumed["model"].params[name], value), name


def test_a_time_limit_ends_the_run_after_the_last_epoch_that_fits_and_resume_finishes_it(
        tmp_path, capsys, monkeypatch):
    # a clock of the command that moves 10 s at every reading: the start, then once after each
    # epoch, so each epoch "takes" 10 s. With --time-limit 0.5 (30 s) epochs 1 and 2 leave room
    # for one more (10 + 10, 20 + 10 <= 30); after epoch 3 another would pass it (30 + 10)
    import time as real_time
    from minivae.cli import train as train_command
    readings = iter(range(10, 10_000, 10))
    monkeypatch.setattr(train_command, "time", type("Clock", (), {
        "perf_counter": staticmethod(lambda: float(next(readings))), "strftime": real_time.strftime}))
    settings = ["--hidden", "8", "--z-dim", "2", "--batch-size", "300", "--quiet"]
    out = tmp_path / "limited"
    assert main(["train", "--epochs", "5", "--time-limit", "0.5", "--out", str(out)] + settings) == 0
    said = capsys.readouterr().out
    assert "3 of 5 epochs took 0.50 minutes" in said and "the run ends with epoch 3" in said, said
    assert "3 of 5 epochs (--time-limit)" in said
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["epochs"], metrics["stopped_by_time_limit"], metrics["time_limit_minutes"]) == (3, True, 0.5)
    assert len(json.loads((out / "history.json").read_text())["epoch"]) == 3
    assert all((out / name).exists() for name in ("samples.png", "elbo.png", "reconstructions.png"))
    monkeypatch.undo()
    # the command it prints goes on to the 5 epochs, exactly where a run without a limit ends
    assert main(["train", "--resume", str(out / "model.npz"), "--out", str(out), "--quiet"]) == 0
    assert main(["train", "--epochs", "5", "--out", str(tmp_path / "straight")] + settings) == 0
    assert json.loads((out / "metrics.json").read_text())["stopped_by_time_limit"] is False
    resumed, straight = (checkpoint.load(p / "model.npz")["model"].params for p in (out, tmp_path / "straight"))
    assert all(np.array_equal(resumed[name], value) for name, value in straight.items())
    # a limit no epoch reaches changes nothing; a limit that is no duration is refused first
    assert main(["train", "--epochs", "2", "--time-limit", "60", "--out", str(tmp_path / "ample")] + settings) == 0
    assert json.loads((tmp_path / "ample" / "metrics.json").read_text())["epochs"] == 2
    for bad in ("0", "-1", "nan", "inf"):
        assert main(["train", "--time-limit", bad, "--out", str(tmp_path / "bad")]) == 2
        assert "--time-limit must be a finite number > 0" in capsys.readouterr().err
        assert not (tmp_path / "bad").exists()


def test_an_exercise_stub_prints_its_hint_and_where_to_write_it_and_exits_1(tmp_path, capsys,
                                                                            monkeypatch):
    # what a student edition's `minivae train` meets before Adam's lines are written
    from minivae import optim

    def stub(self, p, g, m, v):
        raise NotImplementedError("Exercise adam_update: update m and v in place (see docs)")

    monkeypatch.setattr(optim.Adam, "_update", stub)
    code = main(["train", "--epochs", "1", "--hidden", "8", "--z-dim", "2", "--out",
                 str(tmp_path / "run"), "--quiet"])
    assert code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    first, second = err.strip().splitlines()
    assert first == "minivae train: Exercise adam_update: update m and v in place (see docs)"
    assert second.startswith(f"  to do in {__file__}, line ") and second.endswith("in stub")


def test_train_refuses_a_folder_that_holds_a_run_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "model.npz").write_bytes(b"another run's model")
    (out / "notes.txt").write_text("mine")
    small = ["--epochs", "1", "--hidden", "8", "--z-dim", "2", "--batch-size", "3000", "--quiet"]
    assert main(["train", "--out", str(out)] + small) == 2
    line = one_line(capsys.readouterr().err)
    assert f"{out} already holds a run (model.npz)" in line and "--overwrite" in line
    assert (out / "model.npz").read_bytes() == b"another run's model"
    assert main(["train", "--out", str(out), "--overwrite"] + small) == 0
    assert checkpoint.load(out / "model.npz")["train_state"]["epoch"] == 1
    assert (out / "notes.txt").read_text() == "mine"          # only the run's own files replaced
    # resuming the run in its own folder is continuing it, not overwriting it
    assert main(["train", "--out", str(out), "--resume", str(out / "model.npz"), "--epochs", "2",
                 "--quiet"]) == 0
    assert checkpoint.load(out / "model.npz")["train_state"]["epoch"] == 2


def test_sizes_too_large_for_memory_exit_2_in_one_line_before_a_folder_is_made(tmp_path, capsys):
    out = tmp_path / "run"
    for flags, expected in [(["--z-dim", "99999999999"], r"would need about [\d,.]+ GB of memory"),
                            (["--hidden", "999999,999999"], r"would need about [\d,.]+ GB of memory"),
                            (["--batch-size", "100000"], r"--batch-size 100000 is larger than the "
                                                         r"training set \(9000 images\)"),
                            (["--out", ""], "--out must be a path, got an empty one"),
                            (["--download-timeout", "-1"], "--download-timeout must be a finite "
                                                           "number > 0")]:
        args = ["train", "--quiet", *flags] if flags[0] == "--out" else \
            ["train", "--out", str(out), "--quiet", *flags]
        assert main(args) == 2, flags
        assert re.search(expected, one_line(capsys.readouterr().err)), flags
        assert not out.exists()
    model = tmp_path / "m.npz"
    from minivae.vae import VAE
    checkpoint.save(model, VAE(784, 2, hidden=(8,)))
    assert main(["sample", str(model), "--n", "100000000"]) == 2
    assert re.search(r"sample --n 100000000 would need about [\d,.]+ GB of memory",
                     one_line(capsys.readouterr().err))


def test_sample_into_a_folder_writes_samples_png_there_and_says_so(tmp_path, capsys):
    from minivae.vae import VAE
    checkpoint.save(tmp_path / "m.npz", VAE(784, 2, hidden=(8,)))
    folder = tmp_path / "figures"
    folder.mkdir()
    assert main(["sample", str(tmp_path / "m.npz"), "--n", "4", "--out", str(folder)]) == 0
    assert f"to {folder / 'samples.png'}" in capsys.readouterr().out
    assert os.listdir(folder) == ["samples.png"] and not (tmp_path / "figures.png").exists()
    for bad, expected in [(str(tmp_path / "x.jpg"), "--out must be a .png file or an existing "
                                                    "folder"), ("", "--out must be a path")]:
        assert main(["sample", str(tmp_path / "m.npz"), "--out", bad]) == 2
        assert expected in one_line(capsys.readouterr().err)


def test_the_download_timeout_reaches_load_mnist(tmp_path, capsys, monkeypatch):
    from minivae.data import datasets
    seen = {}

    def load_mnist(root, **kwargs):
        seen.update(kwargs)
        raise FileNotFoundError("stop here")

    monkeypatch.setattr(datasets, "load_mnist", load_mnist)
    assert main(["train", "--data", str(tmp_path), "--download", "--download-timeout", "7",
                 "--out", str(tmp_path / "run")]) == 2
    assert seen == {"download": True, "timeout": 7.0} and not (tmp_path / "run").exists()


@pytest.mark.parametrize("timeout", ["-1", "0", "nan"])
def test_assignment_grade_refuses_a_timeout_that_is_not_positive(timeout, capsys):
    assert main(["assignment", "grade", "--timeout", timeout]) == 2
    assert "--timeout must be a finite number > 0" in one_line(capsys.readouterr().err)


def test_a_full_disk_while_writing_json_leaves_no_temporary(tmp_path, monkeypatch):
    import errno
    from minivae.cli import common

    def dump(obj, f, **kwargs):
        f.write('{"half')
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(common.json, "dump", dump)
    with pytest.raises(OSError, match="No space left"):
        common.write_json(str(tmp_path / "metrics.json"), {"a": 1})
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("error, code, expected", [
    (KeyboardInterrupt(), 130, "minivae gradcheck: interrupted"),
    (MemoryError(), 2, "minivae gradcheck: error: not enough memory for these sizes"),
])
def test_ctrl_c_and_memory_errors_are_one_line_not_a_traceback(monkeypatch, capsys, error, code,
                                                               expected):
    from minivae.cli import gradcheck

    def run(args):
        raise error

    monkeypatch.setattr(gradcheck, "run", run)
    assert main(["gradcheck"]) == code
    assert one_line(capsys.readouterr().err) == expected


# ---------------------------------------------------------------------------
# every option checked before anything is created; no contradiction accepted in silence
# ---------------------------------------------------------------------------

from hypothesis import given, settings, strategies as st       # noqa: E402

from minivae import presets                                      # noqa: E402
from minivae.cli.main import build_parser                        # noqa: E402


@pytest.mark.parametrize("argv, message", [
    (["--weight-decay", "-1"], "--weight-decay must be a finite number >= 0, got -1.0"),
    (["--estimator", "iwae", "--warmup-epochs", "2"], "--warmup-epochs must be 0 with --estimator iwae"),
    (["--init-std", "0"], "--init-std must be a finite number > 0, got 0.0"),
    (["--resume", ""], "--resume must be the path of a run's model.npz, got an empty one"),
    (["--resume", " "], "--resume must be the path of a run's model.npz, got an empty one"),
])
def test_train_refuses_bad_options_before_creating_the_run_folder(tmp_path, capsys, argv, message):
    out = tmp_path / "o1"
    assert main(["train", *argv, "--out", str(out), "--quiet"]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


@settings(max_examples=25, deadline=None)
@given(option=st.sampled_from(["--lr", "--weight-decay", "--init-std", "--download-timeout"]),
       value=st.one_of(st.floats(max_value=0), st.just(float("nan")),
                       st.just(float("inf"))))
def test_train_refuses_every_bad_number_before_creating_anything(tmp_path_factory, option, value):
    if option == "--weight-decay" and value == 0:
        return                                           # lambda = 0 is no prior: allowed
    out = tmp_path_factory.mktemp("bad") / "o1"
    assert main(["train", f"{option}={value!r}", "--out", str(out), "--quiet", "--epochs", "1"]) == 2
    assert not out.exists()


@pytest.fixture(scope="module")
def one_epoch_run(tmp_path_factory):
    """A finished one-epoch run of a small model, and an interrupted-looking copy of its folder."""
    out = tmp_path_factory.mktemp("runs") / "run"
    assert main(["train", "--epochs", "1", "--hidden", "16", "--z-dim", "2", "--out", str(out),
                 "--quiet"]) == 0
    return out / "model.npz"


@pytest.mark.parametrize("argv, message", [
    (["--z-dim", "3"], "--z-dim 3 contradicts the checkpoint .* z_dim=2"),
    (["--hidden", "32"], r"--hidden \(32,\) contradicts the checkpoint .* hidden=\(16,\)"),
    (["--dtype", "float64"], "--dtype 'float64' contradicts the checkpoint .* dtype='float32'"),
    (["--likelihood", "gaussian"], "--likelihood 'gaussian' contradicts .* likelihood='bernoulli'"),
    (["--activation", "tanh"], "--activation 'tanh' contradicts .* activation='relu'"),
    (["--init-std", "0.01"], "--init-std only sets a new model's initial weights"),
    (["--batch-size", "50"], "--batch-size 50 contradicts the checkpoint .* batch_size=100"),
    ([], "nothing left to train: .* has finished 1 of --epochs 1; pass a larger --epochs"),
])
def test_resume_refuses_options_that_contradict_the_checkpoint(one_epoch_run, tmp_path, capsys, argv,
                                                               message):
    out = tmp_path / "resumed"
    assert main(["train", "--resume", str(one_epoch_run), "--epochs", "2", "--out", str(out),
                 "--quiet", *argv] if argv else
                ["train", "--resume", str(one_epoch_run), "--out", str(out), "--quiet"]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not out.exists()


def test_resume_onto_other_data_of_the_same_size_is_refused(tmp_path, capsys):
    from idx_files import fake_mnist, write_fake_mnist
    for seed in (0, 1):
        (tmp_path / f"data{seed}").mkdir()
        write_fake_mnist(tmp_path / f"data{seed}", fake_mnist(n_train=30, n_test=10, seed=seed))
    common = ["--batch-size", "10", "--hidden", "8", "--z-dim", "2", "--quiet"]
    assert main(["train", "--epochs", "1", "--data", str(tmp_path / "data0"),
                 "--out", str(tmp_path / "run"), *common]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "run" / "model.npz"), "--epochs", "2",
                 "--data", str(tmp_path / "data1"), "--out", str(tmp_path / "resumed"), *common]) == 2
    assert "was trained on other data" in capsys.readouterr().err
    assert not (tmp_path / "resumed").exists()


def test_every_option_names_its_default_in_help():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name in ("train", "reproduce", "bench"):
        for action in commands[name]._actions:
            if action.option_strings and action.default not in (None, "==SUPPRESS==") \
                    and not isinstance(action.default, bool):
                formatted = commands[name]._get_formatter()._expand_help(action)
                assert "default" in formatted, (name, action.option_strings, formatted)


def test_the_cli_and_train_take_their_defaults_from_the_presets():
    import inspect

    from minivae.training import train
    standard = presets.STANDARD["full"]
    defaults = {k: p.default for k, p in inspect.signature(train).parameters.items()}
    for key in ("epochs", "batch_size", "optimizer", "lr", "n_samples", "estimator",
                "warmup_epochs", "seed", "weight_decay"):
        assert defaults[key] == standard[key], key
    args = build_parser().parse_args(["train"])
    for key, value in standard.items():
        assert getattr(args, key) == value, key


def test_preset_hour_needs_full_mnist_and_sets_its_recipe_under_typed_options(tmp_path, capsys):
    from idx_files import fake_mnist, write_fake_mnist
    out = tmp_path / "o1"
    assert main(["train", "--preset", "hour", "--out", str(out), "--quiet"]) == 2
    assert "--preset hour is a recipe for full MNIST" in capsys.readouterr().err
    assert not out.exists()
    (tmp_path / "mnist").mkdir()
    write_fake_mnist(tmp_path / "mnist", fake_mnist(n_train=120, n_test=20))
    # the recipe, with two of its options typed over it (a typed option wins)
    assert main(["train", "--preset", "hour", "--data", str(tmp_path / "mnist"), "--epochs", "1",
                 "--n-samples", "2", "--out", str(out), "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    hour = presets.HOUR["full"]
    assert metrics["model"]["hidden"] == list(hour["hidden"]) and metrics["model"]["z_dim"] == hour["z_dim"]
    assert metrics["settings"]["estimator"] == hour["estimator"] and metrics["settings"]["n_samples"] == 2
    assert metrics["settings"]["lr_final"] == hour["lr_final"] and metrics["epochs"] == 1
    assert checkpoint.load(out / "model.npz")["train_state"]["settings"]["lr_final"] == hour["lr_final"]


def test_train_compares_a_run_of_a_recipe_with_its_ladder_and_only_such_a_run(tmp_path, capsys,
                                                                              monkeypatch):
    from minivae.data.datasets import load_mnist
    from minivae.runs.run_control import data_fingerprint
    fingerprint = data_fingerprint(load_mnist().train.x.astype(np.float32))
    ladder = {"data": fingerprint, "test_elbo": {1: (-150.0, 2.0, -300.0, -140.0, 3)}}
    monkeypatch.setitem(presets.LADDER, "standard", ladder)
    assert main(["train", "--epochs", "1", "--out", str(tmp_path / "a")]) == 0
    captured = capsys.readouterr()
    line = re.search(r"after 1 epoch: test ELBO (-\d+\.\d+); runs of this recipe reach -150.00 \+- 2.00 "
                     r"here \(3 seeds, -300.00 to -140.00; docs/ladder.md\): within their range", captured.out)
    assert line, captured.out
    history = json.loads((tmp_path / "a" / "history.json").read_text())
    assert float(line.group(1)) == round(history["test_elbo"][0], 2)
    assert "runs of this recipe" in captured.err           # and in the progress, after the epoch
    # another learning rate is another recipe: no comparison
    assert main(["train", "--epochs", "1", "--lr", "0.002", "--out", str(tmp_path / "b")]) == 0
    assert "runs of this recipe" not in capsys.readouterr().out


@pytest.mark.parametrize("value, verdict", [
    (-120.0, "within their range"),
    # t(0.975, 3 df) = 3.1824, so the interval is -120 +- 3.1824 * 3 * sqrt(5/4) = -120 +- 10.67
    (-130.5, "0.50 nats below their lowest, inside the 95 % interval of a new run (-130.67 to -109.33)"),
    (-131.0, "1.00 nats below their lowest, outside the 95 % interval of a new run (-130.67 to "
             "-109.33): worth a look"),
    (-109.5, "0.50 nats above their highest, inside the 95 % interval of a new run (-130.67 to -109.33)")])
def test_the_ladder_comparison_says_where_a_run_lies(value, verdict):
    from minivae.cli.train import compare_with_ladder
    entry = {"test_elbo": {13: (-120.0, 3.0, -130.0, -110.0, 4), 400: (-90.0, 0.0, -90.0, -90.0, 1)}}
    line = compare_with_ladder(entry, 13, value)
    assert line.startswith(f"after 13 epochs: test ELBO {value:.2f}; runs of this recipe reach -120.00 "
                           "+- 3.00 here (4 seeds, -130.00 to -110.00")
    assert line.endswith(verdict)
    assert compare_with_ladder(entry, 400, value).endswith("a run of this recipe reached -90.00 here "
                                                            "(one seed; docs/ladder.md)")
    assert compare_with_ladder(entry, 12, value) is None and compare_with_ladder(None, 13, value) is None


@pytest.mark.parametrize("n", [3, 5])
def test_one_more_run_falls_inside_the_ladders_interval_95_percent_of_the_time(n):
    # n seeds and one more run, all N(-100, 10^2), 20,000 times (seed 0): the new run should
    # land inside the interval built from the n seeds with probability 0.95 (a prediction
    # interval); the tolerance is 4 standard errors of that proportion, sqrt(0.95 * 0.05 / 20000)
    from minivae.cli.train import compare_with_ladder
    trials = 20_000
    runs = np.random.default_rng(0).normal(-100.0, 10.0, size=(trials, n + 1))
    inside = 0
    for *seeds, new in runs.tolist():
        seeds = np.array(seeds)
        entry = {"test_elbo": {1: (seeds.mean(), seeds.std(ddof=1), seeds.min(), seeds.max(), n)}}
        line = compare_with_ladder(entry, 1, new)
        inside += "within their range" in line or "inside the 95 % interval" in line
    assert abs(inside / trials - 0.95) < 4 * math.sqrt(0.95 * 0.05 / trials), inside / trials


def test_the_ladders_in_the_presets_are_the_measured_ones():
    import pathlib

    from minivae.experiments.ladder import rungs
    figures = pathlib.Path(__file__).resolve().parent.parent / "docs" / "figures"
    for name, entry in presets.LADDER.items():
        measured = json.loads((figures / f"ladder-{name}.json").read_text())["results"]
        assert measured["data"] == entry["data"]
        summary = rungs(measured["runs"], measured.get("long_runs", ()))
        assert set(entry["test_elbo"]) == set(summary), name
        for epoch, kept in entry["test_elbo"].items():
            s = summary[epoch]
            assert kept == tuple(round(s[k], 2) for k in ("mean", "sd", "min", "max")) + (s["n"],), (name, epoch)
