"""`minivae sample`: digits drawn from p(z) through a saved model's decoder, into a PNG."""
import os

from minivae.commands.common import check_counts


def run(args):
    """Write args.n digits decoded from z ~ p(z) to a PNG."""
    import numpy as np

    from minivae import checkpoint, plots

    check_counts(args, {"n": 1, "seed": 0})
    model = checkpoint.load_model(args.model)
    images = model.sample(args.n, rng=np.random.default_rng(args.seed))
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.model)), "samples.png")
    cols = int(np.ceil(np.sqrt(args.n)))
    plots.plot_samples(images, out, n_rows=int(np.ceil(args.n / cols)), n_cols=cols)
    print(f"wrote {args.n} samples from p(z) through {args.model} to {out}")
    return 0


def add_parser(commands):
    """Add the command's options to the ``minivae`` parser's subcommands."""
    p = commands.add_parser("sample", help="draw samples from a saved model into a PNG")
    p.add_argument("model", help="a model.npz written by `minivae train`")
    p.add_argument("--n", type=int, default=64, help="number of samples")
    p.add_argument("--out", default=None, help="PNG path (default: samples.png beside the model)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run)
