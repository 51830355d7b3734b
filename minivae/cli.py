"""The `minivae` command (also `python -m minivae`).

    minivae train      train a VAE (default: the embedded MNIST subset) into a run folder
    minivae sample     draw digits from a saved model
    minivae evaluate   test ELBO and importance-sampled log-likelihood of a saved model
    minivae gradcheck  check every hand-written gradient against finite differences
    minivae bench      time training steps; matrix-product peak, memory (docs/performance.md)
    minivae assignment make|grade  a student edition with stubs, and its autograder

Errors in what the user typed or gave (a bad option, a missing file) are
printed as one line, without a traceback, and the exit status is 2.  A
training run that diverges (NaN loss) says so in one line and exits with
status 1; one stopped by Ctrl-C or SIGTERM saves a checkpoint and exits with 130.
In a student edition, reaching an exercise that is still a stub prints its hint
and the line to write, and exits with status 1.

Each command imports the modules it needs when it runs (so ``minivae --help``
and ``minivae gradcheck`` never load matplotlib or the download code); the
option choices come from the package's own registries.
"""
import argparse
import json
import os
import sys
import time
import traceback

from minivae.checks import FLOAT_DTYPES, check_count, check_number
from minivae.nn import ACTIVATIONS
from minivae.optim import OPTIMIZERS
from minivae.vae import KL_ESTIMATORS, LIKELIHOODS


def _check_counts(args, lows):
    """Every count option, checked by the package's one rule and named as typed (``--batch-size``)."""
    for name, low in lows.items():
        value = getattr(args, name)
        if value is not None:
            check_count(f"--{name.replace('_', '-')}", value, low)


def _names(text):
    """'a,b' -> ['a', 'b'] (None stays None: every exercise)."""
    return None if text is None else [name.strip() for name in text.split(",") if name.strip()]


def cmd_assignment_make(args):
    from minivae import assignment
    root = assignment.find_source_root()
    summary = assignment.make_assignment(root, args.out, _names(args.exercises))
    print(f"wrote a student edition of {root} to {summary['out']}: {summary['regions']} region(s) "
          f"of {len(summary['exercises'])} exercise(s) stubbed in {', '.join(summary['files'])}")
    print(f"exercises: {', '.join(summary['exercises'])}")
    print(f"grade it with: minivae assignment grade {summary['out']}")
    return 0


def cmd_assignment_grade(args):
    from minivae import assignment
    reference = None
    if args.mode != "whole":
        reference, why = assignment.reference_solution()
        if reference is None and args.mode == "isolated":
            raise ValueError(f"--mode isolated needs the solution checkout: {why}")
        if reference is None:
            print(f"no reference solution ({why}); grading the tree as it is", file=sys.stderr)
    report = assignment.grade(args.directory, _names(args.exercises), reference=reference,
                              timeout=args.timeout)
    print(json.dumps(report, indent=2) if args.json else assignment.format_report(report))
    return 0 if report["all_passed"] else 1


def cmd_gradcheck(args):
    from minivae import gradcheck_table

    _check_counts(args, {"seed": 0})
    rows = gradcheck_table.gradcheck_rows(seed=args.seed)
    print(gradcheck_table.format_rows(rows))
    failed = [r["component"] for r in rows if not r["ok"]]
    if failed:
        print(f"\n{len(failed)} component(s) above their bound: {', '.join(failed)}")
        return 1
    print(f"\nall {len(rows)} components within their bounds")
    return 0


# `minivae train` defaults: the standard architecture of Kingma & Welling's MNIST experiments
# (one hidden layer; 400 units here, as in the benchmark), tuned to finish in under a minute
# on 2 CPU cores on the embedded subset
DEFAULTS = {"epochs": 30, "batch_size": 100, "z_dim": 20, "hidden": (400,), "lr": 1e-3}


def _sizes(text):
    """'400' or '512,256' -> (400,) or (512, 256); '' or 'none' -> () (affine maps)."""
    if text.strip().lower() in ("", "none"):
        return ()
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if any(n < 1 for n in sizes):
        raise argparse.ArgumentTypeError(f"hidden sizes must be positive, got {text!r}")
    return sizes


def _write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


def save_run_figures(model, data, history, out, seed=0):
    """Write the run's figures into ``out``; return their file names."""
    import numpy as np

    from minivae import plots

    rng = np.random.default_rng(seed)
    x = data.test.x[:10]
    plots.plot_reconstructions(x, model.reconstruct(x), os.path.join(out, "reconstructions.png"))
    plots.plot_samples(model.sample(64, rng=rng), os.path.join(out, "samples.png"))
    plots.plot_elbo_curves(history, os.path.join(out, "elbo.png"))
    written = ["reconstructions.png", "samples.png", "elbo.png"]
    if model.z_dim == 2:
        plots.plot_latent_manifold(model.decode, os.path.join(out, "manifold.png"))
        mu, _ = model.encode(data.test.x)
        plots.plot_latent_scatter(mu, data.test.y, os.path.join(out, "latent_scatter.png"))
        written += ["manifold.png", "latent_scatter.png"]
    return written


# `minivae train` option -> the name train() saves it under in a checkpoint's settings
RESUMED_SETTINGS = {"epochs": "epochs", "batch_size": "batch_size", "optimizer": "optimizer", "lr": "lr",
                    "samples": "n_samples", "kl": "kl", "warmup": "warmup_epochs", "seed": "seed"}


def _settings_from_checkpoint(args, resume):
    """Fill the options not typed on the command line from the run being resumed.

    So ``minivae train --resume runs/x/model.npz`` continues with the run's own
    batch size, learning rate, seed, ...; an option typed explicitly is kept
    and train() refuses it if it differs from the checkpoint's.
    """
    saved = (resume.get("train_state") or {}).get("settings", {})
    for option, key in RESUMED_SETTINGS.items():
        if f"--{option.replace('_', '-')}" not in getattr(args, "given", ()) and key in saved:
            setattr(args, option, saved[key])


def cmd_train(args):
    import numpy as np

    from minivae import checkpoint, datasets
    from minivae.preprocessing import fixed_binarization
    from minivae.evaluate import evaluate_elbo
    from minivae.training import TrainingDiverged, train
    from minivae.vae import VAE

    # checked before anything is read or written
    _check_counts(args, {"epochs": 1, "batch_size": 1, "samples": 1, "z_dim": 1, "warmup": 0,
                         "seed": 0})
    check_number("--lr", args.lr, low=0, low_inclusive=False)
    data = datasets.load_mnist(args.data, download=args.download)
    print(f"data: {data.source}: {len(data.train.x)} training, {len(data.test.x)} test images")
    resume = checkpoint.load(args.resume) if args.resume else None
    out = args.out or os.path.join("runs", time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out, exist_ok=True)     # only once the data and the checkpoint are readable
    model_path = os.path.join(out, "model.npz")

    if resume is not None:
        model = resume["model"]
        _settings_from_checkpoint(args, resume)
        print(f"resuming from {args.resume} (epoch {(resume['train_state'] or {}).get('epoch')})")
    else:
        model = VAE(data.train.x.shape[1], args.z_dim, hidden=args.hidden,
                    likelihood=args.likelihood, activation=args.activation,
                    dtype=np.dtype(args.dtype), seed=args.seed)
    print(f"model: {model}")
    epochs = f"{args.epochs} epoch" + ("s" if args.epochs != 1 else "")
    print(f"training {epochs}, batch {args.batch_size}, {args.optimizer} lr {args.lr}, "
          f"estimator {'B (analytic KL)' if args.kl == 'analytic' else 'A (Monte Carlo)'}, "
          f"L = {args.samples}; checkpoint: {model_path}")
    tic = time.perf_counter()
    try:
        history = train(model, data.train.x, data.test.x, epochs=args.epochs,
                        batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
                        n_samples=args.samples, kl=args.kl, warmup_epochs=args.warmup,
                        seed=args.seed, checkpoint_path=model_path, resume=resume,
                        verbose=not args.quiet)
    except TrainingDiverged as error:   # not a usage error: the run itself failed (status 1)
        print(f"minivae train: training diverged: {error}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - tic
    _write_json(os.path.join(out, "history.json"), history)
    if history["interrupted"]:
        print(f"stopped early; resume with: minivae train --resume {model_path} --out {out}")
        return 130

    # the final numbers, on the same fixed binarisation of the test set as during training
    x_test = model.check_data(data.test.x, "x_test")
    if model.likelihood == "bernoulli":
        x_test = fixed_binarization(x_test, args.seed)
    test_elbo = evaluate_elbo(model, x_test, n_samples=10, rng=np.random.default_rng(args.seed))
    metrics = {"test_elbo": test_elbo, "train_elbo": history["train_elbo"][-1],
               "epochs": len(history["epoch"]), "seconds": seconds,
               "examples_per_second": float(np.median(history["examples_per_second"])),
               "data": data.source, "model": model.config(),
               "settings": {"batch_size": args.batch_size, "optimizer": args.optimizer,
                            "lr": args.lr, "kl": args.kl, "n_samples": args.samples,
                            "warmup_epochs": args.warmup, "seed": args.seed}}
    _write_json(os.path.join(out, "metrics.json"), metrics)
    written = save_run_figures(model, data, history, out, seed=args.seed)
    print(f"\ntest ELBO {test_elbo:.2f} nats per image (L = 10 samples), "
          f"train ELBO {history['train_elbo'][-1]:.2f}, {seconds:.1f} s")
    print(f"wrote {out}/: model.npz, history.json, metrics.json, " + ", ".join(written))
    return 0


def cmd_sample(args):
    import numpy as np

    from minivae import checkpoint, plots

    _check_counts(args, {"n": 1, "seed": 0})
    model = checkpoint.load_model(args.model)
    images = model.sample(args.n, rng=np.random.default_rng(args.seed))
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.model)), "samples.png")
    cols = int(np.ceil(np.sqrt(args.n)))
    plots.plot_samples(images, out, n_rows=int(np.ceil(args.n / cols)), n_cols=cols)
    print(f"wrote {args.n} samples from p(z) through {args.model} to {out}")
    return 0


def cmd_evaluate(args):
    import numpy as np

    from minivae import checkpoint, datasets
    from minivae.preprocessing import fixed_binarization
    from minivae.evaluate import evaluate_elbo, log_likelihood

    _check_counts(args, {"k": 1, "batch_size": 1, "seed": 0})
    loaded = checkpoint.load(args.checkpoint)
    model = loaded["model"]
    # by default the seed the run was trained with: the same test binarisation and noise as
    # `minivae train` used for the test ELBO in its metrics.json, so the numbers compare
    seed = args.seed
    if seed is None:
        seed = ((loaded["train_state"] or {}).get("settings") or {}).get("seed", model.seed)
    data = datasets.load_mnist(args.data)
    x_test = model.check_data(data.test.x, "x_test")
    binarised = ""
    if model.likelihood == "bernoulli":
        x_test = fixed_binarization(x_test, seed)
        binarised = f", binarised once with seed {seed}"
    print(f"model: {model}")
    print(f"data: {data.source}: {len(x_test)} test images{binarised}")
    test_elbo = evaluate_elbo(model, x_test, n_samples=10, rng=np.random.default_rng(seed))
    print(f"test ELBO {test_elbo:.2f} nats per image (L = 10 samples)")
    tic = time.perf_counter()
    log_px, se = log_likelihood(model, x_test, args.k, rng=np.random.default_rng(seed),
                                batch_size=args.batch_size, progress=sys.stderr, return_se=True)
    seconds = time.perf_counter() - tic
    mean_se = float(np.sqrt((se ** 2).sum())) / len(se)     # Monte Carlo error of the mean
    print(f"test log-likelihood {log_px.mean():.2f} nats per image (importance sampling, "
          f"k = {args.k}; Monte Carlo standard error {mean_se:.2f}), {seconds:.1f} s")
    return 0


def cmd_bench(args):
    from minivae import bench, datasets

    _check_counts(args, {"threads": 1})
    if args.threads is not None:
        bench.set_blas_threads(args.threads)
    data = datasets.load_mnist(args.data)
    result = bench.run(data.train.x, hidden=args.hidden, z_dim=args.z_dim,
                       batch_size=args.batch_size, n_samples=args.samples, dtype=args.dtype,
                       steps=args.steps, repeats=args.repeats, warmup=args.warmup, seed=args.seed,
                       data=data.source, progress=sys.stderr)
    print(json.dumps(result, indent=2) if args.json else bench.format_report(result))
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="minivae", description="The Variational Autoencoder from scratch in NumPy.")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("train", help="train a VAE and write model, history, metrics, figures",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default=None,
                   help="folder with MNIST or Fashion-MNIST IDX files (default: the embedded subset)")
    p.add_argument("--download", action="store_true", help="download MNIST into --data first")
    p.add_argument("--out", default=None, help="run folder (default: runs/<date-time>)")
    p.add_argument("--epochs", type=int, default=DEFAULTS["epochs"])
    p.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"])
    p.add_argument("--z-dim", type=int, default=DEFAULTS["z_dim"])
    p.add_argument("--hidden", type=_sizes, default=DEFAULTS["hidden"],
                   help="hidden widths, comma-separated ('none' for affine maps)")
    p.add_argument("--activation", default="relu", choices=list(ACTIVATIONS))
    p.add_argument("--likelihood", default="bernoulli", choices=list(LIKELIHOODS))
    p.add_argument("--kl", default="analytic", choices=list(KL_ESTIMATORS),
                   help="ELBO estimator: B (analytic KL) or A (Monte Carlo)")
    p.add_argument("--samples", type=int, default=1, help="L, Monte Carlo samples per example")
    p.add_argument("--optimizer", default="adam", choices=list(OPTIMIZERS))
    p.add_argument("--lr", type=float, default=DEFAULTS["lr"])
    p.add_argument("--warmup", type=int, default=0, help="KL warm-up epochs (0: none)")
    p.add_argument("--dtype", default="float32", choices=list(FLOAT_DTYPES))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", default=None, help="continue from a run's model.npz")
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress lines")
    p.set_defaults(run=cmd_train)

    p = commands.add_parser("sample", help="draw samples from a saved model into a PNG")
    p.add_argument("model", help="a model.npz written by `minivae train`")
    p.add_argument("--n", type=int, default=64, help="number of samples")
    p.add_argument("--out", default=None, help="PNG path (default: samples.png beside the model)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=cmd_sample)

    p = commands.add_parser("evaluate", help="test ELBO and log-likelihood (importance sampling) of a model",
                            epilog="Progress goes to stderr. See docs/evaluation.md.")
    p.add_argument("checkpoint", help="a model.npz written by `minivae train`")
    p.add_argument("--k", type=int, default=5000, help="importance samples per test image (default: 5000)")
    p.add_argument("--data", default=None,
                   help="folder with MNIST IDX files (default: the embedded subset's test split)")
    p.add_argument("--batch-size", type=int, default=100, help="test images per pass (default: 100)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the test binarisation and the noise (default: the training seed)")
    p.set_defaults(run=cmd_evaluate)

    p = commands.add_parser("gradcheck", help="check every gradient against finite differences")
    p.add_argument("--seed", type=int, default=0, help="seed of the random test inputs")
    p.set_defaults(run=cmd_gradcheck)

    p = commands.add_parser(
        "bench", help="time training steps of the standard model; report what limits speed",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="BLAS threads: --threads, or OPENBLAS_NUM_THREADS / OMP_NUM_THREADS in the "
               "environment; the count used is in the output. Progress goes to stderr.")
    p.add_argument("--data", default=None,
                   help="folder with MNIST IDX files (default: the embedded subset)")
    p.add_argument("--hidden", type=_sizes, default=(400,), help="hidden widths, comma-separated")
    p.add_argument("--z-dim", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--samples", type=int, default=1, help="L, Monte Carlo samples per example")
    p.add_argument("--dtype", default="float32", choices=list(FLOAT_DTYPES))
    p.add_argument("--steps", type=int, default=50, help="timed steps per repeat")
    p.add_argument("--repeats", type=int, default=5, help="timed blocks; the median is reported")
    p.add_argument("--warmup", type=int, default=20, help="untimed steps first")
    p.add_argument("--threads", type=int, default=None,
                   help="BLAS threads (default: as set by the environment)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(run=cmd_bench)

    p = commands.add_parser("assignment", help="course assignments: make a student edition, grade one")
    actions = p.add_subparsers(dest="action", required=True)
    q = actions.add_parser("make", help="write a student edition with the chosen exercises stubbed")
    q.add_argument("--out", required=True, help="new folder for the student edition")
    q.add_argument("--exercises", default=None,
                   help="comma-separated exercise names (default: all; see docs/assignments.md)")
    q.set_defaults(run=cmd_assignment_make)
    q = actions.add_parser("grade", help="run each exercise's tests on a tree and print the scores")
    q.add_argument("directory", nargs="?", default=".", help="the tree to grade (default: .)")
    q.add_argument("--exercises", default=None,
                   help="comma-separated exercise names (default: those of its assignment.json, or all)")
    q.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    q.add_argument("--mode", default="auto", choices=["auto", "isolated", "whole"],
                   help="isolated: each exercise on the reference solution with only its own regions "
                        "from the tree (needs the solution checkout); whole: the tree as it is; "
                        "auto: isolated when the solution checkout is available")
    q.add_argument("--timeout", type=float, default=600, help="seconds allowed per pytest run")
    q.set_defaults(run=cmd_assignment_grade)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    # the options typed on the command line (`--lr 0.01` or `--lr=0.01`): a resumed run takes
    # every other setting from its checkpoint rather than from the defaults
    args.given = {token.split("=")[0] for token in argv if token.startswith("--")}
    try:
        return args.run(args)
    except (ValueError, TypeError, OSError) as error:   # OSError: missing files, failed downloads
        print(f"minivae {args.command}: error: {error}", file=sys.stderr)
        return 2
    except NotImplementedError as error:
        # a student edition (`minivae assignment make`) reached an exercise's stub: its hint,
        # and where to write the missing lines, instead of a page of traceback
        where = traceback.extract_tb(error.__traceback__)[-1]
        print(f"minivae {args.command}: {error}\n  to do in {where.filename}, line {where.lineno}, "
              f"in {where.name}", file=sys.stderr)
        return 1
