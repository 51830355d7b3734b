"""The `minivae` command (also `python -m minivae`).

The subcommands::

    minivae train      train a VAE (default: the embedded MNIST subset) into a run folder
    minivae sample     draw digits from a saved model
    minivae evaluate   test ELBO and importance-sampled log-likelihood of a saved model
    minivae gradcheck  check every hand-written gradient against finite differences
    minivae bench      time training steps; matrix-product peak, memory (docs/performance.md)
    minivae assignment make|grade  a student edition with stubs, and its autograder
    minivae reproduce fig2|fig3|iwae  rerun a paper's experiment (docs/reproduction.md)

Errors in what the user typed or gave (a bad option, a missing file) are
printed as one line, without a traceback, and the exit status is 2.  A
training run that diverges (NaN loss) says so in one line and exits with
status 1; one stopped by Ctrl-C or SIGTERM saves a checkpoint and exits with 130, and so
does any command interrupted by Ctrl-C (or a download by SIGTERM), in one line.
In a student edition, reaching an exercise that is still a stub prints its hint
and the line to write, and exits with status 1.

Each command is a module of ``minivae.cli`` with ``add_parser`` (its
options, their choices taken from the package's own registries) and ``run``;
a command imports the modules it needs when it runs, so ``minivae --help`` and
``minivae gradcheck`` never load matplotlib or the download code.
"""
import argparse
import sys
import traceback

from minivae.cli import assignment, bench, evaluate, gradcheck, reproduce, sample, train


def build_parser():
    parser = argparse.ArgumentParser(
        prog="minivae", description="The Variational Autoencoder from scratch in NumPy.")
    commands = parser.add_subparsers(dest="command", required=True)
    for command in (train, sample, evaluate, gradcheck, bench, assignment, reproduce):
        command.add_parser(commands)
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
    except MemoryError:          # sizes are checked first; this is what slips past the estimates
        print(f"minivae {args.command}: error: not enough memory for these sizes", file=sys.stderr)
        return 2
    except KeyboardInterrupt:    # Ctrl-C, or SIGTERM during a download: nothing half-written left
        print(f"minivae {args.command}: interrupted", file=sys.stderr)
        return 130
    except NotImplementedError as error:
        # a student edition (`minivae assignment make`) reached an exercise's stub: its hint,
        # and where to write the missing lines, instead of a page of traceback
        where = traceback.extract_tb(error.__traceback__)[-1]
        print(f"minivae {args.command}: {error}\n  to do in {where.filename}, line {where.lineno}, "
              f"in {where.name}", file=sys.stderr)
        return 1
