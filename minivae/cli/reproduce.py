"""`minivae reproduce fig2|fig3|iwae`: rerun a paper's experiment into a run folder (JSON + PNG).

    fig2   Kingma & Welling (2013), Fig. 2: AEVB vs wake-sleep lower bounds against
           training examples seen, for N_z in {3, 5, 10, 20, 200}
    fig3   Kingma & Welling (2013), Fig. 3: AEVB vs wake-sleep marginal log-likelihood
           (HMC estimator of App. D, and importance sampling) for N_z = 3, N_train 1000, 50000
    iwae   Burda et al. (2016), Table 1: VAE vs IWAE (k = 5) test NLL and active units

``--quick`` runs a small version on the embedded 10k subset in under a minute (what the
tests and CI run); it shows that the code runs end to end, not the papers' numbers.
docs/reproduction.md gives the full commands and compares the results with the papers.
"""
import argparse
import os
import sys
import time

from minivae.cli.common import check_counts, write_json

# the paper's settings (full) and a smoke-test version of each (--quick)
FIG2 = {"full": {"z_dims": (3, 5, 10, 20, 200), "budget": 10**7, "hidden": 500, "n_points": 12,
                 "first": 1000, "n_eval": 1000, "trial": 10**4},
        "quick": {"z_dims": (3, 20), "budget": 6000, "hidden": 100, "n_points": 4, "n_eval": 300,
                  "trial": 1000}}
FIG3 = {"full": {"n_trains": (1000, 50000), "budget": 10**7, "n_points": 8, "first": 1000,
                 "n_eval": 100, "is_k": 5000, "trial": 10**4},
        "quick": {"n_trains": (1000, 9000), "budget": 1000, "n_points": 2, "first": 100,
                  "n_eval": 4, "is_k": 100, "trial": 300,
                  "hmc": {"n_chains": 6, "n_burn": 15, "n_draws": 10, "n_leapfrog": 5}}}
IWAE = {"full": {"epochs": 100, "eval_k": 5000, "n_eval": None, "hidden": (200, 200), "z_dim": 50},
        "quick": {"epochs": 2, "eval_k": 50, "n_eval": 200, "hidden": (100, 100), "z_dim": 20,
                  "n_train": 2000}}


# command-line option -> the experiment's setting it replaces (where the experiment has it)
OPTIONS = {"budget": "budget", "points": "n_points", "epochs": "epochs", "n_eval": "n_eval"}


def experiment_settings(args, mode):
    """The experiment's settings for ``mode`` with the options given on the command line.

    An option the experiment has no setting for (``--epochs`` for fig2) is a ValueError
    naming it, not silently ignored.
    """
    settings = dict({"fig2": FIG2, "fig3": FIG3, "iwae": IWAE}[args.experiment][mode])
    for option, key in OPTIONS.items():
        value = getattr(args, option)
        if value is None:
            continue
        if key not in settings:
            raise ValueError(f"--{option.replace('_', '-')} does not apply to {args.experiment}")
        settings[key] = value
    return settings


def run(args):
    """Run the chosen experiment; write results.json and a figure into --out."""
    from minivae.data import datasets
    from minivae.experiments import reproduce

    check_counts(args, {"budget": 1, "epochs": 1, "seed": 0, "n_eval": 1, "points": 1})
    mode = "quick" if args.quick else "full"
    settings = experiment_settings(args, mode)
    data = datasets.load_mnist(args.data)
    out = args.out or os.path.join("runs", f"reproduce-{args.experiment}-"
                                           + time.strftime("%Y%m%d-%H%M%S"))
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
        settings["lr"] = args.lr
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
    else:
        n_train = settings.pop("n_train", None)
        settings["ks"] = tuple(args.k)
        settings["schedule"] = None if args.schedule == "fixed" else args.schedule
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


def _run_fig3(args, data, settings, out, save):
    """`reproduce fig3`: train, estimate log p(x) at every point, plot; returns results, figure."""
    from minivae.experiments import reproduce_fig3

    settings["lr"] = args.lr
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
    p = commands.add_parser("reproduce", help="rerun a paper's experiment (fig2, fig3, iwae) into a run folder",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("experiment", choices=["fig2", "fig3", "iwae"],
                   help="fig2: AEVB vs wake-sleep (Kingma & Welling 2013); fig3: their marginal "
                        "likelihood (N_z = 3); iwae: VAE vs IWAE k=5 (Burda et al. 2016)")
    p.add_argument("--quick", action="store_true",
                   help="a small version on the embedded subset (under a minute): a smoke test")
    p.add_argument("--data", default=None, help="folder with the MNIST IDX files (default: the "
                   "embedded 10k subset)")
    p.add_argument("--budget", type=int, default=None,
                   help=f"fig2, fig3: training examples per run (default {FIG2['full']['budget']:g}, "
                        f"--quick {FIG2['quick']['budget']}; fig3 --quick {FIG3['quick']['budget']})")
    p.add_argument("--points", type=int, default=None,
                   help=f"fig2, fig3: evaluation points per run, log-spaced (default "
                        f"{FIG2['full']['n_points']}, fig3 {FIG3['full']['n_points']})")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"iwae: training epochs (default {IWAE['full']['epochs']}, "
                        f"--quick {IWAE['quick']['epochs']})")
    p.add_argument("--lr", type=float, default=None,
                   help="fig2, fig3: Adagrad step size for both methods (default: each method's best of "
                        "0.01, 0.02, 0.1 after the first examples, per N_z, as in the paper)")
    p.add_argument("--k", type=int, nargs="+", default=[5],
                   help="iwae: the IWAE's numbers of samples (e.g. --k 5 50)")
    p.add_argument("--schedule", choices=["burda", "fixed"], default="burda",
                   help="iwae: Burda et al.'s learning-rate schedule (3^i epochs at 1e-3 * "
                        "10^(-i/7)) or a fixed 1e-3")
    p.add_argument("--n-eval", type=int, default=None,
                   help=f"images each measurement uses: fig2, the bound on that many training and "
                        f"test images (default {FIG2['full']['n_eval']}); fig3, log p(x) on that "
                        f"many of each (default {FIG3['full']['n_eval']}); iwae, the test NLL "
                        f"(default: all test images)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="run folder (default: runs/reproduce-<experiment>-<date-time>)")
    p.set_defaults(run=run)
