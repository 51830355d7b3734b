"""The ladder: what runs of a recipe reach after given epochs, over several seeds.

"What is a good loss value?"  A run of ``minivae train`` records its test ELBO after
every epoch; the ladder is that value after 1, 4, 13, 40, ... epochs for runs of the
same recipe (model, training settings and data) started from different seeds: its
mean, standard deviation, lowest and highest.  minivae.presets.LADDER keeps the
ladders of the standard model and of the one-hour model, and ``minivae train`` compares
a run of either recipe with them ("after 13 epochs: -94.1; runs of this recipe reach
-93.8 +/- 0.3 here").  ``minivae reproduce ladder`` measures one (docs/ladder.md).

Seed s of the ladder is exactly ``minivae train --seed s`` of the recipe: the same
initial weights, minibatches, binarisations and noise, so the same history.
"""
import math

import numpy as np

from minivae.utils.validation import check_count
from minivae.data.preprocessing import fixed_binarization
from minivae.evaluate import log_likelihood
from minivae.utils.progress import Progress
from minivae.training import train
from minivae.runs.run_control import data_fingerprint
from minivae.vae import VAE

# the rungs (epochs) a ladder reports, where a run has them (30: the standard run's length)
RUNGS = (1, 4, 13, 30, 40, 100, 200, 400)
MODEL_KEYS = ("z_dim", "hidden", "activation", "likelihood", "dtype", "init_std")
TRAIN_KEYS = ("epochs", "batch_size", "optimizer", "lr", "lr_final", "n_samples", "estimator",
              "warmup_epochs", "weight_decay")


def summarize(values):
    """Mean, standard deviation (ddof = 1; 0 for one value), lowest, highest and count of ``values``."""
    values = np.asarray(values, dtype=float)
    sd = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return {"mean": float(values.mean()), "sd": sd, "min": float(values.min()),
            "max": float(values.max()), "n": int(len(values))}


def ladder(x_train, x_test, recipe, *, seeds, first_seed=0, eval_k=None, n_eval=None, stop_after=None,
           progress=None, on_result=None):
    """Train ``recipe`` with seeds first_seed, ..., first_seed + seeds - 1; the test ELBO at each rung.

    Parameters
    ----------
    recipe : dict
        The model and training settings (the keys of minivae.presets.STANDARD; the
        seed is the ladder's).
    x_train, x_test : arrays (N, P), (N_test, P)
        The data ``minivae train`` would use (x_test is binarised with each run's seed,
        as there).
    eval_k, n_eval : int, optional
        Also the test NLL at the end of each run: -mean log p(x) by importance sampling
        with eval_k samples on the first n_eval test images (all by default).
    stop_after : int, optional
        Train only the first stop_after epochs of each run (of the recipe's schedule: a
        decaying rate still decays over the recipe's epochs), for the lower rungs of a long
        recipe.

    Returns
    -------
    results : dict
        "recipe", "data" (the training data's fingerprint), "runs" (per seed: the test
        ELBO of every epoch, and the NLL), "rungs" ({epoch: summarize(...)}), "nll"
        (summarize of the NLLs, or None); ``on_result(results)`` is called after every run.
    """
    seeds = check_count(seeds, "seeds")
    first_seed = check_count(first_seed, "first_seed", 0)
    if eval_k is not None:
        eval_k = check_count(eval_k, "eval_k")
    epochs = recipe["epochs"] if stop_after is None else min(check_count(stop_after, "stop_after"),
                                                             recipe["epochs"])
    model_settings = {k: recipe[k] for k in MODEL_KEYS}
    train_settings = {k: recipe[k] for k in TRAIN_KEYS}
    fingerprint = None
    runs = []
    for seed in range(first_seed, first_seed + seeds):
        model = VAE(x_train.shape[1], seed=seed, **model_settings)
        if fingerprint is None:
            fingerprint = data_fingerprint(model.check_data(x_train, "x_train"))
        report = Progress(progress, f"ladder: seed {seed}", unit="epochs")
        # on_step stops one step into the epoch after stop_after, so that epoch's test ELBO is in
        history = train(model, x_train, x_test, seed=seed, verbose=False, **train_settings,
                        on_epoch=lambda epoch, history: report.update(
                            epoch, epochs, f"test ELBO {history['test_elbo'][-1]:8.2f}"),
                        on_step=lambda model, examples: examples > epochs * len(x_train))
        run = {"seed": seed, "test_elbo": [float(v) for v in history["test_elbo"]],
               "seconds": float(sum(history["seconds"])), "nll": None}
        if eval_k is not None:
            x_eval = fixed_binarization(model.check_data(x_test, "x_test")[:n_eval], seed)
            ll = log_likelihood(model, x_eval, k=eval_k, rng=np.random.default_rng(seed + 3),
                                progress=progress)
            run["nll"] = -float(ll.mean())
            run["nll_se"] = float(ll.std(ddof=1) / math.sqrt(len(ll))) if len(ll) > 1 else 0.0
        runs.append(run)
        report.say(f"ladder: seed {seed}: test ELBO {run['test_elbo'][-1]:.2f} after "
                   f"{len(run['test_elbo'])} epochs"
                   + ("" if run["nll"] is None else f", test NLL {run['nll']:.2f} (k = {eval_k})")
                   + f", {run['seconds']:.0f} s of training")
        results = {"recipe": {**model_settings, **train_settings}, "data": fingerprint, "runs": runs,
                   "rungs": rungs(runs),
                   "nll": summarize([r["nll"] for r in runs]) if eval_k is not None else None}
        if on_result is not None:
            on_result(results)
    return results


def rungs(runs, long_runs=()):
    """{epoch: summarize(test ELBO after that epoch over the runs that reached it)}: RUNGS, last epochs.

    ``runs`` hold the test ELBO of every epoch (``test_elbo``, a list); ``long_runs`` hold
    it at some epochs only (``test_elbo_at``, {"epoch": value}: a long run whose models
    were saved at those epochs and evaluated afterwards, as ``minivae train`` would have).
    """
    values = {}
    for run in runs:
        for e in sorted(set(RUNGS) | {len(run["test_elbo"])}):     # and the run's last epoch
            if e <= len(run["test_elbo"]):
                values.setdefault(e, []).append(run["test_elbo"][e - 1])
    for run in long_runs:
        for e, value in run["test_elbo_at"].items():
            values.setdefault(int(e), []).append(value)
    return {e: summarize(values[e]) for e in sorted(values)}


def plot_ladder(results, path):
    """Test ELBO against epochs, one line per seed, the rungs' mean +/- sd marked; writes ``path``."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 3.6))
    ax = fig.add_subplot(1, 1, 1)
    seeds = [str(run["seed"]) for run in results["runs"]]
    for i, run in enumerate(results["runs"]):
        ax.plot(np.arange(1, len(run["test_elbo"]) + 1), run["test_elbo"], color="0.6", linewidth=0.8,
                label=f"seed{'s' * (len(seeds) > 1)} {', '.join(seeds)}: every epoch" if i == 0 else None)
    for run in results.get("long_runs", ()):
        epochs = sorted(run["test_elbo_at"], key=int)
        ax.plot([int(e) for e in epochs], [run["test_elbo_at"][e] for e in epochs], "s--", color="0.4",
                markersize=3, linewidth=0.8, label=f"seed {run['seed']}: these epochs only")
    epochs = sorted(results["rungs"], key=int)
    ax.errorbar([int(e) for e in epochs], [results["rungs"][e]["mean"] for e in epochs],
                yerr=[results["rungs"][e]["sd"] for e in epochs], fmt="o", color="tab:blue",
                capsize=3, label="mean +/- sd over the seeds")
    ax.set_xscale("log")
    # the first epoch's values can lie far below the rest: the range is the rest's and the rungs'
    shown = [v for run in results["runs"] for v in run["test_elbo"][1:]]
    shown += [v for run in results.get("long_runs", ()) for v in run["test_elbo_at"].values()]
    shown += [r["mean"] - r["sd"] for r in results["rungs"].values()]
    top, bottom = max(shown), min(shown)
    ax.set_ylim(bottom - 0.05 * (top - bottom + 1), top + 0.05 * (top - bottom + 1))
    ax.set_xlabel("epochs")
    ax.set_ylabel("test ELBO (nats)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
