"""`minivae train`: train a VAE into a run folder (model, history, metrics, figures)."""
import argparse
import math
import os
import sys
import time

from minivae import presets
from minivae.utils.validation import FLOAT_DTYPES, check_number
from minivae.cli.common import check_counts, check_out, sizes, write_json
from minivae.utils.memory import activation_count, check_fits, parameter_count
from minivae.nn import ACTIVATIONS
from minivae.optim import OPTIMIZERS
from minivae.vae import ESTIMATORS, LIKELIHOODS

# `minivae train` defaults: the standard model and training (minivae.presets.STANDARD);
# --preset hour replaces those of minivae.presets.HOUR that are not typed
DEFAULTS = presets.STANDARD["full"]
PRESETS = {"standard": {}, "hour": presets.HOUR["full"]}
RECIPES = {name: {**DEFAULTS, **preset} for name, preset in PRESETS.items()}
HOUR_SUMMARY = (f"784-{'-'.join(map(str, presets.HOUR['full']['hidden']))}-{presets.HOUR['full']['z_dim']}, "
                f"estimator {presets.HOUR['full']['estimator']}, {presets.HOUR['full']['epochs']} epochs, "
                f"lr {presets.HOUR['full']['lr']:g} to {presets.HOUR['full']['lr_final']:g}, "
                f"at most {presets.HOUR['full']['time_limit']:g} minutes of training")


def save_run_figures(model, data, history, out, seed=0):
    """Write the run's figures into ``out``; return their file names."""
    import numpy as np

    from minivae.experiments import plots

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

ESTIMATOR_NAMES = {"B": "B (analytic KL)", "A": "A (Monte Carlo)",
                   "iwae": "IWAE bound (k = --n-samples)"}

# the options that build the model: a resumed run continues the checkpoint's model, so one of
# these typed with --resume must agree with it (or it is a contradiction, refused)
MODEL_OPTIONS = ("z_dim", "hidden", "likelihood", "activation", "dtype")
# the training settings a checkpoint records that are options here (under the same names)
RESUMED = ("epochs", "batch_size", "optimizer", "lr", "lr_final", "n_samples", "estimator",
           "warmup_epochs", "seed", "weight_decay")


def given(args, option):
    """True if ``--option`` was typed on the command line (not left at its default)."""
    return f"--{option.replace('_', '-')}" in getattr(args, "given", ())


def _settings_from_checkpoint(args, resume, path):
    """Check the options typed with ``--resume`` against the checkpoint; fill the others from it.

    So ``minivae train --resume runs/x/model.npz`` continues with the run's own batch
    size, learning rate, seed, ... (a training option typed explicitly is kept, and
    train() refuses it if it differs); a model option that differs from the
    checkpoint's model is refused here, naming both values.
    """
    state = resume.get("train_state") or {}
    config = resume["model"].config()
    for option in MODEL_OPTIONS:
        saved = tuple(config[option]) if option == "hidden" else config[option]
        if given(args, option) and getattr(args, option) != saved:
            raise ValueError(f"--{option.replace('_', '-')} {getattr(args, option)!r} contradicts the "
                             f"checkpoint {path}, whose model has {option}={saved!r}; a resumed run "
                             f"continues that model (leave --{option.replace('_', '-')} out)")
    if given(args, "init_std"):
        raise ValueError(f"--init-std only sets a new model's initial weights; --resume {path} "
                         "continues the checkpoint's weights (leave --init-std out)")
    for option, value in state.get("settings", {}).items():
        if option not in RESUMED:
            continue
        if not given(args, option):
            setattr(args, option, value)
        elif option != "epochs" and getattr(args, option) != value:     # epochs may grow
            raise ValueError(f"--{option.replace('_', '-')} {getattr(args, option)!r} contradicts the "
                             f"checkpoint {path}, whose run has {option}={value!r}; an exact "
                             f"continuation needs the same (leave --{option.replace('_', '-')} out)")
    epoch = state.get("epoch")
    if epoch is not None and epoch >= args.epochs and state.get("batch", 0) == 0:
        raise ValueError(f"nothing left to train: {path} has finished {epoch} of --epochs "
                         f"{args.epochs}; pass a larger --epochs to train it further")


def check_recipe_data(option, recipe, data, download=False):
    """A recipe other than "standard" is for full MNIST: refuse it without ``--data``."""
    if recipe != "standard" and data is None:
        raise ValueError(f"{option} {recipe} is a recipe for full MNIST, not the embedded "
                         "10,000-image subset: pass --data DIR (the folder of the IDX files"
                         + ("; with --download to fetch them)" if download else ")"))


def apply_preset(args):
    """Set the options of ``--preset`` that were not typed (typed options win)."""
    check_recipe_data("--preset", args.preset, args.data, download=True)
    for option, value in PRESETS[args.preset].items():
        if not given(args, option):
            setattr(args, option, value)


def ladder_for(args, model, x_train):
    """The ladder (minivae.presets.LADDER) of the recipe this run follows on its data, or None.

    A run follows a recipe when its model (``model.config()``, so also a resumed one) and
    every training option but the seed are the recipe's (and, for a recipe with a constant
    rate, any number of epochs: epoch e is the same in every run of at least e epochs), on
    the recipe's data (x_train's fingerprint, hashed only for a run whose settings match).
    """
    from minivae.runs.run_control import data_fingerprint

    config = model.config()
    run = {**vars(args), **{k: tuple(config[k]) if k == "hidden" else config[k] for k in MODEL_OPTIONS}}
    for name, recipe in RECIPES.items():
        entry = presets.LADDER.get(name)
        # the seed, and --time-limit (it decides where a run ends, not what its epochs compute)
        same = [k for k in recipe if k not in ("seed", "time_limit")
                and (k != "epochs" or recipe["lr_final"] is not None)]
        if entry and all(run[k] == recipe[k] for k in same) and \
                entry["data"] == data_fingerprint(model.check_data(x_train, "x_train")):
            return entry
    return None


def compare_with_ladder(entry, epoch, value):
    """'after 13 epochs: test ELBO -94.10; runs of this recipe reach -93.80 +- 0.30 ...' (or None).

    A value outside the seeds' range is also placed against the 95 % prediction interval of
    one more run, mean +- t s sqrt(1 + 1/n) (t: Student's 97.5 % point with n - 1 degrees of
    freedom; the runs taken as normal): with 3 seeds a new seed falls outside their range half
    the time, and outside this interval 5 % of the time.
    """
    if entry is None or epoch not in entry["test_elbo"]:
        return None
    mean, sd, low, high, n = entry["test_elbo"][epoch]
    value = round(value, 2)                 # as the ladder's numbers are kept
    start = f"after {epoch} epoch{'s' if epoch != 1 else ''}: test ELBO {value:.2f}; "
    if n == 1:
        return start + f"a run of this recipe reached {mean:.2f} here (one seed; docs/ladder.md)"
    start += f"runs of this recipe reach {mean:.2f} +- {sd:.2f} here ({n} seeds, {low:.2f} to {high:.2f}; docs/ladder.md): "
    if low <= value <= high:
        return start + "within their range"
    from scipy.special import stdtrit

    half = stdtrit(n - 1, 0.975) * sd * math.sqrt(1 + 1 / n)
    inside = mean - half <= value <= mean + half
    return (start + (f"{low - value:.2f} nats below their lowest" if value < low else
                     f"{value - high:.2f} nats above their highest")
            + f", {'inside' if inside else 'outside'} the 95 % interval of a new run "
              f"({mean - half:.2f} to {mean + half:.2f})" + ("" if inside else ": worth a look"))


def check_options(args):
    """Every option of ``minivae train``, checked before anything is read or written."""
    check_counts(args, {"epochs": 1, "batch_size": 1, "n_samples": 1, "z_dim": 1,
                        "warmup_epochs": 0, "seed": 0})
    check_number(args.lr, "--lr", low=0, low_inclusive=False)
    if args.lr_final is not None:
        check_number(args.lr_final, "--lr-final", low=0, low_inclusive=False)
    check_number(args.weight_decay, "--weight-decay", low=0)
    check_number(args.download_timeout, "--download-timeout", low=0, low_inclusive=False)
    if args.init_std is not None:
        check_number(args.init_std, "--init-std", low=0, low_inclusive=False)
    if args.time_limit is not None:
        check_number(args.time_limit, "--time-limit", low=0, low_inclusive=False)
    if args.estimator == "iwae" and args.warmup_epochs:
        raise ValueError(f"--warmup-epochs must be 0 with --estimator iwae (the IWAE bound has no "
                         f"KL weight to warm up), got {args.warmup_epochs}")
    if args.resume is not None and not args.resume.strip():
        raise ValueError("--resume must be the path of a run's model.npz, got an empty one")
    return check_out(args.out) or os.path.join("runs", time.strftime("%Y%m%d-%H%M%S"))


# the files of a run folder: a folder holding any of them holds a run
RUN_FILES = ("model.npz", "history.json", "metrics.json", "reconstructions.png", "samples.png",
             "elbo.png", "manifold.png", "latent_scatter.png")


def check_run_folder(out, resume_path, overwrite):
    """Refuse an ``out`` that holds another run, unless ``overwrite`` or it is the run resumed."""
    found = [f for f in RUN_FILES if os.path.exists(os.path.join(out, f))]
    model_path = os.path.join(out, "model.npz")
    if resume_path is not None and os.path.exists(model_path) and \
            os.path.samefile(resume_path, model_path):
        return []                    # continuing this very run: its files are its own
    if not found or overwrite:
        return found
    raise ValueError(f"{out} already holds a run ({', '.join(found)}); pass --overwrite to "
                     f"replace it, --resume {model_path} to continue it, or another --out")


def check_memory(args, x_dim, itemsize, model=None):
    """Refuse sizes whose parameters or training step cannot fit in memory, before allocating."""
    z_dim, hidden = (model.z_dim, model.hidden) if model is not None else (args.z_dim, args.hidden)
    # parameters, gradients, scratch and up to two optimiser buffers; one step's activations
    # (forward and backward) for the batch times its L samples
    need = itemsize * (5 * parameter_count(x_dim, z_dim, hidden)
                       + 2 * activation_count(x_dim, z_dim, hidden, args.batch_size * args.n_samples))
    check_fits(f"a {x_dim}-{'-'.join(map(str, hidden))}-{z_dim} model trained with batches of "
               f"{args.batch_size} x {args.n_samples} samples", need,
               hint="; use a smaller --z-dim, --hidden, --batch-size or --n-samples")


def run(args):
    """Train a model as the options say; exit status 0, 1 (diverged) or 130 (stopped).

    Every option, the data, the checkpoint to resume, the run folder and the
    memory the sizes need are checked before the run folder is created.
    """
    import numpy as np

    from minivae.runs import checkpoint
    from minivae.runs.run_control import data_fingerprint
    from minivae.data import datasets
    from minivae.data.preprocessing import fixed_binarization
    from minivae.evaluate import evaluate_elbo
    from minivae.training import TrainingDiverged, train
    from minivae.vae import VAE

    apply_preset(args)
    out = check_options(args)              # checked before anything is read or written
    resume = checkpoint.load(args.resume) if args.resume is not None else None
    found = check_run_folder(out, args.resume, args.overwrite)
    data = datasets.load_mnist(args.data, download=args.download, timeout=args.download_timeout)
    print(f"data: {data.source}: {len(data.train.x)} training, {len(data.test.x)} test images")
    model_path = os.path.join(out, "model.npz")

    x_dim = data.train.x.shape[1]
    if resume is not None:
        model = resume["model"]
        _settings_from_checkpoint(args, resume, args.resume)
        check_options(args)                # the settings taken from the checkpoint too
        check_memory(args, x_dim, model.dtype.itemsize, model)
    else:
        check_memory(args, x_dim, np.dtype(args.dtype).itemsize)
        model = VAE(x_dim, args.z_dim, hidden=args.hidden, likelihood=args.likelihood,
                    activation=args.activation, dtype=np.dtype(args.dtype), seed=args.seed,
                    init_std=args.init_std)
    if resume is not None:
        saved = (resume["train_state"] or {}).get("settings", {})
        if "data" in saved and saved["data"] != data_fingerprint(model.check_data(data.train.x, "x_train")):
            raise ValueError(f"--resume {args.resume} was trained on other data than {data.source} "
                             "(its fingerprint differs); a run continues on the data it started with")
    if args.batch_size > len(data.train.x):
        raise ValueError(f"--batch-size {args.batch_size} is larger than the training set "
                         f"({len(data.train.x)} images)")
    # only now, with every argument known to be good, is anything written
    os.makedirs(out, exist_ok=True)
    for name in found:                  # --overwrite: nothing of the old run stays behind
        os.remove(os.path.join(out, name))
    if resume is not None:
        print(f"resuming from {args.resume} (epoch {(resume['train_state'] or {}).get('epoch')})")
    print(f"model: {model}")
    epochs = f"{args.epochs} epoch" + ("s" if args.epochs != 1 else "")
    print(f"training {epochs}, batch {args.batch_size}, {args.optimizer} lr {args.lr}, "
          f"estimator {ESTIMATOR_NAMES[args.estimator]}, "
          f"L = {args.n_samples}; checkpoint: {model_path}")
    ladder = ladder_for(args, model, data.train.x)
    clock = {"epoch_end": time.perf_counter(), "out_of_time": False}

    def on_epoch(epoch, history):
        """Compare with the ladder; end the run here if another epoch would pass --time-limit."""
        line = compare_with_ladder(ladder, epoch, history["test_elbo"][-1])
        if line and not args.quiet:
            print("  " + line, file=sys.stderr)
        now = time.perf_counter()
        last, clock["epoch_end"] = now - clock["epoch_end"], now    # this epoch, its test ELBO and save
        if args.time_limit is None or epoch >= args.epochs or now - tic + last <= 60 * args.time_limit:
            return False
        clock["out_of_time"] = True
        print(f"time limit: {epoch} of {args.epochs} epochs took {(now - tic) / 60:.2f} minutes; one "
              f"more ({last:.1f} s, as the last) would pass --time-limit {args.time_limit:g} minutes, "
              f"so the run ends with epoch {epoch} (to go on: minivae train --resume {model_path} "
              f"--out {out})")
        return True

    tic = clock["epoch_end"]
    try:
        history = train(model, data.train.x, data.test.x, epochs=args.epochs,
                        batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
                        lr_final=args.lr_final, n_samples=args.n_samples, estimator=args.estimator, warmup_epochs=args.warmup_epochs,
                        seed=args.seed, checkpoint_path=model_path, resume=resume,
                        weight_decay=args.weight_decay, on_epoch=on_epoch,
                        verbose=not args.quiet)
    except TrainingDiverged as error:   # not a usage error: the run itself failed (status 1)
        print(f"minivae train: training diverged: {error}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - tic
    write_json(os.path.join(out, "history.json"), history)
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
               "time_limit_minutes": args.time_limit, "stopped_by_time_limit": clock["out_of_time"],
               "examples_per_second": float(np.median(history["examples_per_second"])),
               "data": data.source, "model": model.config(),
               "settings": {"batch_size": args.batch_size, "optimizer": args.optimizer,
                            "lr": args.lr, "lr_final": args.lr_final, "estimator": args.estimator, "n_samples": args.n_samples,
                            "warmup_epochs": args.warmup_epochs, "seed": args.seed,
                            "init_std": args.init_std, "weight_decay": args.weight_decay}}
    write_json(os.path.join(out, "metrics.json"), metrics)
    written = save_run_figures(model, data, history, out, seed=args.seed)
    print(f"\ntest ELBO {test_elbo:.2f} nats per image (L = 10 samples), "
          f"train ELBO {history['train_elbo'][-1]:.2f}, {seconds:.1f} s"
          + (f"; {len(history['epoch'])} of {args.epochs} epochs (--time-limit)" if clock["out_of_time"] else ""))
    rungs = [e for e in (ladder or {}).get("test_elbo", {}) if e <= len(history["test_elbo"])]
    if rungs:      # the last rung this run reached, on the per-epoch estimate the ladder records
        print(compare_with_ladder(ladder, rungs[-1], history["test_elbo"][rungs[-1] - 1]))
    print(f"wrote {out}/: model.npz, history.json, metrics.json, " + ", ".join(written))
    return 0


def add_parser(commands):
    """Add the command's options to the ``minivae`` parser's subcommands."""
    p = commands.add_parser("train", help="train a VAE and write model, history, metrics, figures",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--preset", default="standard", choices=list(PRESETS),
                   help="standard: the model and training below; hour: the one-hour model "
                        f"({HOUR_SUMMARY}; needs --data with full MNIST); options typed "
                        "with it override its settings")
    p.add_argument("--data", default=None,
                   help="folder with MNIST or Fashion-MNIST IDX files (%(default)s: the embedded subset)")
    p.add_argument("--download", action="store_true", help="download MNIST into --data first")
    p.add_argument("--out", default=None, help="run folder (%(default)s: runs/<date-time>)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in --out (without it, such a folder is refused)")
    p.add_argument("--download-timeout", type=float, default=120,
                   help="seconds each downloaded file may take as a whole")
    p.add_argument("--epochs", type=int, default=DEFAULTS["epochs"], help="passes over the training set")
    p.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"], help="minibatch size B")
    p.add_argument("--z-dim", type=int, default=DEFAULTS["z_dim"], help="latent size D")
    p.add_argument("--hidden", type=sizes, default=DEFAULTS["hidden"],
                   help="hidden widths, comma-separated ('none' for affine maps)")
    p.add_argument("--activation", default=DEFAULTS["activation"], choices=list(ACTIVATIONS),
                   help="the hidden layers' nonlinearity")
    p.add_argument("--likelihood", default=DEFAULTS["likelihood"], choices=list(LIKELIHOODS),
                   help="p(x|z): Bernoulli (binarised pixels) or Gaussian")
    p.add_argument("--estimator", default=DEFAULTS["estimator"], choices=list(ESTIMATORS),
                   help="ELBO estimator: B (analytic KL), A (Monte Carlo) or the IWAE bound "
                        "L_k with k = --n-samples")
    p.add_argument("--n-samples", type=int, default=DEFAULTS["n_samples"],
                   help="L, Monte Carlo samples per example")
    p.add_argument("--optimizer", default=DEFAULTS["optimizer"], choices=list(OPTIMIZERS),
                   help="the gradient step")
    p.add_argument("--lr", type=float, default=DEFAULTS["lr"], help="learning rate")
    p.add_argument("--lr-final", type=float, default=DEFAULTS["lr_final"],
                   help="decay the learning rate geometrically from --lr to this over the epochs "
                        "(%(default)s: constant)")
    p.add_argument("--warmup-epochs", type=int, default=DEFAULTS["warmup_epochs"],
                   help="KL warm-up epochs (0: none)")
    p.add_argument("--dtype", default=DEFAULTS["dtype"], choices=list(FLOAT_DTYPES),
                   help="floating-point type of the parameters and data")
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"],
                   help="seed of the initial weights, shuffling, binarisation and noise")
    p.add_argument("--init-std", type=float, default=DEFAULTS["init_std"],
                   help="draw every initial weight and bias from N(0, std^2) (Kingma & Welling: "
                        "0.01); None: He/Glorot initialisation")
    p.add_argument("--weight-decay", type=float, default=DEFAULTS["weight_decay"],
                   help="lambda of a N(0, I/lambda) prior on the parameters (1: the paper's "
                        "N(0, I)); adds (lambda / N) * param to each step's gradient")
    p.add_argument("--time-limit", type=float, default=None, metavar="MINUTES",
                   help="end the run after the last epoch that fits in this many minutes of "
                        "training (judged by the epoch before it), then finish it as usual; "
                        "--resume continues it (%(default)s: no limit)")
    p.add_argument("--resume", default=None,
                   help="continue from a run's model.npz, with its settings (a model option that "
                        "differs from the checkpoint's is refused)")
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress lines")
    p.set_defaults(run=run)
