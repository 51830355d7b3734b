"""`minivae assignment make / grade`: student editions and their autograder (docs/assignments.md)."""
import json
import sys

from minivae.checks import check_number
from minivae.commands.common import names


def make(args):
    """Write a student edition with the chosen exercises stubbed."""
    from minivae import assignment
    root = assignment.find_source_root()
    summary = assignment.make_assignment(root, args.out, names(args.exercises))
    print(f"wrote a student edition of {root} to {summary['out']}: {summary['regions']} region(s) "
          f"of {len(summary['exercises'])} exercise(s) stubbed in {', '.join(summary['files'])}")
    print(f"exercises: {', '.join(summary['exercises'])}")
    print(f"grade it with: minivae assignment grade {summary['out']}")
    return 0


def grade(args):
    """Grade a tree; exit status 0 only if every test passed."""
    from minivae import assignment
    check_number("--timeout", args.timeout, low=0, low_inclusive=False)
    reference = None
    if args.mode != "whole":
        reference, why = assignment.reference_solution()
        if reference is None and args.mode == "isolated":
            raise ValueError(f"--mode isolated needs the solution checkout: {why}")
        if reference is None:
            print(f"no reference solution ({why}); grading the tree as it is", file=sys.stderr)
    report = assignment.grade(args.directory, names(args.exercises), reference=reference,
                              timeout=args.timeout)
    print(json.dumps(report, indent=2) if args.json else assignment.format_report(report))
    return 0 if report["all_passed"] else 1


def add_parser(commands):
    """Add the command's options to the ``minivae`` parser's subcommands."""
    p = commands.add_parser("assignment", help="course assignments: make a student edition, grade one")
    actions = p.add_subparsers(dest="action", required=True)
    q = actions.add_parser("make", help="write a student edition with the chosen exercises stubbed")
    q.add_argument("--out", required=True, help="new folder for the student edition")
    q.add_argument("--exercises", default=None,
                   help="comma-separated exercise names (default: all; see docs/assignments.md)")
    q.set_defaults(run=make)
    q = actions.add_parser("grade", help="run each exercise's tests on a tree and print the scores")
    q.add_argument("directory", nargs="?", default=".", help="the tree to grade (default: .)")
    q.add_argument("--exercises", default=None,
                   help="comma-separated exercise names (default: those of its assignment.json, or all)")
    q.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    q.add_argument("--mode", default="auto", choices=["auto", "isolated", "whole"],
                   help="isolated: each exercise on the reference solution with only its own regions "
                        "from the tree (needs the solution checkout); whole: the tree as it is; "
                        "auto: isolated when the solution checkout is available")
    q.add_argument("--timeout", type=float, default=600, help="seconds allowed per pytest run")
    q.set_defaults(run=grade)
