"""`minivae gradcheck`: every hand-written gradient of the package against central differences."""
from minivae.cli.common import check_counts


def run(args):
    """Print the gradient-check table; exit status 1 if any component is above its bound."""
    from minivae.cli import gradcheck_table

    check_counts(args, {"seed": 0})
    rows = gradcheck_table.gradcheck_rows(seed=args.seed)
    print(gradcheck_table.format_rows(rows))
    failed = [r["component"] for r in rows if not r["ok"]]
    if failed:
        print(f"\n{len(failed)} component(s) above their bound: {', '.join(failed)}")
        return 1
    print(f"\nall {len(rows)} components within their bounds")
    return 0


def add_parser(commands):
    """Add the command's options to the ``minivae`` parser's subcommands."""
    p = commands.add_parser("gradcheck", help="check every gradient against finite differences")
    p.add_argument("--seed", type=int, default=0, help="seed of the random test inputs")
    p.set_defaults(run=run)
