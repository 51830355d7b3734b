"""Tests of minivae.assignment: markers, the student edition, the grader.

Most run on a toy source tree: a package named ``minivae`` (so a grader that imported the
installed package instead of the graded tree would fail: the real one has no ``ops``
module), one module with three exercises (one with two regions, one building on another),
and tiny tests, so each pytest run the grader starts takes a fraction of a second.  The
last ones check issue 8's acceptance on the real package: its student edition fails every
exercise with its hint, the solution passes every exercise, and restoring an exercise's
solution turns exactly that row to passing.
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from minivae import assignment
from minivae.cli import main

OPS = '''"""Toy operations."""


def square(x):
    """x^2."""
    # BEGIN SOLUTION square
    y = x * x
    # END SOLUTION
    return y


def double(x):
    """2 x."""
    # BEGIN SOLUTION double
    y = 2 * x
    # END SOLUTION
    return y


def double_backward(dy):
    """dL/dx = 2 dL/dy."""
    # BEGIN SOLUTION double
    dx = 2 * dy
    # END SOLUTION
    return dx


def fourth_power(x):
    """x^4, built on square."""
    # BEGIN SOLUTION fourth_power
    y = square(square(x))
    # END SOLUTION
    return y


def unrelated(x):
    """Not an exercise."""
    return x + 1
'''

TESTS = '''import pytest
from hypothesis import given
from hypothesis import strategies as st

from minivae import ops


def test_square():
    assert ops.square(3) == 9


@given(st.integers(-100, 100))
def test_square_is_nonnegative(x):
    assert ops.square(x) >= 0


def test_square_of_negative():
    assert ops.square(-2) == 4


def test_double():
    assert ops.double(4) == 8


def test_double_backward():
    assert ops.double_backward(1.5) == 3


def test_fourth_power():
    assert ops.fourth_power(2) == 16


def test_unrelated():
    assert ops.unrelated(1) == 2


@pytest.mark.parametrize("x", [1, 2, 3])
def test_unrelated_at(x):
    assert ops.unrelated(x) == x + 1
'''

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
SOLUTIONS = {"square": ["    y = x * x\n"], "double": ["    y = 2 * x\n", "    dx = 2 * dy\n"],
             "fourth_power": ["    y = square(square(x))\n"]}


def stub(name):
    return f'    raise NotImplementedError("{assignment.stub_message(name, TABLE)}")\n'


def write_source(root):
    files = {"minivae/__init__.py": '"""Toy package."""\n', "minivae/ops.py": OPS,
             "tests/test_ops.py": TESTS, "setup.cfg": "[metadata]\nname = toy\n",
             "docs/notes.md": "# Notes\n", "README.md": "Toy.\n",
             # what make must not copy
             "runs/run1/model.npz": "x", "toy.egg-info/PKG-INFO": "x",
             "minivae/__pycache__/ops.cpython-311.pyc": "x", ".git/HEAD": "x"}
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def restore(tree, name):
    """Put back the solution of exercise ``name`` between its markers, as a student would."""
    path = tree / "minivae" / "ops.py"
    text = path.read_text()
    for line in SOLUTIONS[name]:
        assert stub(name) in text
        text = text.replace(stub(name), line, 1)
    path.write_text(text)


def grade(tree, reference=None, **kwargs):
    return assignment.grade(tree, reference=reference, table=TABLE, stream=sys.stdout, **kwargs)


def rows(report):
    return {r["exercise"]: r for r in report["exercises"]}


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return write_source(tmp_path_factory.mktemp("source"))


@pytest.fixture(scope="module")
def student(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("made") / "student"
    assignment.make_assignment(source, out, table=TABLE)
    return out


# ---------------------------------------------------------------- make

def test_make_replaces_exactly_the_selected_regions_with_stubs_carrying_the_hint(source, tmp_path):
    out = tmp_path / "student"
    summary = assignment.make_assignment(source, out, ["square"], table=TABLE)
    assert summary["exercises"] == ["square"] and summary["regions"] == 1
    # the square region: its markers around the stub; the other regions: their lines, no markers
    expected = OPS.replace("    y = x * x\n", stub("square"))
    for name in ("double", "fourth_power"):
        expected = expected.replace(f"    # BEGIN SOLUTION {name}\n", "")
    head, tail = expected.split(stub("square"))
    expected = head + stub("square") + "    # END SOLUTION\n" + tail.replace("    # END SOLUTION\n", "")
    assert (out / "minivae/ops.py").read_text() == expected
    assert expected.count("SOLUTION") == 2 and "y = 2 * x" in expected and "dx = 2 * dy" in expected
    assert 'raise NotImplementedError("Exercise square: multiply x by itself (see docs/notes.md#square)")' \
        in expected
    for rel in ("tests/test_ops.py", "setup.cfg", "docs/notes.md", "README.md", "minivae/__init__.py"):
        assert (out / rel).read_bytes() == (source / rel).read_bytes()
    for rel in ("runs", "toy.egg-info", "minivae/__pycache__", ".git"):
        assert not (out / rel).exists(), f"{rel} should not be in the student edition"
    manifest = json.loads((out / "assignment.json").read_text())
    assert manifest["exercises"] == ["square"]
    assert manifest["hints"]["square"] == assignment.stub_message("square", TABLE)


def test_student_edition_imports_keeps_signatures_and_docstrings_and_the_rest_works(student):
    code = ("import inspect, json\nfrom minivae import ops\n"
            "out = {'doc': ops.double_backward.__doc__, 'sig': str(inspect.signature(ops.double_backward)),"
            " 'unrelated': ops.unrelated(1), 'file': ops.__file__}\n"
            "try:\n    ops.double(1)\nexcept NotImplementedError as e:\n    out['raised'] = str(e)\n"
            "print(json.dumps(out))\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=student, capture_output=True, text=True,
                            env=assignment.edition._environment(student))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["file"] == str(student / "minivae" / "ops.py")
    assert out["doc"] == "dL/dx = 2 dL/dy." and out["sig"] == "(dy)"
    assert out["unrelated"] == 2
    assert out["raised"] == "Exercise double: twice the input, forward and backward (see docs/notes.md#double)"


def test_make_refuses_unknown_exercises_a_used_folder_and_a_student_edition(source, student, tmp_path):
    with pytest.raises(assignment.AssignmentError, match="unknown exercise 'cube'"):
        assignment.make_assignment(source, tmp_path / "a", ["square", "cube"], table=TABLE)
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "keep.txt").write_text("mine")
    with pytest.raises(assignment.AssignmentError, match="not an empty folder"):
        assignment.make_assignment(source, tmp_path / "used", table=TABLE)
    assert (tmp_path / "used" / "keep.txt").read_text() == "mine"
    with pytest.raises(assignment.AssignmentError, match="inside the source tree"):
        assignment.make_assignment(source, source / "student", table=TABLE)
    assert not (source / "student").exists()
    with pytest.raises(assignment.AssignmentError, match="is a student edition"):
        assignment.make_assignment(student, tmp_path / "b", table=TABLE)
    table = {**TABLE, "cube": {**TABLE["square"], "functions": ["minivae/ops.py::cube"]}}
    with pytest.raises(assignment.AssignmentError, match=r"no marked region .* cube \(in minivae/ops.py::cube\)"):
        assignment.make_assignment(source, tmp_path / "c", ["cube"], table=table)
    assert not any(p.name in "abc" for p in tmp_path.iterdir()), "a failed make left a folder behind"


# ---------------------------------------------------------------- markers

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


def test_malformed_markers_stop_make_before_anything_is_written(source, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(source, broken)
    ops = broken / "minivae" / "ops.py"
    ops.write_text(ops.read_text().replace("    # END SOLUTION\n", "", 1))
    with pytest.raises(assignment.AssignmentError,
                       match="ops.py:13: BEGIN SOLUTION inside the region of 'square' opened at line 6"):
        assignment.make_assignment(broken, tmp_path / "out", table=TABLE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken"]


def test_markers_inside_strings_and_regions_with_methods_are_read_correctly():
    text = ('DOC = """\n    # BEGIN SOLUTION square\n"""\n\n\nclass Op:\n    def square(self, x):\n'
            '        """x^2."""\n        # BEGIN SOLUTION square\n        y = x * x\n        # END SOLUTION\n'
            '        return y\n')
    table = {"square": {**TABLE["square"], "functions": ["minivae/ops.py::Op.square"]}}
    [region] = assignment.find_regions(text, "minivae/ops.py", table)
    assert (region["begin"], region["end"], region["indent"], region["function"]) == (8, 10, " " * 8, "Op.square")


# ---------------------------------------------------------------- grade

def test_grading_the_solution_passes_every_exercise_in_both_modes(source):
    for reference in (source, None):                       # isolated, then the tree as it is
        report = grade(source, reference)
        assert report["all_passed"], report
        assert report["mode"] == ("isolated" if reference else "whole tree")
        assert {n: (r["passed"], r["total"], r["points"]) for n, r in rows(report).items()} == {
            "square": (3, 3, 2), "double": (2, 2, 3), "fourth_power": (1, 1, 5)}
        assert report["points"] == report["max_points"] == 10


def test_grading_the_student_edition_fails_every_exercise_with_its_hint_visible(student):
    before = sorted(p.relative_to(student) for p in student.rglob("*"))
    report = grade(student, reference=None)
    assert not report["all_passed"] and report["points"] == 0
    for name, row in rows(report).items():
        assert row["passed"] == 0 and row["total"] == len(TABLE[name]["tests"])
        assert row["first_failure"] == f"NotImplementedError: {assignment.stub_message(name, TABLE)}"
    # the property test fails with the hint too, and nothing was written into the graded tree
    # (no .hypothesis/, no .benchmarks/ where pytest-benchmark is installed, no __pycache__/)
    [nonnegative] = [t for t in rows(report)["square"]["tests"] if t["id"].endswith("nonnegative")]
    assert nonnegative["message"].startswith(f"NotImplementedError: {assignment.stub_message('square', TABLE)}")
    assert sorted(p.relative_to(student) for p in student.rglob("*")) == before
    text = assignment.format_report(report)
    assert "0 of 3 exercise(s) complete" in text
    assert f"NotImplementedError: {assignment.stub_message('double', TABLE)}" in text


@pytest.mark.parametrize("name", sorted(TABLE))
def test_restoring_one_solution_turns_exactly_that_row_to_passing(name, source, student, tmp_path):
    tree = tmp_path / "submission"
    shutil.copytree(student, tree)
    restore(tree, name)
    report = grade(tree, reference=source)
    assert report["mode"] == "isolated"
    for other, row in rows(report).items():
        if other == name:
            assert row["passed"] == row["total"] > 0 and row["first_failure"] is None, row
        else:
            assert row["passed"] == 0, (other, row)
            assert assignment.stub_message(other, TABLE) in row["first_failure"]
    assert report["points"] == TABLE[name]["points"] and not report["all_passed"]


def test_whole_tree_grading_tests_the_graded_tree_not_another_minivae_on_the_path(
        source, student, tmp_path, monkeypatch):
    # the solution first on PYTHONPATH: had the grader imported it, every row would pass
    monkeypatch.setenv("PYTHONPATH", str(source))
    tree = tmp_path / "submission"
    shutil.copytree(student, tree)
    restore(tree, "fourth_power")
    report = rows(grade(tree))
    assert report["square"]["passed"] == 0 and report["double"]["passed"] == 0
    # as it is, x^4 still fails through the stubbed square: what isolated grading avoids
    assert report["fourth_power"]["first_failure"] == (
        f"NotImplementedError: {assignment.stub_message('square', TABLE)}")


def test_a_submission_without_its_markers_or_with_a_broken_module_gets_a_clear_row(source, student, tmp_path):
    tree = tmp_path / "submission"
    shutil.copytree(student, tree)
    ops = tree / "minivae" / "ops.py"
    text = ops.read_text().replace("    # BEGIN SOLUTION double\n", "", 1)
    ops.write_text(text.replace(stub("square"), "    y = x *\n"))          # a syntax error
    report = rows(grade(tree, reference=source, exercises=["double", "square"]))
    assert report["double"]["error"] is not None and report["double"]["points"] == 0
    assert "END SOLUTION without a BEGIN" in report["double"]["error"]
    tests = assignment.run_tests(tree, TABLE["square"]["tests"] + ["tests/test_ops.py::test_cube"],
                                 sys.stdout, timeout=60)
    assert tests["missing"] == {"tests/test_ops.py::test_cube": "test tests/test_ops.py::test_cube "
                                                                 "not found (renamed or deleted?)"}
    assert tests["collect_errors"]["tests/test_ops.py"].startswith("error collecting tests/test_ops.py: ")
    assert "SyntaxError" in tests["collect_errors"]["tests/test_ops.py"]


def test_only_the_listed_tests_and_parametrisations_run(source):
    entries = ["tests/test_ops.py::test_unrelated_at[2]", "tests/test_ops.py::test_square"]
    results = assignment.run_tests(source, entries, sys.stdout, timeout=60)
    assert sorted(results["outcomes"]) == sorted(entries)      # not test_square_of_negative, [1], [3]
    assert all(outcome == "passed" for outcome, _ in results["outcomes"].values())


def test_a_test_run_that_does_not_finish_is_stopped_and_reported(source, tmp_path):
    tree = tmp_path / "submission"
    shutil.copytree(source, tree)
    ops = tree / "minivae" / "ops.py"
    ops.write_text(ops.read_text().replace("    y = 2 * x\n", "    while True:\n        pass\n"))
    row = rows(grade(tree, exercises=["double", "square"], timeout=2))
    assert row["double"]["passed"] == 0
    assert "stopped after 2 s" in row["double"]["first_failure"]


# ---------------------------------------------------------------- the command

def test_assignment_commands_make_and_grade_with_json_and_exit_status(source, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(assignment.exercises, "EXERCISES", TABLE)
    monkeypatch.setattr(assignment, "find_source_root", lambda package="minivae": source)         # make's
    monkeypatch.setattr(assignment.edition, "find_source_root", lambda package="minivae": source)  # grade's
    out = tmp_path / "student"
    assert main(["assignment", "make", "--out", str(out), "--exercises", "double, square"]) == 0
    assert "grade it with: minivae assignment grade" in capsys.readouterr().out
    assert json.loads((out / "assignment.json").read_text())["exercises"] == ["square", "double"]
    assert main(["assignment", "grade", str(out), "--json"]) == 1     # grades the manifest's two
    report = json.loads(capsys.readouterr().out)
    assert report["mode"] == "isolated" and [r["exercise"] for r in report["exercises"]] == ["square", "double"]
    assert report["total"] == 5 and report["passed"] == 0 and report["max_points"] == 5
    assert main(["assignment", "grade", str(source), "--exercises", "square"]) == 0
    assert "1 of 1 exercise(s) complete" in capsys.readouterr().out
    assert main(["assignment", "make", "--out", str(tmp_path / "x"), "--exercises", "cube"]) == 2
    assert "unknown exercise 'cube'" in capsys.readouterr().err
    assert main(["assignment", "grade", str(tmp_path)]) == 2
    assert "is not a minivae tree" in capsys.readouterr().err


# ---------------------------------------------------------------- the real exercise table

ROOT = Path(__file__).resolve().parents[1]


def test_the_packages_markers_are_well_formed():
    # scan raises on any malformed marker or region outside the functions its exercise lists
    scanned = assignment.scan(ROOT)
    assert all(r["exercise"] in assignment.EXERCISES for _, regions in scanned.values() for r in regions)
    # the solution stays readable: the markers are the only lines naming SOLUTION, two per region
    for rel, (text, regions) in scanned.items():
        assert sum("SOLUTION" in line for line in text.splitlines()) == 2 * len(regions), rel
    # every exercise has a region (make checks each function its table entry lists)
    assignment.check_coverage(scanned, list(assignment.EXERCISES))


def test_every_exercise_has_a_usable_entry_and_maps_to_tests_that_exist():
    result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                             *sorted({t.split("::")[0] for e in assignment.EXERCISES.values() for t in e["tests"]})],
                            cwd=ROOT, capture_output=True, text=True)
    collected = {line for line in result.stdout.splitlines() if "::" in line}
    assert 8 <= len(assignment.EXERCISES) <= 12
    for name, entry in assignment.EXERCISES.items():
        assert set(entry) == {"title", "functions", "hint", "see", "points", "tests"}, name
        assert entry["points"] > 0 and entry["tests"] and entry["functions"]
        message = assignment.stub_message(name, assignment.EXERCISES)
        assert "\n" not in message and '"' not in message and "\\" not in message, name
        for test in entry["tests"]:
            assert any(assignment.grader._matches(c, test) for c in collected), f"{name}: no test {test}"
        for function in entry["functions"]:
            assert (ROOT / function.split("::")[0]).is_file(), function
        if entry["see"].startswith("docs/"):
            doc, anchor = entry["see"].split("#")
            headings = [line.lstrip("#").strip() for line in (ROOT / doc).read_text().splitlines()
                        if line.startswith("#")]
            assert anchor in [github_anchor(h) for h in headings], f"{name}: no heading #{anchor} in {doc}"


def github_anchor(heading):
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to '-'."""
    kept = "".join(c for c in heading.lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


# ---------------------------------------------------------------- the real package, end to end
# Grading a tree of the real package starts one pytest run per exercise (1-4 s of CPU each on
# 2 cores), so the gradings are module fixtures shared by the tests below: the student edition
# with every exercise stubbed, the solution itself, and one edition with five exercises restored.

# in a student edition (made with its tests) there is no solution to grade or make editions of
solution_only = pytest.mark.skipif(assignment.edition._is_student_edition(ROOT),
                                   reason="this is a student edition; these tests need the solution")


def restore_solution(tree, names):
    """Put the solution's lines of the exercises ``names`` back between their markers in ``tree``."""
    for rel, (text, regions) in assignment.scan(ROOT).items():
        path = tree / rel
        theirs = path.read_text().splitlines(keepends=True)
        ours = text.splitlines(keepends=True)
        stubs = [r for r in assignment.find_regions("".join(theirs), rel) if r["exercise"] in names]
        solutions = [r for r in regions if r["exercise"] in names]
        assert [r["exercise"] for r in stubs] == [r["exercise"] for r in solutions], rel
        for stub_region, solution in reversed(list(zip(stubs, solutions))):    # bottom up: rows stay valid
            theirs[stub_region["begin"] + 1:stub_region["end"]] = ours[solution["begin"] + 1:solution["end"]]
        path.write_text("".join(theirs))


def hint_failure(name):
    return f"NotImplementedError: {assignment.stub_message(name)}"


@pytest.fixture(scope="module")
def real_student(tmp_path_factory):
    out = tmp_path_factory.mktemp("real") / "student"
    summary = assignment.make_assignment(ROOT, out)
    assert summary["exercises"] == list(assignment.EXERCISES)
    return out


@pytest.fixture(scope="module")
def real_student_report(real_student):
    return assignment.grade(real_student, reference=ROOT, stream=sys.stdout)


@pytest.fixture(scope="module")
def real_solution_report():
    return assignment.grade(ROOT, reference=ROOT, stream=sys.stdout)


@solution_only
def test_the_real_student_edition_fails_every_exercise_and_every_test_with_its_hint(
        real_student, real_student_report):
    scanned = assignment.scan(ROOT)
    for rel, (_, regions) in scanned.items():
        # every region of the solution is now its two markers around the one-line stub
        stubs = assignment.find_regions((real_student / rel).read_text(), rel)
        assert [r["exercise"] for r in stubs] == [r["exercise"] for r in regions], rel
        assert all(r["end"] == r["begin"] + 2 for r in stubs), rel
    report = real_student_report
    assert report["mode"] == "isolated" and not report["all_passed"] and report["points"] == 0
    assert [r["exercise"] for r in report["exercises"]] == list(assignment.EXERCISES)
    for row in report["exercises"]:
        assert row["total"] >= len(assignment.EXERCISES[row["exercise"]]["tests"]), row
        assert row["passed"] == 0 and row["error"] is None, row
        # not just the first: every mapped test fails on this exercise's stub, with its hint
        for test in row["tests"]:
            assert test["outcome"] in ("failed", "error"), test
            assert test["message"].startswith(hint_failure(row["exercise"])), test
    text = assignment.format_report(report)
    assert f"0 of {len(assignment.EXERCISES)} exercise(s) complete" in text
    assert all(hint_failure(name) in text for name in assignment.EXERCISES)


@solution_only
def test_the_real_solution_passes_every_exercise(real_solution_report, real_student_report):
    report = real_solution_report
    assert report["all_passed"], assignment.format_report(report)
    assert report["points"] == report["max_points"] == 100
    for row, stubbed in zip(report["exercises"], real_student_report["exercises"]):
        assert row["passed"] == row["total"] == stubbed["total"] > 0, row
        assert [t["id"] for t in row["tests"]] == [t["id"] for t in stubbed["tests"]]


@solution_only
@pytest.mark.parametrize("name", list(assignment.EXERCISES))
def test_restoring_one_real_exercise_turns_exactly_its_row_to_passing(
        name, real_student, real_student_report, real_solution_report, tmp_path):
    # Isolated grading tests row r on compose(solution, submission, r): a copy of the solution
    # whose files with regions are composed_sources(...) and nothing else of the submission,
    # in a pytest run of its own; the tests are deterministic (fixed seeds, derandomised
    # Hypothesis), so a row's outcome is a function of those sources.  Restoring `name` must
    # therefore give row `name` exactly the sources it has when the solution itself is graded
    # (passing, test above) and every other row exactly the sources it has in the student
    # edition (failing with its hint, test above).  Checking the sources for each of the 11
    # exercises costs milliseconds; running 11 more gradings would take minutes.  The test
    # below grades one restored edition end to end.
    tree = tmp_path / "submission"
    shutil.copytree(real_student, tree)
    restore_solution(tree, [name])
    scanned = assignment.scan(ROOT)
    solution = {r["exercise"]: r for r in real_solution_report["exercises"]}
    student = {r["exercise"]: r for r in real_student_report["exercises"]}
    for row in assignment.EXERCISES:
        graded = assignment.composed_sources(scanned, tree, row)
        if row == name:
            assert graded == assignment.composed_sources(scanned, ROOT, row)
            assert graded != assignment.composed_sources(scanned, real_student, row)
            assert solution[row]["passed"] == solution[row]["total"] > 0
        else:
            assert graded == assignment.composed_sources(scanned, real_student, row), row
            assert student[row]["passed"] == 0 and student[row]["first_failure"] == hint_failure(row)


@solution_only
def test_restoring_the_real_model_exercises_end_to_end_passes_exactly_their_rows(
        real_student, real_solution_report, tmp_path):
    # the exercises that call the others, restored while everything they call stays a stub:
    # they pass because each row is graded on the solution with only its own lines swapped
    restored = ["estimator_b", "estimator_a", "vae_backward", "importance_sampled_log_likelihood",
                "adam_update"]
    tree = tmp_path / "submission"
    shutil.copytree(real_student, tree)
    restore_solution(tree, restored)
    report = assignment.grade(tree, reference=ROOT, stream=sys.stdout)
    solution = {r["exercise"]: r for r in real_solution_report["exercises"]}
    for row in report["exercises"]:
        name = row["exercise"]
        if name in restored:
            assert row["passed"] == row["total"] == solution[name]["total"], row
        else:
            assert row["passed"] == 0 and row["first_failure"] == hint_failure(name), row
    assert report["points"] == sum(assignment.EXERCISES[n]["points"] for n in restored)
