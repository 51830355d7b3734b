"""`minivae assignment make / check / grade / grade-all / autograder / selftest` (docs/assignments.md)."""
import json
import os
import sys
from pathlib import Path

from minivae import assignment
from minivae.assignment import selftest as grader_selftest
from minivae.utils.validation import check_number
from minivae.cli.common import check_counts, names, write_json


def _table(args):
    config = assignment.load_config(getattr(args, "config", None))
    return assignment.apply_config({"exercises": config.get("settings", config.get("exercises", {}))}
                                   if isinstance(config.get("exercises"), dict) or "settings" in config else {})


def _check_limits(args):
    """--timeout a number of seconds > 0 (default: the --edition file's timeout, else 60) and --jobs
    a count, named as typed."""
    if args.timeout is None:
        args.timeout = assignment.load_config(args.edition).get("timeout", 60) if args.edition else 60
    check_number(args.timeout, "--timeout", low=0, low_inclusive=False)
    check_counts(args, {"jobs": 1})


def _reference(args):
    if getattr(args, "reference", None):
        return args.reference
    root, why = assignment.reference_solution()
    if root is None:
        raise ValueError(f"grading needs the solution checkout: {why}")
    return root


def make(args):
    """Write a student edition with the chosen exercises stubbed and the others withheld."""
    root = assignment.find_source_root()
    summary = assignment.make_assignment(root, args.out, names(args.exercises), table=_table(args),
                                         provide=names(args.provide) or (), untracked=args.untracked)
    print(f"wrote a student edition of {root} to {summary['out']}: {summary['regions']} region(s) "
          f"of {len(summary['exercises'])} exercise(s) stubbed in {', '.join(summary['files'])}")
    print(f"exercises: {', '.join(summary['exercises'])}; provided: {', '.join(summary['provided']) or 'none'}")
    if summary["left_out"]:
        print(f"left out (they repeat an answer): {', '.join(summary['left_out'])}")
    print("leak scan: no line of a withheld answer in the edition")
    return 0


def check(args):
    """Run an exercise's local checks (or its pytest tests) on the tree here: a student's feedback."""
    check_number(args.timeout, "--timeout", low=0, low_inclusive=False)
    if not Path(args.directory).is_dir():
        raise ValueError(f"--directory must be a folder, got {args.directory!r} (no such folder)")
    rows = assignment.check_locally(args.directory, assignment.select(names(args.exercises)),
                                    timeout=args.timeout, tests=args.tests)
    print(assignment.format_local(rows))
    if args.tests:
        return 0 if all(r["passed"] == r["total"] > 0 for r in rows) else 1
    return 0 if all(r["points"] == r["max_points"] for r in rows) else 1


def _edition(args):
    """The assignment of --edition (an edition's assignment.json or an autograder.json), else all
    exercises (or --exercises): never the submission's own assignment.json."""
    if getattr(args, "allow_root_worker", False):
        os.environ["MINIVAE_ALLOW_ROOT_WORKER"] = "1"
    if not args.edition:
        return {"exercises": None, "provided": []}
    settings = assignment.load_config(args.edition)
    info = settings.get("assignment", settings)
    if not isinstance(info.get("exercises"), list):
        raise ValueError(f"--edition {args.edition} names no list of exercises")
    return info


def grade(args):
    """Grade a submission; exit status 0 only if every check passed."""
    _check_limits(args)
    report = assignment.grade(args.directory, names(args.exercises), reference=_reference(args),
                              mode=args.mode, table=_table(args), timeout=args.timeout, jobs=args.jobs,
                              edition_info=_edition(args))
    if args.gradescope:
        write_json(args.gradescope, assignment.gradescope_results(report))
    print(json.dumps(report, indent=2) if args.json else assignment.format_report(report))
    return 0 if report["all_passed"] else 1


def grade_all(args):
    """Grade every submission folder of a folder, in parallel; write a CSV of the points."""
    _check_limits(args)
    reports = assignment.grade_all(args.submissions, reference=_reference(args), jobs=args.jobs,
                                   csv_path=args.csv, table=_table(args), timeout=args.timeout,
                                   mode=args.mode, exercises=names(args.exercises),
                                   edition_info=_edition(args), messages=args.messages)
    for name, report in reports.items():
        print(f"{name}: {report['points']:g}/{report['max_points']:g}"
              + (f"  error: {report['error']}" if report.get("error") else ""), file=sys.stdout)
    return 0


def similarity(args):
    """Rank the pairs of a class's submissions by how alike their regions are (normalised code)."""
    from_table = _table(args)
    report = assignment.similarity.similarity_report(
        args.submissions, _reference(args), assignment.select(names(args.exercises), from_table)
        if args.exercises else None, top=args.top, table=from_table)
    print(assignment.similarity.format_text(report))
    if args.html:
        with open(args.html, "w", encoding="utf-8") as f:
            f.write(assignment.similarity.format_html(report, shown=args.top))
    return 0


def autograder(args):
    """Build Gradescope's autograder zip from the solution checkout."""
    check_number(args.timeout, "--timeout", low=0, low_inclusive=False)
    root = assignment.find_source_root()
    summary = assignment.build_autograder(root, args.out, names(args.exercises), names(args.provide) or (),
                                          assignment.load_config(args.config), table=_table(args),
                                          timeout=args.timeout)
    print(f"wrote {summary['out']} (exercises: {', '.join(summary['exercises'])})")
    return 0


def selftest(args):
    """Check the grader's checks: reference full, stubs 0, the misconception bank and mutants caught."""
    regrades = grader_selftest.THOROUGH_REGRADES if args.thorough else grader_selftest.REGRADES
    report = grader_selftest.selftest(_reference(args), names(args.exercises), table=_table(args),
                                      bank_path=args.bank, mutate=not args.no_mutants, regrades=regrades)
    print(json.dumps(report, indent=2) if args.json else grader_selftest.format_selftest(report))
    return 0 if report["ok"] else 1


def _common(q, exercises_help):
    q.add_argument("--exercises", default=None, help=exercises_help)
    q.add_argument("--config", default=None, help="JSON settings: points, hints, visibility, extra checks")


def add_parser(commands):
    """Add the command's options to the ``minivae`` parser's subcommands."""
    p = commands.add_parser("assignment", help="course assignments: student editions, grading, Gradescope")
    actions = p.add_subparsers(dest="action", required=True)
    q = actions.add_parser("make", help="write a student edition (assigned stubbed, the rest withheld)")
    q.add_argument("--out", required=True, help="new folder for the student edition")
    _common(q, "comma-separated exercise names (default: all; see docs/assignments.md)")
    q.add_argument("--provide", default=None, help="exercises whose solution the edition ships")
    q.add_argument("--untracked", action="store_true", help="copy the folder as it is (outside git)")
    q.set_defaults(run=make)
    q = actions.add_parser("check", help="run an exercise's local checks here (a student's feedback)")
    q.add_argument("exercises", help="comma-separated exercise names")
    q.add_argument("--directory", default=".", help="the tree (default: .)")
    q.add_argument("--tests", action="store_true",
                   help="run the exercise's pytest tests instead (slower, more cases)")
    q.add_argument("--timeout", type=float, default=600, help="seconds allowed for the test run")
    q.set_defaults(run=check)
    for action, run, what in (("grade", grade, "a submission"), ("grade-all", grade_all, "a folder of them")):
        q = actions.add_parser(action, help=f"score {what} with the trusted checks")
        if action == "grade":
            q.add_argument("directory", nargs="?", default=".", help="the submission (default: .)")
            q.add_argument("--json", action="store_true", help="print the report as JSON")
            q.add_argument("--gradescope", default=None, help="write Gradescope's results.json here")
        else:
            q.add_argument("submissions", help="a folder with one sub-folder per submission")
            q.add_argument("--csv", default=None, help="write the points per exercise (and messages) here")
            q.add_argument("--messages", default=None, help="a folder: each student's feedback, one file each")
        q.add_argument("--edition", default=None,
                       help="the edition's assignment.json / autograder.json: the exercises to grade")
        _common(q, "comma-separated exercise names (default: those of the edition, or all)")
        q.add_argument("--reference", default=None, help="the solution checkout (default: this one)")
        q.add_argument("--mode", default="isolated", choices=["isolated", "whole"],
                       help="isolated: each exercise on the reference with only its regions from the "
                            "submission; whole: the submission's files as they are")
        q.add_argument("--timeout", type=float, default=None,
                       help="seconds per exercise's worker (default: the --edition file's timeout, else 60)")
        q.add_argument("--jobs", type=int, default=2, help="exercises (grade) or submissions graded at once")
        q.add_argument("--allow-root-worker", action="store_true",
                       help="without the sandbox, as root with no other uid: run submissions as root anyway")
        q.set_defaults(run=run)
    q = actions.add_parser("similarity", help="rank pairs of submissions by how alike their regions are")
    q.add_argument("submissions", help="a folder with one sub-folder per submission")
    _common(q, "comma-separated exercise names (default: all)")
    q.add_argument("--reference", default=None, help="the solution checkout (default: this one)")
    q.add_argument("--top", type=int, default=20, help="pairs listed (every flagged pair is listed too)")
    q.add_argument("--html", default=None, help="write the pairs side by side to this HTML page")
    q.set_defaults(run=similarity)
    q = actions.add_parser("autograder", help="build a Gradescope autograder zip")
    q.add_argument("--out", required=True, help="the zip to write")
    q.add_argument("--provide", default=None, help="exercises whose solution the edition ships")
    _common(q, "comma-separated exercise names (default: all)")
    q.add_argument("--timeout", type=float, default=60, help="seconds per exercise's worker on Gradescope")
    q.set_defaults(run=autograder)
    q = actions.add_parser("selftest", help="check the grader's own checks (bank of wrong answers, mutants)")
    _common(q, "comma-separated exercise names (default: all)")
    q.add_argument("--reference", default=None, help="the solution checkout (default: this one)")
    q.add_argument("--bank", default=None, help="the misconception bank (default: tests/misconceptions.py)")
    q.add_argument("--no-mutants", action="store_true", help="skip the automatic mutants")
    q.add_argument("--thorough", action="store_true",
                   help=f"regrade each bank entry with {grader_selftest.THOROUGH_REGRADES} fresh hidden seeds "
                        f"(default {grader_selftest.REGRADES}): the full matrix, before a term")
    q.add_argument("--json", action="store_true", help="print the report as JSON")
    q.set_defaults(run=selftest)
