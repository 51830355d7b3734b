"""The `minivae` command (also `python -m minivae`).

    minivae train      train a VAE (default: the embedded MNIST subset) into a run folder
    minivae sample     draw digits from a saved model
    minivae gradcheck  check every hand-written gradient against finite differences

Errors in what the user typed or gave (a bad option, a missing file) are
printed as one line, without a traceback, and the exit status is 2.
"""
import argparse
import sys


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


def build_parser():
    parser = argparse.ArgumentParser(
        prog="minivae", description="The Variational Autoencoder from scratch in NumPy.")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("gradcheck", help="check every gradient against finite differences")
    p.add_argument("--seed", type=int, default=0, help="seed of the random test inputs")
    p.set_defaults(run=cmd_gradcheck)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, TypeError, FileNotFoundError) as error:
        print(f"minivae {args.command}: error: {error}", file=sys.stderr)
        return 2
