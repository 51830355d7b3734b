"""Tests of the grader's process model and trust checks, with and without the sandbox.

Without the sandbox (forced off here: ``launch._STATUS``) a root grader runs each worker under a
fresh uid of its own; copies of the solution readable by that uid make grading refuse to start,
so the tests that run attacks there stand in private copies (``isolation.reference_copies``).
Settings files and the local check's folder are checked before anything runs (issue 27).
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from minivae import assignment
from minivae.assignment import isolation, launch
from minivae.cli.main import main

import grading_variants as attempts
from test_assignment import ROOT, _daemons, submission

pytestmark = pytest.mark.skipif(assignment.reference_solution()[0] is None, reason="needs the solution checkout")
LINUX = sys.platform.startswith("linux")


@pytest.fixture(scope="module")
def edition(tmp_path_factory):
    out = tmp_path_factory.mktemp("ed") / "student"
    assignment.make_assignment(ROOT, out, ["affine_backward"])
    return out


@pytest.fixture
def no_sandbox(monkeypatch):
    monkeypatch.setattr(launch, "_STATUS", {"ok": False, "why": "namespaces refused (forced for this test)"})
    monkeypatch.setattr(isolation, "reference_copies", lambda *roots: [])     # as if they were private


@pytest.fixture
def open_dir():
    """A folder every user can search (pytest's own tmp folders are root's alone)."""
    import shutil
    import tempfile
    folder = Path(tempfile.mkdtemp(prefix="minivae-test-open-"))
    os.chmod(folder, 0o755)
    yield folder
    shutil.rmtree(folder)


def _worker_uids():
    first, last = isolation._uid_range()
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            uid = int(status.read_text().split("Uid:", 1)[1].split()[0])
        except (OSError, IndexError, ValueError):
            continue
        if first <= uid <= last:
            found.append(uid)
    return found


@pytest.mark.skipif(not LINUX, reason="the guard is Linux's")
@pytest.mark.parametrize("sandboxed", [True, False])
def test_setsid_daemons_end_with_their_worker_and_spare_the_other_rows(edition, tmp_path, monkeypatch, sandboxed):
    if not sandboxed:
        monkeypatch.setattr(launch, "_STATUS", {"ok": False, "why": "forced off"})
        monkeypatch.setattr(isolation, "reference_copies", lambda *roots: [])
    elif not launch.sandbox_status()[0]:
        pytest.skip("no sandbox here")
    subs = tmp_path / "subs"
    submission(edition, subs / "a", attempts.forks_daemons()[1]).rename(subs / "attacker")
    (subs / "good" / "minivae").mkdir(parents=True)
    (subs / "good" / "minivae" / "nn.py").write_text((ROOT / "minivae" / "nn.py").read_text())
    (subs / "a").rmdir()
    try:
        reports = assignment.grade_all(subs, reference=ROOT, exercises=["affine_backward"], timeout=10)
        assert (reports["attacker"]["points"], reports["good"]["points"]) == (0, 8), reports
        assert _daemons() == [], "children of the worker outlived it"
    finally:
        for pid in _daemons():
            os.kill(int(pid), 9)


def test_without_sandbox_a_root_grader_that_cannot_switch_user_refuses_unless_told(edition, tmp_path,
                                                                                   no_sandbox, monkeypatch):
    monkeypatch.setattr(isolation, "_can_switch_user", lambda: False)
    monkeypatch.delenv("MINIVAE_ALLOW_ROOT_WORKER", raising=False)
    tree = submission(edition, tmp_path, [])
    if os.geteuid() != 0:
        pytest.skip("not root")
    with pytest.raises(assignment.AssignmentError, match="refusing to run submitted code as root"):
        assignment.grade(tree, ["affine_backward"], reference=ROOT, timeout=10)
    monkeypatch.setenv("MINIVAE_ALLOW_ROOT_WORKER", "1")
    assert assignment.grade(tree, ["affine_backward"], reference=ROOT, timeout=10)["points"] == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="a root grader's check")
def test_without_sandbox_a_readable_copy_of_the_solution_is_named_and_nothing_runs(edition, tmp_path, monkeypatch,
                                                                                     open_dir):
    monkeypatch.setattr(launch, "_STATUS", {"ok": False, "why": "forced off"})
    copy = open_dir / "open"
    copy.mkdir()
    monkeypatch.setattr(isolation, "reference_copies", lambda *roots: [str(copy)])
    tree = submission(edition, tmp_path, [])
    with pytest.raises(assignment.AssignmentError, match=f"could read {copy}"):
        assignment.grade(tree, ["affine_backward"], reference=ROOT, timeout=10)
    os.chmod(copy, 0o700)                                    # now private: grading runs
    assert assignment.grade(tree, ["affine_backward"], reference=ROOT, timeout=10)["points"] == 0


def test_readable_by_follows_every_folder_on_the_way(open_dir):
    tmp_path = open_dir
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f").write_text("x")
    os.chmod(tmp_path / "a", 0o755)
    other = 1_430_999_999
    assert isolation.readable_by(tmp_path / "a" / "b" / "f", other, other)
    os.chmod(tmp_path / "a", 0o750)
    assert not isolation.readable_by(tmp_path / "a" / "b" / "f", other, other)


@pytest.mark.skipif(not LINUX or os.geteuid() != 0, reason="fresh worker uids: a root grader on Linux")
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_killing_the_grader_leaves_no_worker_looping(edition, tmp_path, how):
    loop = [("minivae/nn.py", "affine_backward", 0, "while True:\n    pass\n", ())]
    tree = submission(edition, tmp_path, loop)
    grader = subprocess.Popen([sys.executable, "-m", "minivae", "assignment", "grade", str(tree),
                               "--exercises", "affine_backward", "--timeout", "120"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            if _worker_uids():
                break
            time.sleep(0.05)
        assert _worker_uids(), "the worker never started"
        grader.send_signal(how)
        grader.wait(10)
        for _ in range(200):
            if not _worker_uids():
                break
            time.sleep(0.05)
        assert _worker_uids() == []
    finally:
        grader.kill()


@pytest.mark.parametrize("text, message", [
    ("[1, 2]", "must hold a JSON object"),
    ('{"exercises": {"analytic_kl": {"points": -3}}}', "analytic_kl.points must be a finite number >= 0"),
    ('{"exercises": {"analytic_kl": {"points": NaN}}}', "analytic_kl.points must be a finite number"),
    ('{"exercises": {"analytic_kl": {"checks": {"value": {"points": -1}}}}}', "analytic_kl.value.points"),
    ('{"exercises": ["analytic_kl"]}', "must be an object"),
    ('{"assignment": {"exercises": ["analytic_kl"], "provided": ["analytic_kl"]}}', "both assigned and provided"),
])
def test_a_bad_settings_file_is_a_clear_error(tmp_path, capsys, text, message):
    path = tmp_path / "course.json"
    path.write_text(text)
    with pytest.raises(assignment.AssignmentError, match=message):
        assignment.apply_config(assignment.load_config(path))
    assert main(["assignment", "make", "--out", str(tmp_path / "ed"), "--config", str(path)]) == 2
    assert message.split()[0] in capsys.readouterr().err and not (tmp_path / "ed").exists()


def test_check_on_a_missing_folder_exits_2_with_the_reason(tmp_path, capsys):
    assert main(["assignment", "check", "analytic_kl", "--directory", str(tmp_path / "nope")]) == 2
    assert "--directory must be a folder" in capsys.readouterr().err


@pytest.mark.skipif(not LINUX, reason="the guard is Linux's")
def test_the_local_check_leaves_no_setsid_daemon(edition, tmp_path):
    tree = submission(edition, tmp_path, attempts.forks_daemons()[1])
    try:
        assignment.check_locally(tree, ["affine_backward"], timeout=20)
        assert _daemons() == []
    finally:
        for pid in _daemons():
            os.kill(int(pid), 9)
