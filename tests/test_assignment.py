"""Tests of minivae.assignment: markers, editions and their leak scan, the trusted grader, platforms.

The grader tests run the real package (one worker per exercise, about 0.5 s each), each on the
few exercises it is about; tests/grading_variants.py holds the submissions they grade: valid
variants, wrong gradients and forgery attempts.  The whole class of 100 points runs twice (the
reference: 100; a fresh edition: 0).
"""
import csv
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from minivae import assignment
from minivae.assignment import grader, selftest
from minivae.assignment.probes import PROBES
from minivae.cli.main import main

from minivae.assignment import isolation, launch

import grading_variants as attempts
from grading_variants import FORGERIES, RETURNED, VALID, WRONG, with_region

ROOT = Path(__file__).resolve().parents[1]
solution_only = pytest.mark.skipif(assignment.reference_solution()[0] is None,
                                   reason="needs the solution checkout")
pytestmark = solution_only
# the attempts that could touch the machine if the sandbox failed run only inside it
SANDBOXED = launch.sandbox_status()[0]
needs_sandbox = pytest.mark.skipif(not SANDBOXED, reason="needs the worker's Linux sandbox (unshare)")

TABLE = {
    "square": {"title": "Square", "functions": ["minivae/ops.py::square"],
               "hint": "multiply x by itself", "see": "docs/notes.md#square", "points": 2,
               "tests": ["tests/test_ops.py::test_square", "tests/test_ops.py::test_square_of_negative",
                         "tests/test_ops.py::test_square_is_nonnegative"]},
    "double": {"title": "Double and its backward",
               "functions": ["minivae/ops.py::double", "minivae/ops.py::double_backward"],
               "hint": "twice the input, forward and backward", "see": "docs/notes.md#double",
               "points": 3,
               "tests": ["tests/test_ops.py::test_double", "tests/test_ops.py::test_double_backward"]},
    "fourth_power": {"title": "Fourth power", "functions": ["minivae/ops.py::fourth_power"],
                     "hint": "square the square", "see": "docs/notes.md#fourth-power", "points": 5,
                     "tests": ["tests/test_ops.py::test_fourth_power"]},
}

# the solution lines of each region, in order (what a student would write)
BAD_MARKERS = [
    ("def f(x):\n    # BEGIN SOLUTION square\n    return x\n", r"ops.py:2: BEGIN SOLUTION square has no END"),
    ("def f(x):\n    return x\n    # END SOLUTION\n", r"ops.py:3: END SOLUTION without a BEGIN"),
    ("def f(x):\n    # BEGIN SOLUTION square\n    # BEGIN SOLUTION double\n    y = x\n    # END SOLUTION\n",
     r"ops.py:3: .*regions cannot nest"),
    ("def f(x):\n    # BEGIN SOLUTION cube\n    y = x\n    # END SOLUTION\n",
     r"ops.py:2: unknown exercise 'cube'; the exercise table has double, fourth_power, square"),
    ("def f(x):\n    # BEGIN SOLUTION\n    y = x\n    # END SOLUTION\n", r"ops.py:2: expected '# BEGIN SOLUTION <exercise-name>'"),
    ("def f(x):\n    y = x  # BEGIN SOLUTION square\n    # END SOLUTION\n", r"ops.py:2: .*on a line of its own"),
    ("def square(x):\n    # BEGIN SOLUTION square\n    y = x\n  # END SOLUTION\n    return y\n",
     r"ops.py:4: END SOLUTION must be indented like its BEGIN"),
    ("def square(x):\n    # BEGIN SOLUTION square\n\n    # END SOLUTION\n    return x\n", r"ops.py:2: .*is empty"),
    ("# BEGIN SOLUTION square\nX = 1\n# END SOLUTION\n", r"ops.py:1: .*not inside a function body"),
    ('def square(x):\n    # BEGIN SOLUTION square\n    """Doc."""\n    return x\n    # END SOLUTION\n',
     r"ops.py:2: .*must start after the docstring of square"),
    ("def cube(x):\n    # BEGIN SOLUTION square\n    return x\n    # END SOLUTION\n",
     r"ops.py:2: .*lies in minivae/ops.py::cube, which the exercise table does not list"),
]


@pytest.mark.parametrize("text, message", BAD_MARKERS)
def test_malformed_markers_are_clear_errors_naming_file_and_line(text, message):
    with pytest.raises(assignment.AssignmentError, match=message):
        assignment.find_regions(text, "minivae/ops.py", TABLE)


def test_markers_inside_strings_and_regions_with_methods_are_read_correctly():
    text = ('DOC = """\n    # BEGIN SOLUTION square\n"""\n\n\nclass Op:\n    def square(self, x):\n'
            '        """x^2."""\n        # BEGIN SOLUTION square\n        y = x * x\n        # END SOLUTION\n'
            '        return y\n')
    table = {"square": {**TABLE["square"], "functions": ["minivae/ops.py::Op.square"]}}
    [region] = assignment.find_regions(text, "minivae/ops.py", table)
    assert (region["begin"], region["end"], region["indent"], region["function"]) == (8, 10, " " * 8, "Op.square")


# ---------------------------------------------------------------- grade

@pytest.fixture(scope="module")
def edition(tmp_path_factory):
    out = tmp_path_factory.mktemp("ed") / "student"
    assignment.make_assignment(ROOT, out)
    return out


def grade(tree, names=None, **kwargs):
    return assignment.grade(tree, names, reference=ROOT, jobs=2, **kwargs)


def points(report):
    return {r["exercise"]: r["points"] for r in report["exercises"]}


def test_the_reference_scores_100_and_a_fresh_edition_0_with_every_hint(edition):
    full = grade(ROOT, list(assignment.EXERCISES))
    assert full["points"] == full["max_points"] == 100, assignment.format_report(full)
    empty = grade(edition)
    assert empty["points"] == 0 and empty["max_points"] == 100
    for row in empty["exercises"]:
        assert row["hint"] == assignment.EXERCISES[row["exercise"]]["hint"]
        assert all(row["hint"] in c["output"] for c in row["checks"]), row
    assert empty["outside_changes"] == []


def submission(edition, tmp_path, variants):
    tree = tmp_path / "sub"
    shutil.copytree(edition / "minivae", tree / "minivae")
    shutil.copy(edition / "assignment.json", tree)
    for rel, name, index, body, imports in variants:
        path = tree / rel
        path.write_text(with_region(path.read_text(), name, index, body, imports))
    return tree


@pytest.mark.parametrize("variants", ["VALID", "VALID_OTHER", "VALID_FORMULAS"])
@pytest.mark.parametrize("mode", ["isolated", "whole"])
def test_correct_solutions_written_differently_score_full_marks_in_both_modes(tmp_path, mode, variants):
    variants = getattr(attempts, variants)
    tree = tmp_path / "sub"                     # the reference with the variants in its regions
    shutil.copytree(ROOT / "minivae", tree / "minivae", ignore=shutil.ignore_patterns("__pycache__"))
    for rel, name, index, body, imports in [v for vs in variants.values() for v in vs]:
        path = tree / rel
        path.write_text(with_region(path.read_text(), name, index, body, imports))
    report = grade(tree, list(variants) if mode == "isolated" else list(assignment.EXERCISES), mode=mode)
    assert report["points"] == report["max_points"], assignment.format_report(report)
    imports = any(v[4] for vs in variants.values() for v in vs)          # a top-level import is noted
    assert imports == any("changed outside the markers" in n for n in report["outside_changes"])


# hidden seeds on which correct code once lost points (found by sweeping 25 to 20000 seeds per case):
# the IWAE se of a float32 model judged at float64's tolerance (VALID), vae_backward's extreme cases
# of estimator A at parameter scale 30 and 10 (VALID), bernoulli's extreme row with x drawn (the
# matrix-product form of VALID_FORMULAS), the KL near the prior with mu near 0 (the textbook form of
# VALID_OTHER), float32 tanh at |a| ~ 8 (dh - dh t^2 of VALID_FORMULAS)
ONCE_FLAKY_SEEDS = [473219300, 970042660, 1366432480, 1629937018, 2087474290, 1364572508, 445081464,
                    420111861, 92809976, 1129209623, 2131612828, 830807905, 1097427946, 1681820277]


def with_functions_of(monkeypatch, variants):
    """The functions that hold the regions of ``variants``, put in place of the reference's in this
    process, so every exercise's code calls the others' variants (as the whole mode runs them)."""
    texts = {}
    for rel, name, index, body, imports in [v for vs in variants.values() for v in vs]:
        texts[rel] = with_region(texts.get(rel, (ROOT / rel).read_text()), name, index, body, imports)
    for rel, text in texts.items():
        module = importlib.import_module(rel[:-3].replace("/", "."))
        namespace = {"__name__": module.__name__ + "_variant"}
        exec(compile(text, rel, "exec"), namespace)             # noqa: S102 -- our own variants
        for function in {f for name in variants for f in assignment.EXERCISES[name]["functions"]}:
            file, qualified = function.split("::")
            owner, _, attr = qualified.rpartition(".")
            if file == rel and owner:
                monkeypatch.setattr(getattr(module, owner), attr, vars(namespace[owner])[attr])
            elif file == rel:                   # and wherever a module imported it by name
                original = getattr(module, attr)
                for other in [m for k, m in sys.modules.items() if k.startswith("minivae")]:
                    if getattr(other, attr, None) is original:
                        monkeypatch.setattr(other, attr, namespace[attr])


@pytest.mark.parametrize("variants", ["VALID", "VALID_OTHER", "VALID_FORMULAS"])
def test_correct_float32_and_extreme_answers_pass_on_every_hidden_seed(monkeypatch, variants):
    # the float32, extreme and near-prior cases of every exercise, where rounding (which correct code
    # written differently does differently) could decide a check: on the seeds where it once did and
    # on 10 hidden seeds drawn as the selftest draws them, in this process (about a second)
    seeds = ONCE_FLAKY_SEEDS + selftest.hidden_seeds(10)
    cases = [(f"{name}.{cid}", probe, seed, case, check) for name, entry in assignment.EXERCISES.items()
             for cid, probe, seed, case, check in grader.cases_of(entry, seeds)
             if case.get("dtype") == "float32" or {"extreme", "scale", "near_prior"} & set(case)]
    ref = grader.reference_outputs(cases)
    with_functions_of(monkeypatch, getattr(attempts, variants))
    m = grader.reference_modules()
    for cid, probe, seed, case, _ in cases:
        got = {k: np.asarray(v) for k, v in PROBES[probe](m, seed, **case).items()}
        why = grader.compare(ref[cid], got, grader.case_sizes(case, probe), case.get("dtype"))
        assert why is None, f"{cid} {case}: {why}"


@pytest.mark.parametrize("label", sorted(WRONG))
def test_a_wrong_gradient_earns_at_most_half_and_nothing_for_the_gradient(label, tmp_path):
    name, variants = WRONG[label]
    tree = tmp_path / "sub"
    shutil.copytree(ROOT / "minivae", tree / "minivae", ignore=shutil.ignore_patterns("__pycache__"))
    for rel, region_name, index, body, imports in variants:
        path = tree / rel
        path.write_text(with_region(path.read_text(), region_name, index, body, imports))
    row = grade(tree, [name])["exercises"][0]
    assert row["points"] <= row["max_points"] / 2, assignment.format_report(grade(tree, [name]))
    assert all(not c["passed"] for c in row["checks"] if "gradient" in c["name"] or "mlp" in c["name"])


@pytest.mark.parametrize("label", sorted(FORGERIES) + sorted(RETURNED))
def test_a_stub_that_tries_to_forge_its_result_earns_nothing(edition, tmp_path, label):
    name, variants = FORGERIES.get(label) or RETURNED[label]
    tree = submission(edition, tmp_path, variants)
    report = grade(tree, [name], timeout=5)
    assert report["points"] == 0, assignment.format_report(report)


def cli_grade(tree, tmp_path, timeout=20):
    """`minivae assignment grade` of affine_backward in a process of its own: (exit status, maxrss
    in MiB of it and its workers, the results.json it leaves, its output)."""
    results = tmp_path / "results.json"
    process = subprocess.Popen([sys.executable, "-m", "minivae", "assignment", "grade", str(tree),
                                "--exercises", "affine_backward", "--timeout", str(timeout),
                                "--gradescope", str(results)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, cwd=tmp_path)
    output = process.stdout.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    left = json.loads(results.read_text()) if results.exists() else None
    return process.returncode, usage.ru_maxrss / 1024, left, output


def test_flooding_stdout_and_stderr_costs_the_grader_no_memory(edition, tmp_path):
    # the same grading of an honest submission, from this process, is the baseline: a child's
    # maxrss starts from this test process's size at the fork, which the rest of the suite sets
    _, baseline, _, _ = cli_grade(submission(edition, tmp_path / "honest", VALID["affine_backward"]),
                                  tmp_path / "honest")
    tree = submission(edition, tmp_path, attempts.floods_output(200)[1])     # 200 MB to each descriptor
    status, maxrss, results, output = cli_grade(tree, tmp_path)
    assert status == 1 and results["score"] == 0, output
    # the output cap is 64 MiB; keeping the flood would cost 200 MiB or more
    assert maxrss < baseline + 100, (f"the grader (or its worker) grew to {maxrss:.0f} MiB, "
                                     f"{maxrss - baseline:.0f} over an honest grading: it kept the flood")


def _daemons():
    return [p.parent.name for p in Path("/proc").glob("[0-9]*/comm")
            if p.exists() and p.read_text().strip() == "mvdaemon"]


def test_processes_a_stub_starts_end_with_its_worker(edition, tmp_path):
    tree = submission(edition, tmp_path, attempts.forks_daemons()[1])
    try:
        assert grade(tree, ["affine_backward"], timeout=5)["points"] == 0
        assert _daemons() == [], "children of the worker outlived it"
    finally:
        for pid in _daemons():                        # ours: named by the stub above
            os.kill(int(pid), 9)


@needs_sandbox
@pytest.mark.skipif(launch.worker_user(True) is None, reason="the sandbox's worker runs as root here")
def test_a_fork_bomb_is_stopped_and_leaves_nothing(edition, tmp_path):
    user = launch.worker_user(True)[0]
    before = launch.tasks_of(user) or 0
    tree = submission(edition, tmp_path, attempts.fork_bomb()[1])
    assert grade(tree, ["affine_backward"], timeout=5)["points"] == 0
    for _ in range(50):                                   # the namespace's processes are killed
        if (launch.tasks_of(user) or 0) <= before:        # with the worker; wait for them to go
            break
        time.sleep(0.1)
    assert (launch.tasks_of(user) or 0) <= before


@needs_sandbox
def test_a_stub_can_neither_kill_the_grader_nor_write_its_results(edition, tmp_path):
    tree = submission(edition, tmp_path, attempts.kills_the_grader()[1])
    status, _, results, output = cli_grade(tree, tmp_path)
    assert status == 1 and results["score"] == 0, output                  # the grader lived on
    results_file = tmp_path / "results.json"
    tree = submission(edition, tmp_path / "second", attempts.writes_into_the_grader(results_file)[1])
    status, _, results, output = cli_grade(tree, tmp_path)
    assert status == 1 and results["score"] == 0, output
    time.sleep(3)                                         # the stub's child would write by now
    assert json.loads(results_file.read_text())["score"] == 0


@needs_sandbox
def test_a_stub_cannot_read_the_solution_or_a_classmates_submission(edition, tmp_path):
    tree = submission(edition, tmp_path, attempts.reads_the_solution(ROOT, ROOT.parent / "main")[1])
    report = grade(tree, ["affine_backward"], timeout=10)
    assert report["points"] == 0, assignment.format_report(report)
    subs = tmp_path / "subs"
    (subs / "bob" / "minivae").mkdir(parents=True)
    shutil.copy(ROOT / "minivae" / "nn.py", subs / "bob" / "minivae" / "nn.py")
    alice = submission(edition, tmp_path / "a", attempts.copies_a_classmate(subs / "bob" / "minivae" / "nn.py")[1])
    shutil.copytree(alice, subs / "alice")
    reports = assignment.grade_all(subs, reference=ROOT, exercises=["affine_backward"], timeout=10)
    assert (reports["alice"]["points"], reports["bob"]["points"]) == (0, 8)


def test_without_the_sandbox_no_worker_sees_an_answer_graded_after_it(tmp_path, monkeypatch):
    # without the sandbox other grading trees are readable: the tree of vae_backward holds the
    # reference of activation_backward, so it is built only once activation_backward is graded
    monkeypatch.setattr(launch, "_STATUS", {"ok": False, "why": "off for this test"})
    monkeypatch.setattr(isolation, "reference_copies", lambda *roots: [])    # as if they were private
    folder = tmp_path / "grading"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    tree = tmp_path / "sub"
    shutil.copytree(ROOT / "minivae", tree / "minivae", ignore=shutil.ignore_patterns("__pycache__"))
    rel, name, index, body, imports = attempts.waits_for_a_later_tree(folder)[1][0]
    (tree / rel).write_text(with_region((tree / rel).read_text(), name, index, body, imports))
    report = grade(tree, ["activation_backward", "vae_backward"], timeout=20)
    row = report["exercises"][0]
    assert not row["checks"][0]["passed"], assignment.format_report(report)
    assert any("without the sandbox" in n for n in report["notes"])


def test_links_large_files_and_a_forged_manifest_are_read_as_nothing(edition, tmp_path):
    tree = submission(edition, tmp_path, [])
    (tree / "minivae" / "nn.py").unlink()
    (tree / "minivae" / "nn.py").symlink_to(ROOT / "minivae" / "nn.py")      # the solution itself
    (tree / "minivae" / "optim.py").write_text("# padding\n" * 60_000)       # 600 KB
    dist = tree / "minivae" / "distributions.py"
    dist.write_bytes(dist.read_bytes().replace(b"import numpy as np", b"import numpy as np\0\xff", 1))
    forged = {"exercises": ["adam_update"], "provided": [n for n in assignment.EXERCISES if n != "adam_update"]}
    (tree / "assignment.json").write_text(json.dumps(forged))                # "the answers are given"
    for mode in ("isolated", "whole"):
        report = grade(tree, ["affine_backward", "adam_update", "analytic_kl"], mode=mode, timeout=10)
        assert report["points"] == 0, assignment.format_report(report)
    why = {r["exercise"]: r["checks"][0]["output"] for r in report["exercises"]}
    assert "symbolic link" in why["affine_backward"] and "larger than" in why["adam_update"]
    assert "null bytes" in why["analytic_kl"]
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "minivae").symlink_to(ROOT / "minivae")
    assert grade(linked, ["affine_backward"])["points"] == 0


def test_grade_all_grades_what_the_instructor_says_never_a_submissions_manifest(edition, tmp_path):
    subs = tmp_path / "subs"
    forged = {"exercises": ["adam_update"], "provided": [n for n in assignment.EXERCISES if n != "adam_update"]}
    for name in ("alice", "bob", "carol"):
        (subs / name / "minivae").mkdir(parents=True)
        shutil.copy(ROOT / "minivae" / "nn.py", subs / name / "minivae" / "nn.py")
        (subs / name / "assignment.json").write_text(json.dumps(forged))
    reports = assignment.grade_all(subs, reference=ROOT, exercises=["affine_backward"], timeout=10)
    assert {n: [r["exercise"] for r in rep["exercises"]] for n, rep in reports.items()} == {
        n: ["affine_backward"] for n in ("alice", "bob", "carol")}
    assert all(rep["points"] == 8 for rep in reports.values())


def reference_with(tmp_path, variants):
    tree = tmp_path / "sub"
    shutil.copytree(ROOT / "minivae", tree / "minivae", ignore=shutil.ignore_patterns("__pycache__"))
    for rel, name, index, body, imports in variants:
        path = tree / rel
        path.write_text(with_region(path.read_text(), name, index, body, imports))
    return tree


def test_the_local_check_names_the_failing_check_its_error_and_the_hint(edition, tmp_path, capsys):
    assert main(["assignment", "check", "analytic_kl", "--directory", str(edition)]) == 1
    out = capsys.readouterr().out
    assert "analytic_kl: 0/8 points" in out and out.count(assignment.EXERCISES["analytic_kl"]["hint"]) == 1
    assert "FAIL gradient" in out and "the stub of analytic_kl" in out
    assert main(["assignment", "check", ",".join(assignment.EXERCISES), "--directory", str(ROOT)]) == 0
    for label, variants in (("valid", VALID), ("other", attempts.VALID_OTHER), ("formulas", attempts.VALID_FORMULAS)):
        valid = assignment.check_locally(reference_with(tmp_path / label, [v for vs in variants.values() for v in vs]),
                                         list(assignment.EXERCISES))
        assert all(r["points"] == r["max_points"] for r in valid), assignment.format_local(valid)
    for label, (name, variants) in sorted(WRONG.items()):
        [row] = assignment.check_locally(reference_with(tmp_path / label, variants), [name])
        gradient = next(c for c in row["checks"] if "gradient" in c["name"])
        assert not gradient["passed"] and "against central differences" in gradient["output"], label
        assert row["hint"] and row["points"] <= row["max_points"] / 2 + 2, assignment.format_local([row])
    [row] = assignment.check_locally(reference_with(tmp_path / "kl", WRONG["kl_dlogvar_doubled"][1]), ["analytic_kl"])
    assert "dlogvar: is 2 times" in row["checks"][1]["output"]
    assert "relative error 0.5 against central differences" in row["checks"][1]["output"]


def test_a_broken_marker_costs_only_its_own_exercise(tmp_path):
    tree = tmp_path / "sub"
    shutil.copytree(ROOT / "minivae", tree / "minivae", ignore=shutil.ignore_patterns("__pycache__"))
    dist = tree / "minivae" / "distributions.py"
    text = dist.read_text()
    at = text.index("    # BEGIN SOLUTION analytic_kl")
    end = text.index("    # END SOLUTION\n", at)
    dist.write_text(text[:end] + text[end + len("    # END SOLUTION\n"):])   # analytic_kl loses an END
    report = grade(tree, ["analytic_kl", "reparameterised_sample", "gaussian_log_density"])
    assert points(report) == {"analytic_kl": 0, "reparameterised_sample": 9, "gaussian_log_density": 9}


def solution_lines():
    scanned = assignment.scan(ROOT)
    from minivae.assignment.leaks import solution_lines as lines
    return lines(scanned, list(assignment.EXERCISES))


@pytest.mark.parametrize("exercises", [None, ["affine_backward", "activation_backward"]])
def test_an_edition_contains_no_line_of_any_solution_and_only_tracked_files(tmp_path, exercises):
    scratch = ROOT / "notes-not-tracked.txt"
    scratch.write_text(next(iter(solution_lines())))            # an instructor's untracked note
    try:
        out = tmp_path / "ed"
        summary = assignment.make_assignment(ROOT, out, exercises)
    finally:
        scratch.unlink()
    assert not (out / scratch.name).exists() and not (out / "docs" / "assignments.md").exists()
    from minivae.assignment.leaks import scan_for_leaks
    assert scan_for_leaks(out, assignment.scan(ROOT), list(assignment.EXERCISES)) == []
    readme = (out / "README.md").read_text()
    assert all(f"`{n}`" in readme for n in summary["exercises"]) and "minivae assignment check" in readme
    withheld = [n for n in assignment.EXERCISES if n not in summary["exercises"]]
    for name in withheld:
        assert f"Exercise {name} is not part of this assignment" in "".join(
            p.read_text() for p in (out / "minivae").rglob("*.py"))


def test_provide_ships_the_named_solutions_and_git_is_required(tmp_path):
    out = tmp_path / "ed"
    summary = assignment.make_assignment(ROOT, out, ["estimator_b"], provide=["analytic_kl"])
    dist = (out / "minivae" / "distributions.py").read_text()
    assert "np.expm1(logvar)" in dist and "BEGIN SOLUTION analytic_kl" not in dist
    assert summary["provided"] == ["analytic_kl"]
    loose = tmp_path / "loose"
    shutil.copytree(ROOT, loose, ignore=shutil.ignore_patterns(".git", "__pycache__", "*.egg-info"))
    with pytest.raises(assignment.AssignmentError, match="not a git checkout"):
        assignment.make_assignment(loose, tmp_path / "ed2")


def test_gradescope_results_and_the_autograder_zip_run_as_gradescope_runs_it(edition, tmp_path):
    zip_path = tmp_path / "autograder.zip"
    assert main(["assignment", "autograder", "--out", str(zip_path),
                 "--exercises", "analytic_kl,affine_backward"]) == 0
    for label, files in (("reference", ROOT / "minivae"), ("stubs", edition / "minivae")):
        root = tmp_path / label
        with zipfile.ZipFile(zip_path) as z:
            z.extractall(root / "source")
        assert {"setup.sh", "run_autograder"} <= set(os.listdir(root / "source"))
        (root / "submission").mkdir()
        for name in ("nn.py", "distributions.py"):                       # submitted flat
            shutil.copy(files / name, root / "submission" / name)
        env = {**os.environ, "MINIVAE_AUTOGRADER_ROOT": str(root), "PYTHON": sys.executable}
        subprocess.run(["bash", str(root / "source" / "run_autograder")], cwd=root / "source", env=env,
                       check=True, timeout=120)
        results = json.loads((root / "results" / "results.json").read_text())
        assert results["score"] == (16 if label == "reference" else 0), (root / "results" / "log.txt").read_text()
        assert {"name", "score", "max_score", "output", "visibility"} <= set(results["tests"][0])
        assert sum(t["max_score"] for t in results["tests"]) == 16


def test_grade_all_writes_a_csv_and_json_keeps_points_per_exercise(edition, tmp_path, capsys):
    subs = tmp_path / "subs"
    shutil.copytree(edition, subs / "alice", ignore=shutil.ignore_patterns("tests", "tutorials", "docs"))
    (subs / "bob" / "minivae").mkdir(parents=True)
    shutil.copy(ROOT / "minivae" / "nn.py", subs / "bob" / "minivae" / "nn.py")
    grades = tmp_path / "grades.csv"
    assert main(["assignment", "grade-all", str(subs), "--jobs", "2", "--csv", str(grades),
                 "--exercises", "affine_backward"]) == 0
    rows = {r["submission"]: r for r in csv.DictReader(grades.open())}
    assert rows["alice"]["affine_backward"] == "0" and rows["bob"]["affine_backward"] == "8"
    capsys.readouterr()
    assert main(["assignment", "grade", str(subs / "bob"), "--json", "--exercises", "affine_backward"]) == 0
    row = json.loads(capsys.readouterr().out)["exercises"][0]
    assert (row["exercise"], row["points"], row["max_points"]) == ("affine_backward", 8, 8)


def test_points_hints_and_visibility_come_from_a_settings_file():
    table = assignment.apply_config({"exercises": {"analytic_kl": {
        "hint": "look at App. B", "checks": {"gradient": {"points": 5, "visibility": "after_due_date"}}}}})
    entry = table["analytic_kl"]
    assert entry["hint"] == "look at App. B" and entry["points"] == 10
    assert entry["checks"]["gradient"]["visibility"] == "after_due_date"
    assert assignment.EXERCISES["analytic_kl"]["points"] == 8                 # the table itself is unchanged
    with pytest.raises(assignment.AssignmentError, match="visibility"):
        assignment.apply_config({"exercises": {"analytic_kl": {"checks": {"value": {"visibility": "x"}}}}})


def test_every_exercise_has_checks_that_split_its_points_and_a_hint_of_one_line():
    for name, entry in assignment.EXERCISES.items():
        assert sum(c["points"] for c in entry["checks"].values()) == entry["points"]
        values = sum(c["points"] for k, c in entry["checks"].items() if k == "value")
        assert values <= entry["points"] / 2, name
        assert "\n" not in entry["hint"]
        for test in entry["tests"]:
            assert (ROOT / test.split("::")[0]).is_file(), test


def test_an_output_of_a_float32_case_is_judged_at_float32s_tolerance_whatever_its_dtype():
    # a float32 model's loss is a Python float and its IWAE estimate and se are float64, but they
    # carry float32's rounding: at float64's rtol 1e-6, correct code written differently lost the
    # float32 check of importance_sampled_log_likelihood on 3 of 200 hidden seeds (se off by 1.2e-6)
    ref = {"loss": np.array(-12.345678), "se": np.array([0.2, 0.3, 0.17])}
    rounded = {k: v * (1 + 1e-5) for k, v in ref.items()}
    assert grader.compare(ref, rounded, dtype="float32") is None
    assert grader.compare(ref, rounded).startswith("loss")               # a float64 case: past 1e-6
    assert grader.compare(ref, rounded, dtype="float64").startswith("loss")
    wrong = {k: v * (1 + 1e-2) for k, v in ref.items()}                  # past float32's rtol 2e-3
    assert grader.compare(ref, wrong, dtype="float32").startswith("loss")


@pytest.mark.parametrize("probe, case", [("twin32", {"probe": "estimator"}), ("iwae_value", {"dtype": "float32"})])
def test_the_local_check_judges_a_float32_case_by_the_graders_rule(probe, case):
    # a float32 twin's loss is a Python float, compared with the float64 probe's loss: the local
    # check judged it at float64's 1e-6 (its own table, by the value's dtype) while the grader
    # judges a float32 case at float32's tolerance; a student's correct code could fail locally
    from minivae.assignment import localcheck
    dtype = localcheck.case_dtype(probe, case)
    assert dtype == "float32"
    out = {"loss": np.array(-12.345678 * (1 + 1e-5)), "loss~expected": np.array(-12.345678)}
    assert localcheck.judge(out, dtype) is None
    assert localcheck.judge(out, localcheck.case_dtype("kl_value", {})).startswith("loss")   # a float64 case
    out["loss"] = out["loss~expected"] * (1 + 1e-2)                                            # past 2e-3
    assert localcheck.judge(out, dtype).startswith("loss")


def test_the_packages_markers_are_well_formed():
    scanned = assignment.scan(ROOT)
    assignment.check_coverage(scanned, list(assignment.EXERCISES))


def test_the_worker_keeps_a_virtualenv_inside_the_tree_on_its_path(tmp_path):
    # a student's checkout often holds their virtualenv (NumPy inside the tree); only the tree
    # and the probes' folder, spelt otherwise, leave Python's path (was: every folder inside the
    # tree, so the local check of such a checkout could not import NumPy)
    import importlib.util
    spec = importlib.util.spec_from_file_location("minivae_worker", launch.WORKER)
    worker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(worker)
    tree, here = tmp_path / "tree", tmp_path / "scratch"
    (tree / ".venv" / "site-packages").mkdir(parents=True)
    here.mkdir()
    venv, other = str(tree / ".venv" / "site-packages"), "/usr/lib/python3/dist-packages"
    path = worker.search_path(str(tree), str(here), [str(tree) + "/", venv, str(here), "", other])
    assert path == [str(tree), str(here), venv, other]


def edition_links_outside(folder):
    """Links (and toctree entries) of the edition's Markdown pages to files the edition does not have."""
    folder = Path(folder)
    missing = []
    for page in sorted(folder.rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        targets = re.findall(r"!?\[[^\]]*\]\(([^)\s#]+)(?:#[^)]*)?\)", text)
        for block in re.findall(r"```\{toctree\}\n(.*?)```", text, flags=re.S):
            targets += [f"{line.strip()}.md" for line in block.splitlines()
                        if line.strip() and not line.startswith(":") and "*" not in line]
        for target in targets:
            if re.match(r"[a-z]+:", target):
                continue                                   # http:, mailto:
            if target.startswith("/"):
                resolved = folder / target.lstrip("/")
            else:
                resolved = page.parent / target
            if not resolved.exists():
                missing.append(f"{page.relative_to(folder)} -> {target}")
    return missing


def test_an_editions_pages_link_only_to_files_it_has(edition, tmp_path):
    assert not (edition / "docs" / "assignments.md").exists()
    assert edition_links_outside(edition) == []
    # the check finds what the pages said before the guide's links were marked
    planted = tmp_path / "planted"
    (planted / "docs").mkdir(parents=True)
    (planted / "docs" / "index.md").write_text(
        "- [assignments.md](assignments.md): the guide\n\n```{toctree}\n:hidden:\n\nassignments\n```\n")
    assert edition_links_outside(planted) == ["docs/index.md -> assignments.md",
                                              "docs/index.md -> assignments.md"]


def test_grade_without_an_edition_grades_every_exercise_whatever_the_submissions_manifest_says(edition, tmp_path):
    tree = submission(edition, tmp_path, VALID["affine_backward"])
    forged = {"exercises": ["adam_update"], "provided": [n for n in assignment.EXERCISES if n != "adam_update"]}
    (tree / "assignment.json").write_text(json.dumps(forged))               # "only adam; the rest is given"
    report = assignment.grade(tree, reference=ROOT, jobs=2, timeout=20)     # from Python, no edition_info
    assert points(report) == {n: 8 if n == "affine_backward" else 0 for n in assignment.EXERCISES}
    assert report["max_points"] == 100 and any("decides nothing" in n for n in report["notes"])
