"""The `minivae` command (also `python -m minivae`).

    minivae train      train a VAE (default: the embedded MNIST subset) into a run folder
    minivae sample     draw digits from a saved model
    minivae gradcheck  check every hand-written gradient against finite differences

Errors in what the user typed or gave (a bad option, a missing file) are
printed as one line, without a traceback, and the exit status is 2.
"""
import argparse
import json
import os
import sys
import time


def cmd_gradcheck(args):
    from minivae import gradcheck
    rows = gradcheck.gradcheck_rows(seed=args.seed)
    print(gradcheck.format_rows(rows))
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


def cmd_train(args):
    import numpy as np

    from minivae import checkpoint, datasets
    from minivae.training import evaluate_elbo, fixed_binarization, train
    from minivae.vae import VAE

    for name in ("epochs", "batch_size", "samples", "z_dim"):
        if getattr(args, name) < 1:   # checked before anything is written
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    out = args.out or os.path.join("runs", time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out, exist_ok=True)
    model_path = os.path.join(out, "model.npz")
    data = datasets.load_mnist(args.data, download=args.download)
    print(f"data: {data.source}: {len(data.train.x)} training, {len(data.test.x)} test images")

    resume = None
    if args.resume:
        resume = checkpoint.load(args.resume)
        model = resume["model"]
        print(f"resuming from {args.resume} (epoch {resume['train_state']['epoch']})")
    else:
        model = VAE(data.train.x.shape[1], args.z_dim, hidden=args.hidden,
                    likelihood=args.likelihood, activation=args.activation,
                    dtype=np.dtype(args.dtype), seed=args.seed)
    print(f"model: {model}")
    print(f"training {args.epochs} epochs, batch {args.batch_size}, {args.optimizer} lr {args.lr}, "
          f"estimator {'B (analytic KL)' if args.kl == 'analytic' else 'A (Monte Carlo)'}, "
          f"L = {args.samples}; checkpoint: {model_path}")
    tic = time.perf_counter()
    history = train(model, data.train.x, data.test.x, epochs=args.epochs,
                    batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
                    n_samples=args.samples, kl=args.kl, warmup_epochs=args.warmup,
                    seed=args.seed, checkpoint_path=model_path, resume=resume,
                    verbose=not args.quiet)
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

    from minivae import plots
    from minivae.vae import VAE

    model = VAE.load(args.model)
    images = model.sample(args.n, rng=np.random.default_rng(args.seed))
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.model)), "samples.png")
    cols = int(np.ceil(np.sqrt(args.n)))
    plots.plot_samples(images, out, n_rows=int(np.ceil(args.n / cols)), n_cols=cols)
    print(f"wrote {args.n} samples from p(z) through {args.model} to {out}")
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
    p.add_argument("--activation", default="relu",
                   choices=["relu", "tanh", "softplus", "sigmoid", "identity"])
    p.add_argument("--likelihood", default="bernoulli", choices=["bernoulli", "gaussian"])
    p.add_argument("--kl", default="analytic", choices=["analytic", "mc"],
                   help="ELBO estimator: B (analytic KL) or A (Monte Carlo)")
    p.add_argument("--samples", type=int, default=1, help="L, Monte Carlo samples per example")
    p.add_argument("--optimizer", default="adam", choices=["sgd", "momentum", "adagrad", "adam"])
    p.add_argument("--lr", type=float, default=DEFAULTS["lr"])
    p.add_argument("--warmup", type=int, default=0, help="KL warm-up epochs (0: none)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
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

    p = commands.add_parser("gradcheck", help="check every gradient against finite differences")
    p.add_argument("--seed", type=int, default=0, help="seed of the random test inputs")
    p.set_defaults(run=cmd_gradcheck)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, TypeError, OSError) as error:   # OSError: missing files, failed downloads
        print(f"minivae {args.command}: error: {error}", file=sys.stderr)
        return 2
