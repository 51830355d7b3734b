"""`minivae sample`: digits drawn from p(z) through a saved model's decoder, into a PNG."""
import os

from minivae.cli.common import check_counts, check_out
from minivae.utils.memory import activation_count, check_fits


def output_path(out, model_path):
    """Where the PNG goes: ``out`` (a .png path, or a folder for samples.png in it), or beside the model."""
    check_out(out)
    if out is None:
        return os.path.join(os.path.dirname(os.path.abspath(model_path)), "samples.png")
    if os.path.isdir(out):
        return os.path.join(out, "samples.png")
    if not out.lower().endswith(".png"):
        raise ValueError(f"--out must be a .png file or an existing folder, got {out!r}")
    return out


def run(args):
    """Write args.n digits decoded from z ~ p(z) to a PNG."""
    import numpy as np

    from minivae.runs import checkpoint
    from minivae.experiments import plots

    check_counts(args, {"n": 1, "seed": 0})
    out = output_path(args.out, args.model)
    model = checkpoint.load_model(args.model)
    cols = int(np.ceil(np.sqrt(args.n)))
    rows = int(np.ceil(args.n / cols))
    # the decoder's activations, the image grid (float64) and the figure: RGBA pixels, each
    # image 0.6 inch at 100 dpi (minivae.experiments.plots.plot_samples)
    check_fits(f"sample --n {args.n}", model.dtype.itemsize * activation_count(
        model.x_dim, model.z_dim, model.hidden, args.n) + 8 * args.n * model.x_dim
        + 4 * (60 * cols + 100) * (60 * rows + 100), hint="; ask for fewer samples")
    images = model.sample(args.n, rng=np.random.default_rng(args.seed))
    plots.plot_samples(images, out, n_rows=rows, n_cols=cols)
    print(f"wrote {args.n} samples from p(z) through {args.model} to {out}")
    return 0


def add_parser(commands):
    """Add the command's options to the ``minivae`` parser's subcommands."""
    p = commands.add_parser("sample", help="draw samples from a saved model into a PNG")
    p.add_argument("model", help="a model.npz written by `minivae train`")
    p.add_argument("--n", type=int, default=64, help="number of samples")
    p.add_argument("--out", default=None,
                   help="PNG path, or a folder for samples.png (default: samples.png beside the model)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run)
