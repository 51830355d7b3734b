"""Tests of the minivae command: a short real run writes everything; user errors exit 2."""
import json
import subprocess
import sys

from minivae.cli import main


def test_train_writes_model_history_metrics_and_figures(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--epochs", "2", "--hidden", "64", "--z-dim", "2", "--out", str(out), "--quiet"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and -545 < metrics["test_elbo"] < -100
    assert {"train_elbo", "seconds"} <= set(metrics)
    history = json.loads((out / "history.json").read_text())
    assert len(history["valid_elbo"]) == 2
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
