"""`minivae bench`: training-step speed, matrix-product peak and memory (docs/performance.md).

``minivae bench --eval`` times the importance-sampled log-likelihood instead
(minivae.bench.evaluation).
"""
import argparse
import json
import sys

from minivae import presets
from minivae.utils.validation import FLOAT_DTYPES
from minivae.cli.common import check_counts, sizes

STEP, EVAL = presets.BENCH, presets.EVAL_BENCH


def run(args):
    """Run the benchmark and print its report (or JSON)."""
    from minivae.bench import step as bench, evaluation as bench_eval
    from minivae.data import datasets

    check_counts(args, {"threads": 1, "z_dim": 1, "batch_size": 1, "n_samples": 1, "steps": 1,
                        "repeats": 1, "warmup": 0, "seed": 0, "k": 1, "n_examples": 1, "chunk": 1})
    if args.threads is not None:
        bench.set_blas_threads(args.threads)
    data = datasets.load_mnist(args.data)
    if args.eval:
        result = bench_eval.run(data.test.x, hidden=args.hidden, z_dim=args.z_dim, k=args.k,
                                n_examples=args.n_examples,
                                batch_size=args.batch_size or EVAL["batch_size"], chunk=args.chunk,
                                dtype=args.dtype, repeats=args.repeats or EVAL["repeats"],
                                seed=args.seed, data=data.source, progress=sys.stderr)
        report = bench_eval.format_report
    else:
        result = bench.run(data.train.x, hidden=args.hidden, z_dim=args.z_dim,
                           batch_size=args.batch_size or STEP["batch_size"], n_samples=args.n_samples,
                           dtype=args.dtype, steps=args.steps, repeats=args.repeats or STEP["repeats"],
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
    p.add_argument("--hidden", type=sizes, default=STEP["hidden"], help="hidden widths, comma-separated")
    p.add_argument("--z-dim", type=int, default=STEP["z_dim"], help="latent size D")
    p.add_argument("--batch-size", type=int, default=None,
                   help=f"minibatch (default {STEP['batch_size']}); with --eval, examples per pass "
                        f"(default {EVAL['batch_size']})")
    p.add_argument("--n-samples", type=int, default=STEP["n_samples"],
                   help="L, Monte Carlo samples per example")
    p.add_argument("--dtype", default=STEP["dtype"], choices=list(FLOAT_DTYPES))
    p.add_argument("--steps", type=int, default=STEP["steps"], help="timed steps per repeat")
    p.add_argument("--repeats", type=int, default=None,
                   help=f"timed blocks (default {STEP['repeats']}), with --eval timed calls (default "
                        f"{EVAL['repeats']}); the median is reported")
    p.add_argument("--warmup", type=int, default=STEP["warmup"], help="untimed steps first")
    p.add_argument("--threads", type=int, default=None,
                   help="BLAS threads (default: as set by the environment)")
    p.add_argument("--seed", type=int, default=STEP["seed"])
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    e = p.add_argument_group("--eval: time minivae.evaluate.log_likelihood instead")
    e.add_argument("--eval", action="store_true",
                   help="time the importance-sampled log-likelihood on binarised test images")
    e.add_argument("--k", type=int, default=EVAL["k"], help="importance samples per image")
    e.add_argument("--n-examples", type=int, default=EVAL["n_examples"], help="test images")
    e.add_argument("--chunk", type=int, default=None,
                   help="samples per pass (default: minivae.evaluate.default_chunk)")
    p.set_defaults(run=run)
