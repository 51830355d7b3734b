"""`minivae bench`: training-step speed, matrix-product peak and memory (docs/performance.md)."""
import argparse
import json
import sys

from minivae.checks import FLOAT_DTYPES
from minivae.commands.common import check_counts, sizes


def run(args):
    """Run the benchmark and print its report (or JSON)."""
    from minivae import bench, datasets

    check_counts(args, {"threads": 1})
    if args.threads is not None:
        bench.set_blas_threads(args.threads)
    data = datasets.load_mnist(args.data)
    result = bench.run(data.train.x, hidden=args.hidden, z_dim=args.z_dim,
                       batch_size=args.batch_size, n_samples=args.samples, dtype=args.dtype,
                       steps=args.steps, repeats=args.repeats, warmup=args.warmup, seed=args.seed,
                       data=data.source, progress=sys.stderr)
    print(json.dumps(result, indent=2) if args.json else bench.format_report(result))
    return 0


def add_parser(commands):
    """Add the command's options to the ``minivae`` parser's subcommands."""
    p = commands.add_parser(
        "bench", help="time training steps of the standard model; report what limits speed",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="BLAS threads: --threads, or OPENBLAS_NUM_THREADS / OMP_NUM_THREADS in the "
               "environment; the count used is in the output. Progress goes to stderr.")
    p.add_argument("--data", default=None,
                   help="folder with MNIST IDX files (default: the embedded subset)")
    p.add_argument("--hidden", type=sizes, default=(400,), help="hidden widths, comma-separated")
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
    p.set_defaults(run=run)
