"""Tests of minivae.experiments.reproduce_fig3 and `minivae reproduce fig3`: the --quick run end to end.

The quick run is a smoke test on the embedded subset (docs/reproduction.md): it shows the
pipeline runs and that its two estimates of log p(x) are consistent, not the paper's result.
"""
import io
import json
import math

import numpy as np

from minivae.experiments import reproduce_fig3
from minivae.cli.main import main


def test_reproduce_fig3_quick_writes_consistent_estimates_and_the_figure(tmp_path, capsys):
    # quick: N_train in {1000, 9000} of the embedded subset, 1000 examples per run, log p(x)
    # on 4 training and 4 test images after 100 and 1000 examples
    assert main(["reproduce", "fig3", "--quick", "--out", str(tmp_path)]) == 0
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["mode"] == "quick" and saved["complete"]
    assert set(saved["results"]) == {"1000", "9000"}
    for n, curves in saved["results"].items():
        assert set(curves) == {"aevb", "wake_sleep"}
        for method, c in curves.items():
            assert c["examples"] == [100, 1000] and c["n_train"] == int(n)
            for split in ("train", "test"):
                hmc, hmc_se = np.array(c[f"hmc_{split}"]), np.array(c[f"hmc_{split}_se"])
                is_, is_se = np.array(c[f"is_{split}"]), np.array(c[f"is_{split}_se"])
                assert np.isfinite(hmc).all() and np.isfinite(is_).all() and (hmc < 0).all()
                # importance sampling is biased down (Jensen), the App. D estimate up (when
                # HMC mixes): IS <= HMC up to their noise.  4 standard errors of the
                # difference, from the two estimators' own per-image errors; the smallest
                # z over 7 seeds' 16 comparisons each was -2.2.  Fixed seed.
                z = (hmc - is_) / np.hypot(hmc_se, is_se)
                assert (z > -4).all(), (f"N_train={n} {method} {split}: HMC {hmc} below IS {is_} "
                                        f"by more than 4 standard errors (z = {z})")
                # the step size adapted: the acceptance rate is near its target, 0.9
                assert all(0.7 < a <= 1 for a in c[f"hmc_{split}_accept"]), c[f"hmc_{split}_accept"]
    assert (tmp_path / "fig3.png").stat().st_size > 1000
    assert "(HMC / IS)" in capsys.readouterr().out


def test_fig3_cuts_n_train_to_the_data_and_records_every_estimate():
    rng = np.random.default_rng(0)
    x = (rng.uniform(size=(60, 16)) < np.linspace(0.1, 0.9, 16)).astype(float)
    stream = io.StringIO()
    # minibatches of 10: train takes at most the training set (20) per minibatch
    results = reproduce_fig3.fig3(x, x[:10], n_trains=(20, 500), budget=200, n_points=2,
                                  n_eval=3, is_k=10, trial=100, progress=stream, batch_size=10,
                                  first=100,
                                  hmc={"n_chains": 4, "n_burn": 2, "n_draws": 2, "n_leapfrog": 2})
    assert set(results) == {"20", "60"} and "N_train = 500 is more than the 60" in stream.getvalue()
    curve = results["20"]["wake_sleep"]
    assert curve["n_train"] == 20 and curve["examples"] == [100, 200]
    for key in ("hmc_train", "hmc_test_se", "is_test", "is_train_se", "hmc_test_accept"):
        assert len(curve[key]) == 2 and all(math.isfinite(v) for v in curve[key]), key
