"""`minivae bench`: training-step speed, matrix-product peak and memory (docs/performance.md).

``minivae bench --eval`` times the importance-sampled log-likelihood instead
(minivae.bench.evaluation).
"""
import argparse
import json
import sys

from minivae.utils.validation import FLOAT_DTYPES
from minivae.cli.common import check_counts, sizes


def run(args):
    """Run the benchmark and print its report (or JSON)."""
    from minivae.bench import step as bench, evaluation as bench_eval
    from minivae.data import datasets

    check_counts(args, {"threads": 1})
    if args.threads is not None:
        bench.set_blas_threads(args.threads)
    data = datasets.load_mnist(args.data)
    if args.eval:
        result = bench_eval.run(data.test.x, hidden=args.hidden, z_dim=args.z_dim, k=args.k,
                                n_examples=args.examples, batch_size=args.batch_size or 100,
                                chunk=args.chunk, dtype=args.dtype, repeats=args.repeats or 3,
                                seed=args.seed, data=data.source, progress=sys.stderr)
        report = bench_eval.format_report
    else:
        result = bench.run(data.train.x, hidden=args.hidden, z_dim=args.z_dim,
                           batch_size=args.batch_size or 128, n_samples=args.samples,
                           dtype=args.dtype, steps=args.steps, repeats=args.repeats or 5,
                           warmup=args.warmup, seed=args.seed, data=data.source,
                           progress=sys.stderr)
        report = bench.format_report
    print(json.dumps(result, indent=2) if args.json else report(result))
    return 0


def add_parser(commands):
    """Add the command's options to the ``minivae`` parser's subcommands."""
    p = commands.add_parser(
        "bench", help="time training steps (or, with --eval, the log-likelihood) of the "
                      "standard model; report what limits speed",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="BLAS threads: --threads, or OPENBLAS_NUM_THREADS / OMP_NUM_THREADS in the "
               "environment; the count used is in the output. Progress goes to stderr.")
    p.add_argument("--data", default=None,
                   help="folder with MNIST IDX files (default: the embedded subset)")
    p.add_argument("--hidden", type=sizes, default=(400,), help="hidden widths, comma-separated")
    p.add_argument("--z-dim", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=None,
                   help="minibatch (default 128); with --eval, examples per pass (default 100)")
    p.add_argument("--samples", type=int, default=1, help="L, Monte Carlo samples per example")
    p.add_argument("--dtype", default="float32", choices=list(FLOAT_DTYPES))
    p.add_argument("--steps", type=int, default=50, help="timed steps per repeat")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed blocks (default 5), with --eval timed calls (default 3); "
                        "the median is reported")
    p.add_argument("--warmup", type=int, default=20, help="untimed steps first")
    p.add_argument("--threads", type=int, default=None,
                   help="BLAS threads (default: as set by the environment)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    e = p.add_argument_group("--eval: time minivae.evaluate.log_likelihood instead")
    e.add_argument("--eval", action="store_true",
                   help="time the importance-sampled log-likelihood on binarised test images")
    e.add_argument("--k", type=int, default=5000, help="importance samples per image")
    e.add_argument("--examples", type=int, default=200, help="test images")
    e.add_argument("--chunk", type=int, default=None,
                   help="samples per pass (default: minivae.evaluate.default_chunk)")
    p.set_defaults(run=run)
