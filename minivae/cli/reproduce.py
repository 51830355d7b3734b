"""`minivae reproduce fig2|fig3|iwae|ladder`: rerun an experiment into a run folder (JSON + PNG).

The experiments::

    fig2   Kingma & Welling (2013), Fig. 2: AEVB vs wake-sleep lower bounds against
           training examples seen, for N_z in {3, 5, 10, 20, 200}
    fig3   Kingma & Welling (2013), Fig. 3: AEVB vs wake-sleep marginal log-likelihood
           (HMC estimator of App. D, and importance sampling) for N_z = 3, N_train 1000, 50000
    iwae   Burda et al. (2016), Table 1: VAE vs IWAE (k = 5) test NLL and active units
    ladder what runs of `minivae train`'s standard model (or --recipe hour) reach after
           1, 4, 13, 40, ... epochs, over several seeds (minivae.presets.LADDER)

``--quick`` runs a small version on the embedded 10k subset in under a minute (what the
tests and CI run); it shows that the code runs end to end, not the papers' numbers.
docs/reproduction.md gives the full commands and compares the results with the papers.
"""
import argparse
import os
import sys
import time

from minivae import presets
from minivae.cli.common import check_counts, check_out, write_json
from minivae.cli.train import RECIPES, check_recipe_data   # the recipes a ladder measures: train's presets
from minivae.utils.validation import check_count, check_number

# the options each experiment takes (each named as the experiment function's argument);
# another experiment's option is an error, not silently ignored
OPTIONS = {"fig2": ("budget", "n_points", "n_eval", "lr"),
           "fig3": ("budget", "n_points", "n_eval", "lr"),
           "iwae": ("epochs", "n_eval", "ks", "schedule"),
           "ladder": ("recipe", "seeds", "epochs", "eval_k", "n_eval", "stop_after")}
PRESETS = {"fig2": presets.FIG2, "fig3": presets.FIG3, "iwae": presets.IWAE, "ladder": presets.LADDER_RUNS}


def experiment_settings(args, mode):
    """The experiment's settings for ``mode`` (minivae.presets) with the options given.

    Every option is checked here, before anything is read or written; an option the
    experiment does not take (``--epochs`` for fig2, ``--lr`` for iwae) is a ValueError
    naming it.
    """
    check_counts(args, {"budget": 1, "epochs": 1, "seed": 0, "n_eval": 1, "n_points": 1, "seeds": 1,
                        "eval_k": 1, "stop_after": 1})
    for k in args.ks or ():
        check_count(k, "--ks", 1)
    if args.lr is not None:
        check_number(args.lr, "--lr", low=0, low_inclusive=False)
    settings = dict(PRESETS[args.experiment][mode])
    if args.experiment == "ladder" and mode == "full" and args.recipe not in (None, "standard"):
        settings["epochs"] = RECIPES[args.recipe]["epochs"]     # a decaying rate: its own epochs
    for option in ("budget", "n_points", "epochs", "n_eval", "lr", "ks", "schedule", "recipe", "seeds",
                   "eval_k", "stop_after"):
        value = getattr(args, option)
        if value is None:
            continue
        if option not in OPTIONS[args.experiment]:
            raise ValueError(f"--{option.replace('_', '-')} does not apply to {args.experiment} "
                             f"(it takes --{', --'.join(o.replace('_', '-') for o in OPTIONS[args.experiment])})")
        settings[option] = tuple(value) if option == "ks" else value
    if args.experiment == "ladder":
        check_recipe_data("--recipe", settings["recipe"], args.data)
    if args.experiment in ("fig2", "fig3"):
        settings.setdefault("lr", None)       # None: each method's best step size, as the paper
    return settings


def run(args):
    """Run the chosen experiment; write results.json and a figure into --out."""
    from minivae.data import datasets
    from minivae.experiments import reproduce

    mode = "quick" if args.quick else "full"
    settings = experiment_settings(args, mode)          # checked before anything is written
    out = check_out(args.out) or os.path.join("runs", f"reproduce-{args.experiment}-"
                                                      + time.strftime("%Y%m%d-%H%M%S"))
    data = datasets.load_mnist(args.data)
    os.makedirs(out, exist_ok=True)
    print(f"reproduce {args.experiment} ({mode}): {data.source}: {len(data.train.x)} training, "
          f"{len(data.test.x)} test images; writing {out}/")
    tic = time.perf_counter()

    def save(results, settings, done=False):
        """results.json after every finished run, so a crash or Ctrl-C loses only the current one."""
        settings = {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()}
        write_json(os.path.join(out, "results.json"),
                   {"experiment": args.experiment, "mode": mode, "data": data.source,
                    "settings": settings, "seed": args.seed, "complete": done,
                    "seconds": time.perf_counter() - tic, "results": results})

    if args.experiment == "fig2":
        results = reproduce.fig2(data.train.x, data.test.x, progress=sys.stderr, seed=args.seed,
                                 on_result=lambda r: save(r, settings), **settings)
        figure = "fig2.png"
        reproduce.plot_fig2(results, os.path.join(out, figure))
        for z, curves in results.items():
            print(f"N_z = {z:>3}: test bound after {curves['aevb']['examples'][-1]} examples: "
                  f"AEVB {curves['aevb']['test'][-1]:.2f}, "
                  f"wake-sleep {curves['wake_sleep']['test'][-1]:.2f}")
    elif args.experiment == "fig3":
        results, figure = _run_fig3(args, data, settings, out, save)
    elif args.experiment == "ladder":
        results, figure = _run_ladder(args, data, settings, out, save)
    else:
        n_train = settings.pop("n_train", None)
        results = reproduce.iwae_compare(data.train.x[:n_train], data.test.x, progress=sys.stderr,
                                         seed=args.seed, on_result=lambda r: save(r, settings),
                                         **settings)
        figure = "iwae.png"
        reproduce.plot_iwae(results, os.path.join(out, figure))
        for name, r in results.items():
            print(f"{name}: test NLL {r['nll']:.2f} nats (k = {settings['eval_k']}), "
                  f"{r['active_units']} active units, test ELBO {r['test_elbo']:.2f}")
    save(results, settings, done=True)
    print(f"wrote {out}/: results.json, {figure} ({time.perf_counter() - tic:.0f} s)")
    return 0


def _run_ladder(args, data, settings, out, save):
    """`reproduce ladder`: train the recipe from each seed, summarise the rungs, plot."""
    from minivae.experiments import ladder

    recipe = {**RECIPES[settings["recipe"]], "epochs": settings["epochs"]}
    results = ladder.ladder(data.train.x, data.test.x, recipe, seeds=settings["seeds"],
                            first_seed=args.seed, eval_k=settings["eval_k"], n_eval=settings["n_eval"],
                            stop_after=settings.get("stop_after"), progress=sys.stderr, on_result=lambda r: save(r, settings))
    figure = "ladder.png"
    ladder.plot_ladder(results, os.path.join(out, figure))
    for epoch, rung in results["rungs"].items():
        print(f"after {epoch:>3} epochs: test ELBO {rung['mean']:.2f} +- {rung['sd']:.2f} "
              f"({rung['n']} seeds, {rung['min']:.2f} to {rung['max']:.2f})")
    if results["nll"] is not None:
        print(f"test NLL (k = {settings['eval_k']}): {results['nll']['mean']:.2f} +- "
              f"{results['nll']['sd']:.2f}")
    return results, figure


def _run_fig3(args, data, settings, out, save):
    """`reproduce fig3`: train, estimate log p(x) at every point, plot; returns results, figure."""
    from minivae.experiments import reproduce_fig3

    results = reproduce_fig3.fig3(data.train.x, data.test.x, progress=sys.stderr, seed=args.seed,
                                  on_result=lambda r: save(r, settings), **settings)
    figure = "fig3.png"
    reproduce_fig3.plot_fig3(results, os.path.join(out, figure))
    for n, curves in results.items():
        print(f"N_train = {n:>5}: test log p(x) after {curves['aevb']['examples'][-1]} examples "
              "(HMC / IS): " + ", ".join(
                  f"{'AEVB' if m == 'aevb' else 'wake-sleep'} {c['hmc_test'][-1]:.2f} / "
                  f"{c['is_test'][-1]:.2f}" for m, c in curves.items()))
    return results, figure


def add_parser(commands):
    """Add the command's options to the ``minivae`` parser's subcommands."""
    p = commands.add_parser("reproduce", help="rerun a paper's experiment (fig2, fig3, iwae) or "
                            "measure a ladder into a run folder",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("experiment", choices=["fig2", "fig3", "iwae", "ladder"],
                   help="fig2: AEVB vs wake-sleep (Kingma & Welling 2013); fig3: their marginal "
                        "likelihood (N_z = 3); iwae: VAE vs IWAE k=5 (Burda et al. 2016); ladder: "
                        "the test ELBO runs of a recipe reach after 1, 4, 13, 40, ... epochs")
    p.add_argument("--quick", action="store_true",
                   help="a small version on the embedded subset (under a minute): a smoke test")
    p.add_argument("--data", default=None, help="folder with the MNIST IDX files (default: the "
                   "embedded 10k subset)")
    p.add_argument("--budget", type=int, default=None,
                   help=f"fig2, fig3: training examples per run (default {presets.FIG2['full']['budget']:g}, "
                        f"--quick {presets.FIG2['quick']['budget']}; fig3 --quick {presets.FIG3['quick']['budget']})")
    p.add_argument("--n-points", type=int, default=None,
                   help=f"fig2, fig3: evaluation points per run, log-spaced (default "
                        f"{presets.FIG2['full']['n_points']}, fig3 {presets.FIG3['full']['n_points']})")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"iwae: training epochs (default {presets.IWAE['full']['epochs']}, "
                        f"--quick {presets.IWAE['quick']['epochs']}); ladder: epochs of each run "
                        f"(default {presets.LADDER_RUNS['full']['epochs']}, --recipe hour its "
                        f"{presets.HOUR['full']['epochs']})")
    p.add_argument("--lr", type=float, default=None,
                   help="fig2, fig3: Adagrad step size for both methods (default: each method's best of "
                        "0.01, 0.02, 0.1 after the first examples, per N_z, as in the paper)")
    p.add_argument("--ks", type=int, nargs="+", default=None,
                   help=f"iwae: the IWAE's numbers of samples, e.g. --ks 5 50 (default "
                        f"{' '.join(map(str, presets.IWAE['full']['ks']))})")
    p.add_argument("--schedule", choices=["burda", "fixed"], default=None,
                   help="iwae: Burda et al.'s learning-rate schedule (3^i epochs at 1e-3 * "
                        f"10^(-i/7)) or a fixed 1e-3 (default {presets.IWAE['full']['schedule']})")
    p.add_argument("--n-eval", type=int, default=None,
                   help=f"images each measurement uses: fig2, the bound on that many training and "
                        f"test images (default {presets.FIG2['full']['n_eval']}); fig3, log p(x) on that "
                        f"many of each (default {presets.FIG3['full']['n_eval']}); iwae and ladder, the test NLL "
                        f"(default: all test images)")
    p.add_argument("--recipe", choices=list(RECIPES), default=None,
                   help=f"ladder: the recipe measured, minivae train's standard model or --preset "
                        f"hour (default {presets.LADDER_RUNS['full']['recipe']})")
    p.add_argument("--seeds", type=int, default=None,
                   help=f"ladder: runs, with seeds --seed, --seed + 1, ... (default "
                        f"{presets.LADDER_RUNS['full']['seeds']}, --quick {presets.LADDER_RUNS['quick']['seeds']})")
    p.add_argument("--eval-k", type=int, default=None,
                   help="ladder: also each run's test NLL with this many importance samples "
                        f"(default: none; --quick {presets.LADDER_RUNS['quick']['eval_k']})")
    p.add_argument("--stop-after", type=int, default=None,
                   help="ladder: train only the first epochs of each run (of the recipe's schedule), "
                        "for the lower rungs of a long recipe (default: every epoch)")
    p.add_argument("--seed", type=int, default=0, help="the seed (ladder: the first seed)")
    p.add_argument("--out", default=None, help="run folder (default: runs/reproduce-<experiment>-<date-time>)")
    p.set_defaults(run=run)
