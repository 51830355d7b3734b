"""Grading: each exercise's tests run with pytest in a subprocess, and scored.

:func:`grade` has two modes:

* isolated (given the solution tree as ``reference``): each exercise is tested
  on a copy of the reference in which only that exercise's regions hold the
  student's lines (:func:`compose`), so a row measures that exercise alone, even
  when its tests also run code of other exercises (estimator B calls the
  analytic KL);
* whole tree (no reference): the submission is tested as it is, as a student
  would on their own machine.

Each run is ``pytest -v`` with the graded tree first on PYTHONPATH and the
plugin :data:`GRADING_PLUGIN` (_grading_plugin.py, beside this file);
outcomes come from its JUnit XML, and :func:`format_report` prints the scores.
"""
import ast
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

from minivae.assignment.edition import _environment, _is_student_edition, copy_tree, read_manifest
from minivae.assignment.exercises import PACKAGE, AssignmentError, exercise_table, select
from minivae.assignment.regions import check_coverage, find_regions, render, scan
from minivae.progress import Progress

# the pytest plugin of the grader's runs, copied into each run's scratch folder
GRADING_PLUGIN = Path(__file__).with_name("_grading_plugin.py")

# a line of `pytest -v`: "tests/test_nn.py::test_affine_backward[...] PASSED   [ 12%]"
_VERDICT = re.compile(r"^(?P<id>\S.*?::.+?) (?P<verdict>PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b")
_OUTCOME_OF_VERDICT = {"PASSED": "passed", "FAILED": "failed", "ERROR": "error", "SKIPPED": "skipped",
                       "XFAIL": "skipped", "XPASS": "passed"}


def check_tree(directory, package=PACKAGE):
    """Raise AssignmentError unless ``directory`` holds ``package/__init__.py`` and ``tests/``."""
    directory = Path(directory)
    if not (directory / package / "__init__.py").is_file() or not (directory / "tests").is_dir():
        raise AssignmentError(f"{directory} is not a {package} tree: expected {package}/__init__.py "
                              "and tests/ in it")


def grade(directory, exercises=None, *, reference=None, table=None, package=PACKAGE, timeout=600,
          stream=None):
    """Run each exercise's tests on the tree ``directory`` and score them.

    Parameters
    ----------
    directory : path
        The submission: a tree made by :func:`make_assignment` (or the original).
    exercises : list of str, optional
        What to grade; default: the manifest's exercises, or every exercise.
    reference : path, optional
        The solution tree.  Given: isolated grading, one pytest run per exercise
        on a copy of the reference whose regions of that exercise hold the
        submission's lines (the submission must keep the markers) and whose tests
        are the reference's.  None: one pytest run on the submission as it is.
    table : dict, optional
        The exercise table (default :data:`EXERCISES`).
    timeout : float
        Seconds one pytest run may take before it is stopped.
    stream : text stream, optional
        Progress lines (default stderr).

    Returns
    -------
    report : dict
        ``mode``, ``directory``, ``reference``, ``exercises`` (one row per exercise:
        exercise, title, passed, total, points, max_points, first_failure, error,
        tests), the totals ``passed``, ``total``, ``points``, ``max_points``, and
        ``all_passed`` (every test of every exercise passed).
    """
    table = exercise_table(table)
    stream = sys.stderr if stream is None else stream
    directory = Path(directory).resolve()
    check_tree(directory, package)
    names = select(read_manifest(directory) if exercises is None else exercises, table)
    rows = []
    if reference is None:
        entries = list(dict.fromkeys(e for name in names for e in table[name]["tests"]))
        Progress(stream).say(f"grading {directory} as it is: {len(names)} exercise(s), {len(entries)} test id(s)")
        results = run_tests(directory, entries, stream, timeout)
        rows = [_score(name, table, results) for name in names]
    else:
        reference = Path(reference).resolve()
        check_tree(reference, package)
        if _is_student_edition(reference):
            raise AssignmentError(f"the reference {reference} is a student edition, not the solution")
        scanned = scan(reference, package, table)
        for name in names:
            Progress(stream).say(f"grading {name}: the submission's lines in {reference.name}'s solution")
            with tempfile.TemporaryDirectory(prefix=f"minivae-grade-{name}-") as tmp:
                tree = Path(tmp) / "tree"
                try:
                    compose(reference, scanned, directory, name, tree, table)
                except AssignmentError as error:
                    Progress(stream).say(f"  error: {error}")
                    rows.append(_score(name, table, None, error=str(error)))
                    continue
                rows.append(_score(name, table, run_tests(tree, table[name]["tests"], stream, timeout)))
    return {
        "mode": "whole tree" if reference is None else "isolated",
        "directory": str(directory),
        "reference": None if reference is None else str(reference),
        "exercises": rows,
        "passed": sum(r["passed"] for r in rows),
        "total": sum(r["total"] for r in rows),
        "points": round(sum(r["points"] for r in rows), 2),
        "max_points": sum(r["max_points"] for r in rows),
        "all_passed": all(r["error"] is None and 0 < r["total"] == r["passed"] for r in rows),
    }


def compose(reference, scanned, submission, name, tree, table=None):
    """Write into ``tree`` the reference solution with the submission's lines in ``name``'s regions.

    ``scanned`` is ``scan(reference)``.  Raises AssignmentError if the reference
    has no region of ``name`` or the submission's markers of ``name`` are missing,
    malformed or fewer or more than the reference's.
    """
    sources = composed_sources(scanned, submission, name, table)
    copy_tree(reference, tree)
    for rel, text in sources.items():
        (Path(tree) / rel).write_text(text, encoding="utf-8")


def composed_sources(scanned, submission, name, table=None):
    """The files :func:`compose` writes over its copy of the reference: {relative path: text}.

    Every file of the reference with a region (``scanned``, from :func:`scan`),
    with the regions of ``name`` holding the submission's lines and the other
    regions the reference's.  Nothing else of the submission is read, so a row
    of isolated grading depends on the submission's lines of its exercise only.
    """
    table = exercise_table(table)
    check_coverage(scanned, [name], table)
    sources = {}
    for rel, (text, regions) in scanned.items():
        bodies = []
        if any(r["exercise"] == name for r in regions):
            path = Path(submission) / rel
            if not path.is_file():
                raise AssignmentError(f"the submission has no {rel}")
            theirs = path.read_text(encoding="utf-8")
            found = [r for r in find_regions(theirs, rel, table) if r["exercise"] == name]
            expected = sum(r["exercise"] == name for r in regions)
            if len(found) != expected:
                raise AssignmentError(
                    f"{rel}: the submission has {len(found)} region(s) of {name}, the solution "
                    f"{expected}; keep the lines '# BEGIN SOLUTION {name}' and '# END SOLUTION' "
                    "around your code")
            lines = theirs.splitlines(keepends=True)
            bodies = [lines[r["begin"] + 1:r["end"]] for r in found]
        sources[rel] = render(text, regions, _take_bodies(name, bodies))
    return sources


def _take_bodies(name, bodies):
    """A ``replace`` for :func:`render`: ``name``'s regions get ``bodies`` in order, others keep theirs."""
    remaining = iter(bodies)

    def replace(region, body):
        return next(remaining) if region["exercise"] == name else body

    return replace


def run_tests(tree, entries, stream, timeout):
    """Run the tests ``entries`` (node ids) in ``tree`` with pytest; collect every outcome.

    Ids whose file or function does not exist are not passed to pytest but
    reported as missing.  pytest gets the test files, not node ids (one that does
    not exist, e.g. a renamed parametrisation, would stop the whole run), and the
    grading plugin deselects every collected test no entry names, so only the
    listed parametrisations run; a test module that fails to import does not stop
    the others.  Returns {"outcomes": {node id: (outcome, message)}, "missing":
    {entry: why}, "collect_errors": {file: message}, "note": why nothing ran, or None}.
    """
    tree = Path(tree)
    files, selected, missing = [], [], {}
    for entry in entries:
        base = entry.split("[", 1)[0]
        why = _missing_test(tree, base)
        if why:
            missing[entry] = why
            continue
        files.append(base.partition("::")[0])
        selected.append(entry)
    results = {"outcomes": {}, "missing": missing, "collect_errors": {}, "note": None}
    if files:
        results.update(_run_pytest(tree, list(dict.fromkeys(files)), selected, stream, timeout))
    return results


def _missing_test(tree, base):
    """Why the test ``file::name`` does not exist in ``tree``, or None if it does (or cannot tell)."""
    file, _, rest = base.partition("::")
    path = tree / file
    if not path.is_file():
        return f"test file {file} not found"
    try:
        scope = ast.parse(path.read_text(encoding="utf-8")).body
    except (SyntaxError, ValueError):
        return None                       # pytest will report why it cannot collect the file
    for name in rest.split("::") if rest else []:
        node = next((s for s in scope if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                         ast.ClassDef)) and s.name == name), None)
        if node is None:
            return f"test {base} not found (renamed or deleted?)"
        scope = node.body
    return None


def _run_pytest(tree, files, entries, stream, timeout):
    """One ``pytest -v`` of the tests ``entries`` in ``files`` of ``tree``; outcomes from its JUnit XML.

    Its verdicts are echoed to ``stream`` as they come.
    """
    with tempfile.TemporaryDirectory(prefix="minivae-grade-") as scratch:
        junit = os.path.join(scratch, "junit.xml")
        shutil.copyfile(GRADING_PLUGIN, os.path.join(scratch, "_minivae_grading.py"))
        with open(os.path.join(scratch, "tests.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(entries) + "\n")
        env = _environment(tree)
        env["PYTHONPATH"] += os.pathsep + scratch
        env["MINIVAE_GRADING_SCRATCH"] = scratch
        command = [sys.executable, "-m", "pytest", "-v", "--color=no", "-p", "no:cacheprovider",
                   "-p", "_minivae_grading", "--continue-on-collection-errors", "--rootdir", str(tree),
                   "-o", "junit_family=xunit1", f"--junitxml={junit}", *files]
        verdicts, tail, stopped = {}, [], []
        process = subprocess.Popen(command, cwd=tree, env=env, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

        def stop():
            stopped.append(True)
            process.kill()

        timer = threading.Timer(timeout, stop)
        timer.start()
        try:
            for line in process.stdout:          # one line per finished test, as pytest -v goes
                line = line.rstrip()
                tail = (tail + [line])[-20:]
                match = _VERDICT.match(line)
                if match:
                    verdicts[match["id"]] = match["verdict"]
                    Progress(stream).say(f"  {match['verdict']:<7} {match['id']}")
            process.wait()
        finally:
            timer.cancel()
        outcomes, collect_errors = {}, {}
        if not stopped and os.path.isfile(junit) and os.path.getsize(junit) > 0:
            outcomes, collect_errors = _read_junit(junit)
    note = None
    if stopped:
        note = f"not finished: the test run was stopped after {timeout:g} s (an endless loop?)"
        outcomes = {i: (_OUTCOME_OF_VERDICT[v], f"{v} (details lost: the run was stopped)")
                    for i, v in verdicts.items()}
    elif not outcomes and process.returncode not in (0, 1):
        last = next((line for line in reversed(tail) if line.strip() and not line.startswith("=")),
                    "no output")
        note = f"pytest stopped before running the tests (exit status {process.returncode}): {last}"
    return {"outcomes": outcomes, "collect_errors": collect_errors, "note": note}


def _read_junit(path):
    """{node id: (outcome, message)} and {test file: collection error} from pytest's xunit1 XML."""
    outcomes, collect_errors = {}, {}
    for case in ET.parse(path).getroot().iter("testcase"):
        file, classname, name = case.get("file", ""), case.get("classname", ""), case.get("name", "")
        failure, error, skipped = case.find("failure"), case.find("error"), case.find("skipped")
        if not classname and error is not None:          # the file could not be collected
            errors = [ln[1:].strip() for ln in (error.text or "").splitlines() if ln.startswith("E ")]
            collect_errors[file] = f"error collecting {file}: " + (errors[-1] if errors else
                                                                   error.get("message", ""))
            continue
        module = file[:-3].replace("/", ".")
        classes = classname[len(module) + 1:].split(".") if classname.startswith(module + ".") else []
        nodeid = "::".join([file, *classes, name])
        if failure is not None:
            outcomes[nodeid] = ("failed", failure.get("message", ""))
        elif error is not None:
            outcomes[nodeid] = ("error", error.get("message", ""))
        elif skipped is not None:
            outcomes[nodeid] = ("skipped", "skipped: " + skipped.get("message", ""))
        else:
            outcomes[nodeid] = ("passed", "")
    return outcomes, collect_errors


def _matches(nodeid, entry):
    return nodeid == entry or nodeid.startswith(entry + "[") or nodeid.startswith(entry + "::")


def _score(name, table, results, error=None):
    """One row of the report: the outcomes of the exercise's tests, its points, its first failure."""
    entry = table[name]
    tests = []
    if results is not None:
        for test in entry["tests"]:
            if test in results["missing"]:
                tests.append({"id": test, "outcome": "not run", "message": results["missing"][test]})
                continue
            matched = [(i, o) for i, o in results["outcomes"].items() if _matches(i, test)]
            if not matched:
                why = (results["collect_errors"].get(test.split("::")[0]) or results["note"]
                       or f"no test matched {test}")
                tests.append({"id": test, "outcome": "not run", "message": why})
            known = {t["id"] for t in tests}
            tests += [{"id": i, "outcome": outcome, "message": message}
                      for i, (outcome, message) in matched if i not in known]
    passed = sum(t["outcome"] == "passed" for t in tests)
    failures = [t["message"] for t in tests if t["outcome"] != "passed"]
    first = error
    if first is None and failures:
        first = (failures[0].strip().splitlines() or ["(no message)"])[0]
    return {"exercise": name, "title": entry["title"], "passed": passed, "total": len(tests),
            "points": round(entry["points"] * passed / len(tests), 2) if tests else 0.0,
            "max_points": entry["points"], "first_failure": first, "error": error, "tests": tests}


def format_report(report):
    """The report of :func:`grade` as a text table, one row per exercise, then the totals."""
    rows = report["exercises"]
    width = max([len("exercise")] + [len(r["exercise"]) for r in rows])
    lines = [f"{report['directory']} ({report['mode']}"
             + (f", reference {report['reference']})" if report["reference"] else ")"),
             f"{'exercise':<{width}}  {'tests':>7}  {'points':>11}  first failure",
             "-" * (width + 50)]
    for r in rows:
        failure = ("error: " + r["error"]) if r["error"] else (r["first_failure"] or "")
        lines.append(f"{r['exercise']:<{width}}  {r['passed']:>3}/{r['total']:<3}  "
                     f"{r['points']:>5g}/{r['max_points']:<5g}  {failure}")
    lines.append("-" * (width + 50))
    lines.append(f"{'total':<{width}}  {report['passed']:>3}/{report['total']:<3}  "
                 f"{report['points']:>5g}/{report['max_points']:<5g}")
    done = sum(r["error"] is None and 0 < r["total"] == r["passed"] for r in rows)
    lines.append(f"\n{done} of {len(rows)} exercise(s) complete"
                 + ("" if report["all_passed"] else "; the first failure of each row says why"))
    return "\n".join(lines)
