"""Local feedback: each exercise's named checks, run on the student's own tree in a few seconds.

What a student runs while working (``minivae assignment check NAME``):
:func:`check_locally` runs, in one worker process (minivae/assignment/_worker.py,
no sandbox: it is the student's own code), the checks of LOCAL, which carry the
grader's check names and points but need no reference solution
(minivae/assignment/selfchecks.py: gradients against central differences with
their relative error, values against what is known by hand or by identities,
float32 against float64).  Each check is all-or-nothing, like the grader's; a
failing one says which array, by how much, and the exercise's hint.  This is
feedback, not the score: the score comes from minivae.assignment.grader.

``check --tests`` runs the exercise's own pytest tests instead (:func:`run_tests`,
slower: pytest's start-up and Hypothesis), with the plugin _grading_plugin.py.
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

import numpy as np

from minivae.assignment.edition import _environment
from minivae.gradcheck import diagnose, rel_error
from minivae.assignment.exercises import exercise_table, stub_message
from minivae.assignment.grader import tolerance
from minivae.assignment.launch import run_worker
from minivae.utils.progress import Progress

# the pytest plugin of `check --tests`, copied into each run's scratch folder
GRADING_PLUGIN = Path(__file__).with_name("_grading_plugin.py")
PROBE_FILES = {"_minivae_probes.py": Path(__file__).with_name("probes.py"),
               "_minivae_selfchecks.py": Path(__file__).with_name("selfchecks.py")}
SEEDS = (0,)
FD_BOUND = 1e-6                   # relative error of a float64 gradient against central differences

# a line of `pytest -v`: "tests/test_nn.py::test_affine_backward[...] PASSED   [ 12%]"
_VERDICT = re.compile(r"^(?P<id>\S.*?::.+?) (?P<verdict>PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b")
_OUTCOME_OF_VERDICT = {"PASSED": "passed", "FAILED": "failed", "ERROR": "error", "SKIPPED": "skipped",
                       "XFAIL": "skipped", "XPASS": "passed"}

ACTIVATIONS = ("relu", "tanh", "sigmoid", "softplus")
_SHAPES = [{"likelihood": "bernoulli", "L": 1, "hidden": (5,), "activation": "tanh"},
           {"likelihood": "gaussian", "L": 3, "hidden": (), "activation": "relu"}]

# exercise -> check (the grader's names) -> [(probe of selfchecks.py, case)], each on SEEDS
LOCAL = {
    "affine_backward": {
        "gradient": [("affine_fd", {}), ("affine_fd", {"input_grad": False}), ("affine_fd", {"groups": 2})],
        "in_an_mlp": [("mlp_fd", {"activation": "identity", "hidden": h}) for h in ((4, 3), ())],
        "float32": [("twin32", {"probe": "affine"}), ("affine_fd", {})]},
    "activation_backward": {
        "gradient": [("activation_fd", {"name": a}) for a in ACTIVATIONS],
        "in_an_mlp": [("mlp_fd", {"activation": a, "hidden": (4, 3)}) for a in ACTIVATIONS],
        "float32_and_extremes": [("activation_fd", {"name": a, "extreme": True}) for a in ACTIVATIONS]
        + [("twin32", {"probe": "activation", "name": a, "extreme": True}) for a in ACTIVATIONS]},
    "bernoulli_likelihood": {
        "value": [("bernoulli_value", {"grey": g}) for g in (False, True)],
        "gradient": [("bernoulli_fd", {"grey": g}) for g in (False, True)],
        "float32_and_extremes": [("bernoulli_extreme", {"dtype": d}) for d in ("float64", "float32")]
        + [("bernoulli_value", {}), ("bernoulli_fd", {})]},
    "gaussian_log_density": {
        "value": [("gaussian_value", {"layout": lay}) for lay in ("q", "p", "std")],
        "gradient": [("gaussian_fd", {"layout": lay}) for lay in ("q", "p", "std")],
        "float32_and_extremes": [("twin32", {"probe": "gaussian", "part": p, "layout": lay, "extreme": True})
                                 for p in ("value", "gradient") for lay in ("q", "p", "std")]
        + [(probe, {"layout": lay}) for probe in ("gaussian_value", "gaussian_fd") for lay in ("q", "p", "std")]},
    "analytic_kl": {
        "value": [("kl_value", {}), ("kl_value", {"near_prior": True})],
        "gradient": [("kl_fd", {})],
        "float32_and_extremes": [("twin32", {"probe": "kl", "part": p, "extreme": True})
                                 for p in ("value", "gradient")] + [("kl_value", {}), ("kl_fd", {})]},
    "reparameterised_sample": {
        "value": [("sample_value", {"L": L}) for L in (1, 3)],
        "gradient": [("sample_fd", {"L": L}) for L in (1, 3)],
        "float32_and_extremes": [("twin32", {"probe": "sample", "part": p, "extreme": True})
                                 for p in ("value", "gradient")] + [("sample_value", {}), ("sample_fd", {})]},
    "vae_backward": {
        "gradient": [("vae_fd", {"kl": kl, **s}) for kl in ("B", "A") for s in _SHAPES],
        "encoder_output": [("vae_encoder_fd", {"kl": kl, **_SHAPES[i]}) for i, kl in enumerate(("B", "A"))],
        "float32_and_extremes": [("twin32", {"probe": "vae", "part": "gradient", "kl": kl, "L": 2})
                                 for kl in ("B", "A")]
        + [("vae_fd", {"kl": kl, "L": 2}) for kl in ("B", "A")]},
    "importance_sampled_log_likelihood": {
        "log_weights": [("log_weights_value", {"L": L}) for L in (1, 4)],
        # the bound is computed from the log-weights: a wrong log w is a wrong bound (as the grader sees it)
        "streamed_bound": [("iwae_value", {"k": 20, "chunk": 3}), ("iwae_value", {"k": 7, "chunk": 7}),
                           ("log_weights_value", {"L": 4})],
        "float32": [("iwae_value", {"dtype": "float32", "k": 10, "chunk": 4}), ("log_weights_value", {"L": 4})]},
    "adam_update": {
        "first_step": [("adam_value", {"steps": 1}), ("adam_value", {"steps": 1, "eps": 1e-3})],
        "later_steps": [("adam_value", {"steps": 4}), ("adam_value", {"steps": 3, "beta1": 0.5, "beta2": 0.9,
                                                                        "eps": 1e-3})],
        "float32": [("twin32", {"probe": "adam", "steps": 3}), ("twin32", {"probe": "adam", "steps": 3, "eps": 1e-3}),
                    ("adam_value", {"steps": 3}), ("adam_value", {"steps": 3, "eps": 1e-3})]},
}
# an estimator's float32-and-extremes check, like the grader's, also fails when its float64 value or
# gradient is wrong (at beta = 1, the grader's extreme cases' beta)
for _kl, _name in (("B", "estimator_b"), ("A", "estimator_a")):
    LOCAL[_name] = {
        "value": [("estimator_value", {"kl": _kl, "L": L}) for L in (1, 3)],
        "gradient": [("estimator_fd", {"kl": _kl, "L": L}) for L in (1, 3)],
        "float32_and_extremes": [("twin32", {"probe": "estimator", "part": p, "kl": _kl, "extreme": True, "L": 2})
                                 for p in ("value", "gradient")]
        + [("estimator_value", {"kl": _kl, "L": 2, "beta": 1.0}), ("estimator_fd", {"kl": _kl, "L": 2, "beta": 1.0})]}


def check_locally(directory, names, table=None, stream=None, timeout=600, tests=False):
    """Run the local checks (or, with ``tests``, the pytest tests) of ``names`` on the tree ``directory``.

    A row per exercise: exercise, title, points, max_points, checks (each name,
    points, max_points, passed, output), hint, error; with ``tests``: exercise,
    title, passed, total, first_failure, tests.
    """
    table = exercise_table(table)
    if tests:
        stream = sys.stderr if stream is None else stream
        entries = list(dict.fromkeys(e for name in names for e in table[name]["tests"]))
        results = run_tests(directory, entries, stream, timeout)
        return [_score(name, table, results) for name in names]
    cases = [(f"{name}:{check}:{i}:{seed}", probe, seed, case, name, check)
             for name in names for check, runs in LOCAL.get(name, {}).items()
             for i, (probe, case) in enumerate(runs) for seed in SEEDS]
    outputs, error = run_worker(Path(directory).resolve(), [list(c[:4]) for c in cases], timeout, PROBE_FILES,
                                sandbox=False, limits=False, switch_user=False)
    rows = []
    for name in names:
        entry, checks = table[name], []
        for check, spec in entry["checks"].items():
            mine = [c for c in cases if c[4] == name and c[5] == check]
            why = error or next((f"{w} [case {c[1]} {c[3] or ''}, seed {c[2]}]".replace(" ,", ",")
                                 for c in mine for w in [judge(outputs.get(c[0]), case_dtype(c[1], c[3]))]
                                 if w), None)
            if not mine:
                why = "no local check (the grader checks it)"
            for other in table:                  # a stub's message once, in the hint, not per check
                if why and stub_message(other, table) in why:
                    why = why.split("NotImplementedError")[0] + f"NotImplementedError: the stub of {other}" + (
                        "" if other == name else " (implement it first)") + why.split(stub_message(other, table))[1]
            checks.append({"name": check, "max_points": spec["points"], "points": 0 if why else spec["points"],
                           "passed": why is None, "output": why or "passed"})
        points = sum(c["points"] for c in checks)
        rows.append({"exercise": name, "title": entry["title"], "points": points, "max_points": entry["points"],
                     "checks": checks, "error": error,
                     "hint": None if points == entry["points"] else stub_message(name, table)})
    return rows


def case_dtype(probe, case):
    """The dtype a local probe's case computes in: float32 for a float32 twin, else its "dtype" (or None)."""
    return "float32" if probe == "twin32" else case.get("dtype")


def judge(out, dtype=None):
    """None if every pair of a local probe's outputs agrees, else what the first disagreement is.

    ``dtype``: the dtype the case computes in (:func:`case_dtype`); a value is judged at the
    grader's tolerance for it (:func:`minivae.assignment.grader.tolerance`).
    """
    if out is None:
        return "no outputs"
    if "!error" in out:
        lines = bytes(out["!error"]).decode("utf-8", "replace").strip().splitlines() or ["?"]
        return "raised " + lines[-1][:400]
    for key in [k for k in out if "~" not in k]:
        got = out[key]
        if key + "~fd" in out:
            why = _against_fd(key, got, out[key + "~fd"])
        else:
            why = _against_expected(key, got, out[key + "~expected"], dtype)
        if why:
            return why
    return None


def _against_fd(key, analytic, numeric):
    """Why a gradient differs from its central differences (relative error, where, and the pattern)."""
    if analytic.shape != numeric.shape:
        return diagnose(analytic, numeric, key)["message"]
    if not np.isfinite(analytic).all():
        return diagnose(analytic, numeric, key)["message"]
    error = rel_error(analytic, numeric)
    if error <= FD_BOUND:
        return None
    # central differences are accurate to about 1e-7 of the largest entry: the pattern is judged there
    found = diagnose(analytic, numeric, key, rtol=1e-5, atol=1e-5)
    return (f"{found['message']} [relative error {error:.2g} against central differences, bound {FD_BOUND:g}]")


def _against_expected(key, got, expected, dtype=None):
    if got.shape == expected.shape and got.dtype != expected.dtype:
        return f"{key} has dtype {got.dtype}, expected {expected.dtype}"
    if expected.dtype == bool:
        return None if np.array_equal(got, expected) else f"{key} is {got.tolist()}, expected {expected.tolist()}"
    rtol, share = tolerance(expected, dtype)
    found = diagnose(got, expected, key, rtol=rtol, atol=share)
    return None if found["pattern"] == "match" else found["message"]


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
    """The rows of :func:`check_locally` as text: per exercise its checks (or tests), then the hint."""
    lines = []
    for r in rows:
        if "checks" not in r:                                     # check --tests
            lines.append(f"{r['exercise']}: {r['passed']}/{r['total']} tests pass"
                         + (f"; first failure: {r['first_failure']}" if r["first_failure"] else ""))
            lines += [f"  {t['outcome']:<8} {t['id']}" for t in r["tests"] if t["outcome"] != "passed"]
            continue
        lines.append(f"{r['exercise']}: {r['points']:g}/{r['max_points']:g} points in the local checks")
        for c in r["checks"]:
            lines.append((f"  {'ok  ' if c['passed'] else 'FAIL'} {c['name']:<21} {c['points']:>2g}/{c['max_points']:<2g}"
                          + ("" if c["passed"] else f" {c['output']}")).rstrip())
        if r["hint"]:
            lines.append(f"  hint: {r['hint']}")
    return "\n".join(lines)
