"""Tests of minivae.experiments.reproduce and `minivae reproduce`: the --quick runs end to end, the outputs' shape.

The quick runs are smoke tests on the embedded subset: they show the code runs and writes
its JSON and figure, not the papers' results (docs/reproduction.md).
"""
import json

import numpy as np
import pytest

from minivae.experiments import reproduce
from minivae.cli.main import main


def test_eval_points_are_log_spaced_multiples_of_the_batch_ending_at_the_budget():
    points = reproduce.eval_points(100, 10**6, 5)
    assert points == [100, 1000, 10000, 100000, 1000000]
    assert reproduce.eval_points(100, 50, 3) == [100]


def test_eval_points_can_start_later_and_stay_within_the_budget():
    assert reproduce.eval_points(100, 10**5, 3, first=1000) == [1000, 10000, 100000]
    assert reproduce.eval_points(100, 500, 4, first=1000) == [1000]     # first beyond budget


def test_burda_schedule_gives_3_to_the_i_epochs_at_each_rate():
    # Burda et al. (2016, Sec. 5): 3^i epochs at 1e-3 * 10^(-i/7), i = 0..7, 3,280 epochs
    stages = [round(-7 * np.log10(reproduce.burda_lr(e) / 1e-3)) for e in range(3280)]
    assert [stages.count(i) for i in range(8)] == [3 ** i for i in range(8)]
    assert stages == sorted(stages)                       # the rate only falls
    assert reproduce.burda_lr(10**5) == pytest.approx(1e-4)     # the last rate is kept


def test_fig2_chooses_the_step_size_with_the_best_training_bound_and_saves_every_run():
    rng = np.random.default_rng(1)
    x = (rng.uniform(size=(300, 16)) < np.linspace(0.05, 0.95, 16)).astype(float)
    saved = []
    results = reproduce.fig2(x, x[:100], z_dims=(2,), budget=1000, step_sizes=(0.001, 0.1),
                             trial=500, hidden=10, n_points=2, n_eval=100,
                             on_result=lambda r: saved.append({z: dict(c) for z, c in r.items()}))
    assert [list(r["2"]) for r in saved] == [["aevb"], ["aevb", "wake_sleep"]]
    for method, curve in results["2"].items():
        bounds = curve["step_size_trial"]["train"]
        assert set(bounds) == {"0.001", "0.1"}
        assert curve["lr"] == float(max(bounds, key=bounds.get)), method
    # the same run at the chosen step size, without the choice, gives the same curve
    again = reproduce.fig2_run("aevb", x, x[:100], 2, budget=1000, hidden=10, n_points=2,
                               n_eval=100, lr=results["2"]["aevb"]["lr"])
    assert again["test"] == results["2"]["aevb"]["test"]


def test_fig2_run_records_a_rising_bound_for_both_methods():
    rng = np.random.default_rng(0)
    x = (rng.uniform(size=(300, 16)) < np.linspace(0.05, 0.95, 16)).astype(float)
    for method in reproduce.METHODS:
        curve = reproduce.fig2_run(method, x, x[:100], 2, budget=3000, hidden=10, lr=0.1,
                                   n_points=3, n_eval=100)
        assert curve["examples"] == [100, 500, 3000]
        assert curve["test"][-1] > curve["test"][0], method
    with pytest.raises(ValueError, match=r"method must be one of \[.*\], got"):
        reproduce.fig2_run("em", x, x, 2, budget=100)


def test_reproduce_fig2_quick_writes_results_and_figure(tmp_path, capsys):
    # quick: N_z in {3, 20}, 6000 examples each, the embedded subset
    assert main(["reproduce", "fig2", "--quick", "--out", str(tmp_path)]) == 0
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["mode"] == "quick" and set(saved["results"]) == {"3", "20"} and saved["complete"]
    for curves in saved["results"].values():
        assert set(curves) == {"aevb", "wake_sleep"}
        assert curves["aevb"]["examples"][-1] == 6000
        assert all(np.isfinite(curves[m]["test"]).all() for m in curves)
    assert (tmp_path / "fig2.png").stat().st_size > 1000
    assert "AEVB" in capsys.readouterr().out


def test_reproduce_iwae_quick_writes_nll_and_active_units(tmp_path):
    assert main(["reproduce", "iwae", "--quick", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())["results"]
    assert set(results) == {"vae", "iwae_k5"}
    for r in results.values():
        assert 0 < r["nll"] < 550 and 0 <= r["active_units"] <= 20
        assert r["nll"] <= -r["test_elbo"] + 1.0       # log p(x) estimate above the ELBO
    # the paired difference is the difference of the two NLLs (same images)
    assert results["iwae_k5"]["nll_minus_vae"] == pytest.approx(
        results["iwae_k5"]["nll"] - results["vae"]["nll"], abs=1e-9)
    assert 0 < results["iwae_k5"]["nll_minus_vae_se"] < results["vae"]["nll_se"]
    assert (tmp_path / "iwae.png").stat().st_size > 1000


def test_reproduce_refuses_an_option_its_experiment_does_not_have(tmp_path, capsys):
    assert main(["reproduce", "fig2", "--quick", "--epochs", "3", "--out", str(tmp_path)]) == 2
    assert "--epochs does not apply to fig2" in capsys.readouterr().err
    assert main(["reproduce", "iwae", "--quick", "--n-points", "3", "--out", str(tmp_path)]) == 2
    assert not (tmp_path / "results.json").exists()


@pytest.mark.parametrize("argv, message", [
    (["fig2", "--ks", "50"], "--ks does not apply to fig2"),
    (["fig2", "--k", "50"], "--ks does not apply to fig2"),          # argparse's abbreviation
    (["fig3", "--schedule", "fixed"], "--schedule does not apply to fig3"),
    (["iwae", "--lr", "0.5"], "--lr does not apply to iwae"),
    (["iwae", "--budget", "100"], "--budget does not apply to iwae"),
    (["fig2", "--lr", "0"], "--lr must be a finite number > 0, got 0.0"),
    (["fig3", "--lr", "nan"], "--lr must be a finite number > 0, got nan"),
    (["iwae", "--ks", "5", "0"], "--ks must be a positive integer, got 0"),
    (["iwae", "--epochs", "0"], "--epochs must be a positive integer, got 0"),
    (["fig2", "--out", " "], "--out must be a path"),
])
def test_reproduce_refuses_bad_or_foreign_options_before_creating_anything(tmp_path, capsys, argv,
                                                                           message):
    out = tmp_path / "never"
    argv = ["reproduce", *argv, "--quick"] + ([] if "--out" in argv else ["--out", str(out)])
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_reproduce_refuses_a_bad_budget(tmp_path):
    assert main(["reproduce", "fig2", "--quick", "--budget", "0", "--out", str(tmp_path)]) == 2


def test_reproduce_ladder_quick_seed_s_is_minivae_train_with_seed_s(tmp_path, capsys):
    assert main(["reproduce", "ladder", "--quick", "--seed", "3", "--out", str(tmp_path / "l")]) == 0
    saved = json.loads((tmp_path / "l" / "results.json").read_text())
    runs = saved["results"]["runs"]
    assert [r["seed"] for r in runs] == [3, 4] and saved["complete"]
    assert all(0 < r["nll"] < -r["test_elbo"][-1] + 1.0 for r in runs)   # log p(x) above the ELBO
    assert main(["train", "--epochs", "2", "--seed", "4", "--out", str(tmp_path / "t"), "--quiet"]) == 0
    history = json.loads((tmp_path / "t" / "history.json").read_text())
    assert runs[1]["test_elbo"] == history["test_elbo"]                  # the same run, exactly
    rung = saved["results"]["rungs"]["2"]
    values = [r["test_elbo"][1] for r in runs]
    assert rung["mean"] == pytest.approx(np.mean(values)) and rung["sd"] == pytest.approx(np.std(values, ddof=1))
    assert rung["min"] == min(values) and rung["max"] == max(values) and rung["n"] == 2
    assert (tmp_path / "l" / "ladder.png").stat().st_size > 1000


@pytest.mark.parametrize("argv, message", [
    (["ladder", "--recipe", "hour"], "--recipe hour is a recipe for full MNIST, not the embedded 10,000-image subset: pass --data DIR"),
    (["ladder", "--seeds", "0"], "--seeds must be a positive integer, got 0"),
    (["ladder", "--eval-k", "0"], "--eval-k must be a positive integer, got 0"),
    (["fig2", "--seeds", "3"], "--seeds does not apply to fig2"),
    (["iwae", "--recipe", "standard"], "--recipe does not apply to iwae"),
    (["ladder", "--ks", "5"], "--ks does not apply to ladder"),
    (["iwae", "--stop-after", "3"], "--stop-after does not apply to iwae"),
    (["ladder", "--stop-after", "0"], "--stop-after must be a positive integer, got 0"),
])
def test_reproduce_ladder_refuses_bad_or_foreign_options_before_creating_anything(tmp_path, capsys, argv,
                                                                                  message):
    out = tmp_path / "never"
    assert main(["reproduce", *argv, "--quick", "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_a_ladder_stopped_early_keeps_the_recipes_schedule_and_records_the_epochs_it_trained(tmp_path):
    from minivae.data.datasets import load_mnist
    from minivae.experiments.ladder import ladder
    from minivae.training import train
    from minivae.vae import VAE
    data = load_mnist()
    x_train, x_test = data.train.x[:500], data.test.x[:100]
    recipe = {"z_dim": 3, "hidden": (16,), "activation": "relu", "likelihood": "bernoulli",
              "dtype": "float32", "init_std": None, "epochs": 5, "batch_size": 50, "optimizer": "adam",
              "lr": 3e-3, "lr_final": 1e-4, "n_samples": 1, "estimator": "B", "warmup_epochs": 0,
              "weight_decay": 0.0}
    results = ladder(x_train, x_test, recipe, seeds=1, first_seed=2, stop_after=2)
    assert len(results["runs"][0]["test_elbo"]) == 2 and set(results["rungs"]) == {1, 2}
    # the same two epochs as a whole run of the recipe (whose rate decays over 5 epochs)
    model = VAE(784, 3, hidden=(16,), dtype="float32", seed=2)
    history = train(model, x_train, x_test, epochs=5, batch_size=50, lr=3e-3, lr_final=1e-4, seed=2,
                    verbose=False)
    assert results["runs"][0]["test_elbo"] == history["test_elbo"][:2]
