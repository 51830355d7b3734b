"""Local feedback: an exercise's own tests (finite differences, properties) run with pytest.

What a student runs while working (``minivae assignment check NAME``): the
tests the exercise table lists, on the tree as it is, with the plugin
_grading_plugin.py (only the listed parametrisations; Hypothesis stops at the
first failing example).  This is feedback, not the score: the score comes from
minivae.assignment.grader, which never runs the student's tests.
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

from minivae.assignment.edition import _environment
from minivae.assignment.exercises import exercise_table
from minivae.progress import Progress

# the pytest plugin of these runs, copied into each run's scratch folder
GRADING_PLUGIN = Path(__file__).with_name("_grading_plugin.py")

# a line of `pytest -v`: "tests/test_nn.py::test_affine_backward[...] PASSED   [ 12%]"
_VERDICT = re.compile(r"^(?P<id>\S.*?::.+?) (?P<verdict>PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b")
_OUTCOME_OF_VERDICT = {"PASSED": "passed", "FAILED": "failed", "ERROR": "error", "SKIPPED": "skipped",
                       "XFAIL": "skipped", "XPASS": "passed"}


def check_locally(directory, names, table=None, stream=None, timeout=600):
    """Run the tests of the exercises ``names`` on the tree ``directory``; one row per exercise.

    A row: exercise, title, passed, total, first_failure, tests.
    """
    table = exercise_table(table)
    stream = sys.stderr if stream is None else stream
    entries = list(dict.fromkeys(e for name in names for e in table[name]["tests"]))
    results = run_tests(directory, entries, stream, timeout)
    return [_score(name, table, results) for name in names]


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
    """One row of the report: the outcomes of the exercise's tests and its first failure."""
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
            "first_failure": first, "error": error, "tests": tests}


def format_local(rows):
    """The rows of :func:`check_locally` as text: one line per exercise, then its failures."""
    lines = []
    for r in rows:
        lines.append(f"{r['exercise']}: {r['passed']}/{r['total']} tests pass"
                     + (f"; first failure: {r['first_failure']}" if r["first_failure"] else ""))
        lines += [f"  {t['outcome']:<8} {t['id']}" for t in r["tests"] if t["outcome"] != "passed"]
    return "\n".join(lines)
