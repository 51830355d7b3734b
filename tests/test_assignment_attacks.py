"""Every attack of issue 26 in every grading mode: it earns nothing, and every honest row graded
in the same class keeps its full marks.

One class per mode (module-scoped, so each class is graded once): a submission per attack
(tests/grading_variants.py) and a few honest ones between them, on affine_backward and
analytic_kl (16 points).  The modes:

* ``sandbox``: ``grade_all`` in the Linux sandbox (namespaces);
* ``no-sandbox``: ``grade_all`` with the sandbox refused (forced off as the other tests do).
  The test machine's own copies of the package (this checkout, the virtualenv's editable map)
  are readable by every user, where the grader refuses to start (tested in
  test_assignment_integrity.py); here they are exempted, and the copies the attacks read are
  made private as the refusal asks.  A root grader only: a non-root grader without the sandbox
  runs workers as itself, which the report says is no defence;
* ``autograder``: Gradescope's ``run_autograder`` on each submission, as a Gradescope
  container without namespaces leaves it: root, the sandbox off, the package installed editable
  from ``/autograder/source`` (``MINIVAE_AUTOGRADER_ROOT`` stands in for ``/autograder``; a
  virtualenv of the test's own with NumPy and that editable map), two submissions at once.

An attack that must get past Python's imports to matter ends by raising RAN_TO_ITS_END: its
row's messages must say so, so an attack stopped only by a failed import would not pass.
"""
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from minivae import assignment
from minivae.assignment import isolation, launch
from minivae.assignment.platform import student_messages
from minivae.cli.main import main

import grading_variants as attempts
from test_assignment import ROOT, _daemons, submission

pytestmark = pytest.mark.skipif(assignment.reference_solution()[0] is None, reason="needs the solution checkout")
LINUX, ROOT_GRADER = sys.platform.startswith("linux"), os.name == "posix" and os.geteuid() == 0
EXERCISES, FULL, TIMEOUT = ["affine_backward", "analytic_kl"], 16, 10
SITE = Path(sysconfig.get_paths()["purelib"])


def _attack(build):
    """An attack from a builder of grading_variants: its variants, no change to the tree."""
    return lambda ctx: (build()[1], None)


def _symlinked(ctx):
    def link(tree):
        (tree / "minivae" / "nn.py").unlink()
        (tree / "minivae" / "nn.py").symlink_to(ctx["solution"] / "minivae" / "nn.py")
    return [], link


def _forged_manifest(ctx):
    forged = {"exercises": ["adam_update"], "provided": [n for n in assignment.EXERCISES if n != "adam_update"]}
    return [], lambda tree: (tree / "assignment.json").write_text(json.dumps(forged))


# label: (build(ctx) -> (variants, change to the tree or None), ends with RAN_TO_ITS_END, modes)
ALL = ("sandbox", "no-sandbox", "autograder")
ATTACKS = {
    "patches_numpy": (_attack(lambda: attempts.FORGERIES["patches_numpy_and_pytest"]), False, ALL),
    "atexit_forges": (_attack(lambda: attempts.FORGERIES["atexit_writes_a_fake_result"]), False, ALL),
    "os_exit": (_attack(lambda: attempts.FORGERIES["exits_early"]), False, ALL),
    "endless_loop": (_attack(lambda: attempts.FORGERIES["loops_forever"]), False, ALL),
    "floods_output": (_attack(lambda: attempts.floods_output(80)), False, ALL),
    "setsid_daemons": (_attack(attempts.forks_daemons), False, ALL),
    "kills_everything": (lambda ctx: (attempts.kills_everything(os.getuid())[1], None), True, ALL),
    "forges_the_results": (lambda ctx: (attempts.forges_the_results(ctx["results"])[1], None), True, ALL),
    "symlinked_solution": (_symlinked, False, ALL),
    "reads_every_copy": (lambda ctx: (attempts.reads_every_copy(ctx["roots"], ctx["scan_path"])[1], None), True, ALL),
    "kl_from_diagnostics": (_attack(attempts.kl_from_diagnostics), False, ALL),
    "forged_manifest": (_forged_manifest, False, ALL),
    "runs_a_classmate": (lambda ctx: (attempts.runs_a_classmate(ctx["classmate"])[1], None), True,
                         ("sandbox", "no-sandbox")),
    "waits_for_a_classmates_tree": (_attack(attempts.waits_for_a_classmates_tree), True, ALL),
}
# honest rows graded right after these attacks (names sort after them), and one last
HONEST = [f"{label}~honest" for label in ("kills_everything", "waits_for_a_classmates_tree")]
HONEST.append("zz~honest")


@pytest.fixture(scope="module")
def edition(tmp_path_factory):
    out = tmp_path_factory.mktemp("ed") / "student"
    assignment.make_assignment(ROOT, out, EXERCISES)
    return out


def _honest(edition, folder):
    tree = submission(edition, folder.parent / (folder.name + "-build"), [])
    for name in ("nn.py", "distributions.py"):
        shutil.copy(ROOT / "minivae" / name, tree / "minivae" / name)
    shutil.move(tree, folder)
    shutil.rmtree(folder.parent / (folder.name + "-build"))


def _class(edition, subs, mode, ctx):
    """Write the class of ``mode`` into ``subs``: {name: folder}."""
    for name in HONEST:
        _honest(edition, subs / name)
    for label, (build, _, modes) in ATTACKS.items():
        if mode in modes:
            variants, change = build(ctx)
            tree = submission(edition, subs / (label + "-build"), variants)
            if change:
                change(tree)
            shutil.move(tree, subs / label)
            shutil.rmtree(subs / (label + "-build"))
    return {p.name: p for p in sorted(subs.iterdir())}


def _copy_of_the_package(folder, private):
    """A second, non-editable install of the solution: ``folder``/minivae, private (0700) or not."""
    shutil.copytree(ROOT / "minivae", folder / "minivae", ignore=shutil.ignore_patterns("__pycache__"))
    os.chmod(folder, 0o700 if private else 0o755)
    return folder


def _rows(reports):
    """{name: (points, exercises graded, every message)} of grade_all's reports."""
    return {name: (rep["points"], [r["exercise"] for r in rep["exercises"]],
                   rep.get("error") or student_messages(rep)) for name, rep in reports.items()}


def _grade_class(edition, tmp, mode):
    subs, grades = tmp / "subs", tmp / "grades.csv"
    subs.mkdir()
    site = SITE if os.access(SITE, os.W_OK) else tmp           # where a second install would lie
    copy = site / f"minivae_second_install_{os.getpid()}"
    ctx = {"results": grades, "solution": ROOT, "classmate": subs / "zz~honest" / "minivae" / "nn.py",
           "roots": [ROOT, copy], "scan_path": True}
    with pytest.MonkeyPatch.context() as patch:
        if mode == "no-sandbox":
            own = set(isolation.reference_copies(ROOT))        # this machine's: readable, exempted
            real = isolation.reference_copies
            patch.setattr(launch, "_STATUS", {"ok": False, "why": "namespaces refused (forced for this test)"})
            patch.setattr(isolation, "reference_copies", lambda *roots: [p for p in real(*roots) if p not in own])
            ctx.update(roots=[copy], scan_path=False)
        if site != SITE:
            patch.setattr(sys, "path", [*sys.path, str(site)])
        rows = _class(edition, subs, mode, ctx)
        _copy_of_the_package(copy, private=mode == "no-sandbox")
        try:
            reports = assignment.grade_all(subs, reference=ROOT, exercises=EXERCISES, timeout=TIMEOUT,
                                           csv_path=grades, jobs=2)
        finally:
            shutil.rmtree(copy)
    graded = {r["submission"]: r for r in csv.DictReader(grades.open())}
    return _rows(reports), {"csv_intact": sorted(graded) == sorted(rows)}


# ---------------------------------------------------------------- the autograder

def _lane(tmp, zip_path, name):
    """An /autograder of its own: the zip in source/, a virtualenv with NumPy (linked) and the
    package installed editable from source/, as setup.sh leaves Gradescope's image."""
    root = tmp / name
    with zipfile.ZipFile(zip_path) as z:
        z.extractall(root / "source")
    os.chmod(root / "source" / "run_autograder", 0o755)
    venv = tmp / f"{name}-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python*/site-packages"))
    deps = tmp / f"{name}-deps"                     # NumPy alone, not this virtualenv's minivae
    deps.mkdir()
    import numpy
    for item in Path(numpy.__file__).resolve().parents[1].iterdir():
        if item.name.startswith("numpy"):
            (deps / item.name).symlink_to(item)
    (site / "numpy-of-the-test.pth").write_text(str(deps) + "\n")
    finders = sorted(SITE.glob("__editable__*minivae*"))
    if finders:                                     # this checkout is installed editable: map source/
        for finder in finders:
            text = re.sub(r"'minivae': '[^']*'", repr("minivae") + ": " + repr(str(root / "source" / "minivae")),
                          finder.read_text())
            (site / finder.name).write_text(text)
    else:
        (site / "__editable__.minivae-0.1.0.pth").write_text(str(root / "source") + "\n")
    return {"root": root, "python": venv / "bin" / "python"}


def run_autograder(lane, tree, sandbox="off"):
    """run_autograder on ``tree`` (copied to submission/): results.json."""
    root = lane["root"]
    for folder in ("submission", "results"):
        shutil.rmtree(root / folder, ignore_errors=True)
    shutil.copytree(tree, root / "submission", symlinks=True)
    env = {**os.environ, "MINIVAE_AUTOGRADER_ROOT": str(root), "PYTHON": str(lane["python"]),
           "MINIVAE_SANDBOX": sandbox}
    env.pop("PYTHONPATH", None)
    subprocess.run(["bash", str(root / "source" / "run_autograder")], cwd=root / "source", env=env,
                   check=True, timeout=300)
    return json.loads((root / "results" / "results.json").read_text())


@pytest.fixture(scope="module")
def lanes(tmp_path_factory):
    """Two /autograder folders (two submissions graded at once), in a folder every user can search."""
    if not (LINUX and ROOT_GRADER):
        pytest.skip("Gradescope's autograder runs as root on Linux")
    tmp = Path(tempfile.mkdtemp(prefix="minivae-test-autograder-"))
    os.chmod(tmp, 0o755)
    zip_path = tmp_path_factory.mktemp("zip") / "autograder.zip"
    assert main(["assignment", "autograder", "--out", str(zip_path), "--exercises", ",".join(EXERCISES),
                 "--timeout", str(TIMEOUT)]) == 0
    try:
        yield [_lane(tmp, zip_path, f"lane{i}") for i in range(2)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _autograde_class(edition, tmp, lanes):
    """Every submission of the class through run_autograder, alternately in the two lanes (each
    attack aims at its own lane's files), so neighbours in the sorted order run at once."""
    classes = []
    for i, lane in enumerate(lanes):
        ctx = {"results": lane["root"] / "results" / "results.json", "solution": lane["root"] / "source",
               "classmate": None, "roots": [lane["root"] / "source"], "scan_path": True}
        (tmp / f"lane{i}").mkdir()
        classes.append(_class(edition, tmp / f"lane{i}", "autograder", ctx))
    order = sorted(classes[0])

    def run(i):
        out = {}
        for name in order[i::2]:
            results = run_autograder(lanes[i], classes[i][name])
            out[name] = (results["score"], sorted({t["name"].split(":")[0] for t in results["tests"]} & set(EXERCISES)),
                         "\n".join(f"{t['name']}: {t['output']}" for t in results["tests"]))
        return out

    with ThreadPoolExecutor(2) as pool:
        rows = {k: v for part in pool.map(run, range(2)) for k, v in part.items()}
    return rows, {"csv_intact": True}


# ---------------------------------------------------------------- the matrix

@pytest.fixture(scope="module")
def classes():
    """{mode: its class, graded}: each mode's class is graded once for all its attacks' tests.

    (A module-scoped fixture parametrized indirectly through (mode, label) pairs would be set up
    once per pair, not per mode: pytest keys it by the pair's index.)"""
    return {}


@pytest.fixture
def graded(request, classes, edition, tmp_path_factory):
    """The class of one mode, graded once: (mode, rows {name: (points, exercises, messages)},
    facts, the mvdaemon processes left after it)."""
    mode = request.param
    if mode == "sandbox" and not launch.sandbox_status()[0]:
        pytest.skip("no sandbox here")
    if mode == "no-sandbox" and not (LINUX and ROOT_GRADER):
        pytest.skip("without the sandbox only a root grader (a uid per worker) defends; see the module")
    if mode not in classes:
        classes[mode] = _grade_mode(mode, request, edition, tmp_path_factory)
    return classes[mode]


def _grade_mode(mode, request, edition, tmp_path_factory):
    """Grade the class of ``mode``; kill what it left running, after noting it."""
    tmp = tmp_path_factory.mktemp(mode)
    try:
        if mode == "autograder":
            rows, facts = _autograde_class(edition, tmp, request.getfixturevalue("lanes"))
        else:
            rows, facts = _grade_class(edition, tmp, mode)
        left = _daemons()
    finally:
        for pid in _daemons():
            os.kill(int(pid), 9)
    return mode, rows, facts, left


@pytest.mark.parametrize("graded, label", [(mode, label) for mode in ALL for label in sorted(ATTACKS)
                                            if mode in ATTACKS[label][2]], indirect=["graded"])
def test_every_attack_earns_nothing_and_every_honest_row_keeps_full_marks(graded, label):
    mode, rows, facts, left = graded
    points, exercises, messages = rows[label]
    assert points == 0, f"{label} earned {points} ({mode}):\n{messages}"
    assert exercises == EXERCISES, messages                     # what the instructor chose, no more
    if ATTACKS[label][1]:
        assert attempts.RAN_TO_ITS_END in messages, f"{label} never got past its imports ({mode}):\n{messages}"
    honest = {name: rows[name][0] for name in HONEST if name in rows}
    assert honest and all(p == FULL for p in honest.values()), (honest, {n: rows[n][2] for n in honest})
    assert left == [], f"processes started by a submission outlived their worker ({mode})"
    assert facts["csv_intact"], "the class's CSV was changed"


# ---------------------------------------------------------------- Gradescope's two other paths (issue 24)

def test_run_autograder_grades_a_zip_with_one_top_level_folder(lanes, edition, tmp_path):
    sub = tmp_path / "unzipped"
    _honest(edition, sub / "alice-homework-3")                    # as a student zips their folder
    (sub / "__MACOSX" / "alice-homework-3").mkdir(parents=True)   # and as macOS adds to the zip
    results = run_autograder(lanes[0], sub)
    assert results["score"] == FULL, json.dumps(results, indent=1)[:3000]
    assert {t["name"].split(":")[0] for t in results["tests"] if t["max_score"]} == set(EXERCISES)


def test_run_autograder_shows_the_grader_log_in_a_visible_test_when_grading_fails(lanes, tmp_path):
    sub = tmp_path / "unzipped"
    (sub / "homework").mkdir(parents=True)                        # no file of the package
    (sub / "homework" / "answers.txt").write_text("dx = dy @ W.T\n")
    (sub / "notes.md").write_text("my notes\n")
    results = run_autograder(lanes[0], sub)
    assert results["score"] == 0
    [log] = results["tests"]
    assert (log["name"], log["visibility"], log["max_score"]) == ("grader log", "visible", 0)
    assert "files submitted: homework/answers.txt, notes.md" in log["output"]
    assert "has none of the files" in log["output"], log["output"]
