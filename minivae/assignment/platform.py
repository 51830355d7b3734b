"""Course platforms and scale: the instructor's JSON settings, Gradescope, a class of submissions.

* :func:`apply_config` reads the instructor's settings (points, hints, visibility,
  extra checks) over the exercise table;
* :func:`gradescope_results` turns a report of minivae.assignment.grader into
  Gradescope's results.json (``score``, ``tests[]``: name, score, max_score,
  output, visibility);
* :func:`build_autograder` writes a Gradescope autograder zip (setup.sh,
  run_autograder, the solution's tracked files, the settings);
* :func:`grade_all` grades a folder of submissions in parallel and writes a CSV.
"""
import copy
import csv
import json
import secrets
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from minivae.assignment.edition import MANIFEST, tracked_files
from minivae.assignment.exercises import AssignmentError, exercise_table, select
from minivae.assignment.grader import HIDDEN_SEEDS, PUBLIC_SEEDS, grade
from minivae.assignment.isolation import refuse_untrusted, release, worker_identity
from minivae.assignment.launch import sandbox_status
from minivae.utils.validation import check_number

VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")


def load_config(path):
    """The instructor's settings file (JSON, an object), or {} for None; AssignmentError otherwise."""
    if path is None:
        return {}
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise AssignmentError(f"cannot read the settings file {path}: {error}") from None
    if not isinstance(config, dict):
        raise AssignmentError(f"the settings file {path} must hold a JSON object, got {type(config).__name__}")
    for key in ("exercises", "settings"):
        if key in config and not isinstance(config[key], dict):
            raise AssignmentError(f"{path}: {key!r} must be an object of exercise settings, got {config[key]!r}"[:300])
    info = config.get("assignment", config)
    if isinstance(info, dict) and isinstance(info.get("exercises"), list):
        both = set(info["exercises"]) & set(info.get("provided") or [])
        if both:
            raise AssignmentError(f"{path}: exercises both assigned and provided: {', '.join(sorted(both))}")
    return config


def _points(value, name):
    """A check's or exercise's points: a finite number >= 0 (the validation rule), as AssignmentError."""
    try:
        return check_number(value, name, low=0)
    except (TypeError, ValueError) as error:
        raise AssignmentError(str(error)) from None


def apply_config(config, table=None):
    """A copy of the exercise table with the settings of ``config`` applied.

    ``config = {"exercises": {name: {"points": n, "hint": "...", "checks": {check:
    {"points": n, "visibility": v, "probe": p, "cases": [...]}}}}}``: a check not in
    the table is added (e.g. a hidden one); an exercise's points without check
    points scale its checks' points.  Every visibility must be one of VISIBILITIES.
    """
    table = copy.deepcopy(exercise_table(table))
    exercises = config.get("exercises") or {}
    if not isinstance(exercises, dict):
        raise AssignmentError(f"settings: 'exercises' must be an object of exercise settings, got {exercises!r}"[:300])
    for name, settings in exercises.items():
        select([name], table)
        entry = table[name]
        if not isinstance(settings, dict) or not isinstance(settings.get("checks") or {}, dict):
            raise AssignmentError(f"settings of {name} must be an object (points, hint, checks), got {settings!r}"[:300])
        if "points" in settings:
            _points(settings["points"], f"{name}.points")
        if "hint" in settings:
            entry["hint"] = str(settings["hint"])
        if "uses" in settings:
            entry["uses"] = select(list(settings["uses"]), table)
        for check, spec in (settings.get("checks") or {}).items():
            if not isinstance(spec, dict):
                raise AssignmentError(f"{name}.{check} must be an object (points, visibility...), got {spec!r}"[:300])
            if "points" in spec:
                _points(spec["points"], f"{name}.{check}.points")
            if check not in entry["checks"] and not {"probe", "cases", "points"} <= set(spec):
                raise AssignmentError(f"{name}.{check}: a new check needs probe, cases and points")
            if spec.get("visibility", "visible") not in VISIBILITIES:
                raise AssignmentError(f"{name}.{check}: visibility must be one of {', '.join(VISIBILITIES)}")
            entry["checks"].setdefault(check, {}).update(spec)
        total = sum(c["points"] for c in entry["checks"].values())
        if "points" in settings and not settings.get("checks") and total > 0:
            factor = float(settings["points"]) / total
            for c in entry["checks"].values():
                c["points"] = round(c["points"] * factor, 4)
            total = float(settings["points"])
        entry["points"] = total
    return table


def gradescope_results(report):
    """Gradescope's results.json for a report: one test per check (its failure and the hint in
    ``output``), notes and changes outside the markers as 0-point tests, all visible."""
    tests = []
    for row in report["exercises"]:
        for check in row["checks"]:
            output = check["output"] + ("" if check["passed"] or not row["hint"] else f"\nhint: {row['hint']}")
            tests.append({"name": f"{row['exercise']}: {check['name']}", "score": check["points"],
                          "max_score": check["max_points"], "output": output,
                          "visibility": check["visibility"]})
    if report["outside_changes"]:
        tests.append({"name": "changes outside the markers", "score": 0, "max_score": 0,
                      "output": "\n".join(report["outside_changes"]), "visibility": "visible"})
    if report.get("notes"):
        tests.append({"name": "notes from the grader", "score": 0, "max_score": 0,
                      "output": "\n".join(report["notes"]), "visibility": "visible"})
    return {"score": report["points"], "tests": tests, "visibility": "visible",
            "stdout_visibility": "hidden"}


def student_messages(report):
    """The feedback of one graded submission as text (the lines of format_report, without paths)."""
    if report.get("error"):
        return f"not graded: {report['error']}"
    lines = []
    for row in report["exercises"]:
        lines.append(f"{row['exercise']}: {row['points']:g}/{row['max_points']:g}")
        lines += [f"  FAIL {c['name']} {c['points']:g}/{c['max_points']:g}: {c['output']}"
                  for c in row["checks"] if not c["passed"]]
        if row["hint"]:
            lines.append(f"  hint: {row['hint']}")
    lines += [f"note: {n}" for n in report.get("outside_changes", []) + report.get("notes", [])]
    lines.append(f"total {report['points']:g}/{report['max_points']:g}")
    return "\n".join(lines)


RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this in /autograder/source; MINIVAE_AUTOGRADER_ROOT stands in for /autograder in tests
set -u
ROOT="${MINIVAE_AUTOGRADER_ROOT:-/autograder}"
cd "$ROOT/source"
mkdir -p "$ROOT/results"
# each worker runs the submission under a uid of its own, which cannot read the solution
chmod -R go-rwx "$ROOT/source" 2>/dev/null || true
SUB="$ROOT/submission"
# a zip with one top-level folder (student/minivae/..., or student/nn.py): grade that folder
if [ ! -d "$SUB/minivae" ] && [ -z "$(find "$SUB" -maxdepth 1 -name '*.py' -print -quit)" ]; then
    inner=$(find "$SUB" -mindepth 1 -maxdepth 1 -type d ! -name '__MACOSX' ! -name '.*')
    if [ "$(printf '%s\\n' "$inner" | grep -c .)" = 1 ]; then SUB="$inner"; fi
fi
"${PYTHON:-python3}" -m minivae assignment grade \\
    "$SUB" --reference "$ROOT/source" --edition "$ROOT/source/autograder.json" \\
    --config "$ROOT/source/autograder.json" --gradescope "$ROOT/results/results.json" > "$ROOT/results/log.txt" 2>&1
status=$?
if [ ! -s "$ROOT/results/results.json" ]; then
    # grading itself failed: the log goes to the student in a visible test, never a silent 0
    # (every file submitted, not only those of the folder graded)
    "${PYTHON:-python3}" - "$ROOT/results/log.txt" "$ROOT/submission" > "$ROOT/results/results.json" <<'PY'
import json, os, sys
log = open(sys.argv[1], encoding="utf-8", errors="replace").read()[-20000:]
files = sorted(os.path.relpath(os.path.join(d, f), sys.argv[2]) for d, _, fs in os.walk(sys.argv[2]) for f in fs)[:50]
print(json.dumps({"score": 0, "output": "the submission could not be graded; the grader's log is in the test below",
                  "tests": [{"name": "grader log", "score": 0, "max_score": 0, "visibility": "visible",
                             "output": "files submitted: " + ", ".join(files) + "\\n\\n" + log}]}))
PY
fi
exit 0
"""

SETUP_SH = """#!/usr/bin/env bash
# Gradescope's setup: Python and the solution package (the autograder's own copy)
set -e
apt-get update && apt-get install -y python3 python3-pip python3-venv
cd /autograder/source
python3 -m pip install --break-system-packages -e . || python3 -m pip install -e .
"""


def build_autograder(root, out, exercises=None, provided=(), config=None, table=None, timeout=60):
    """Write Gradescope's autograder zip ``out`` from the solution checkout ``root`` (``timeout``:
    seconds per exercise's worker, kept in autograder.json for run_autograder's grade)."""
    table = exercise_table(table)
    names = select(exercises, table)
    settings = {"assignment": {"exercises": names, "provided": list(provided)},
                "settings": (config or {}).get("exercises", {}), "timeout": timeout}
    root = Path(root)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for rel in tracked_files(root):
            z.write(root / rel, rel)
        z.writestr("autograder.json", json.dumps(settings, indent=2))
        for name, text in (("setup.sh", SETUP_SH), ("run_autograder", RUN_AUTOGRADER)):
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o755 << 16
            z.writestr(info, text)
    return {"out": str(out), "exercises": names}


def grade_all(folder, *, reference, jobs=2, csv_path=None, edition_info=None, exercises=None, messages=None,
              **kwargs):
    """Grade every submission (sub-folder) of ``folder``, ``jobs`` at once: {name: report}.

    Every submission is graded on one assignment: ``edition_info`` (the
    instructor's manifest) or ``exercises`` (default all), never a submission's
    own assignment.json, and on the same inputs (one hidden seed drawn for the
    class).  Without the sandbox it refuses to start (AssignmentError) if the
    workers would run as root or could read the solution or the submissions.
    Each student's feedback (:func:`student_messages`) goes in the CSV's
    ``messages`` column and, with ``messages`` (a folder), in
    ``messages/<submission>.txt``.  A
    submission that cannot be graded gets a report with an ``error``, never stops
    the others; no worker sees the other submissions.
    """
    subs = sorted(p for p in Path(folder).iterdir() if p.is_dir())
    if not subs:
        raise AssignmentError(f"{folder} has no submission folders")
    identity = worker_identity()                          # before any worker: refuse here, not per row
    try:
        refuse_untrusted(sandbox_status()[0], identity, [folder])
    finally:
        release(identity)
    if edition_info is None:                              # the instructor's choice only, never the
        edition_info = {"exercises": exercises, "provided": []}   # submissions' own assignment.json
    if kwargs.get("seeds") is None:                       # one hidden seed for the whole class
        kwargs["seeds"] = list(PUBLIC_SEEDS) + [secrets.randbelow(2**31) + 100 for _ in range(HIDDEN_SEEDS)]

    def one(path):
        try:
            return path.name, grade(path, exercises, reference=reference, edition_info=edition_info,
                                    hide=[folder], **kwargs)
        except Exception as error:                         # noqa: BLE001 -- one submission, not the class
            return path.name, {"error": f"{type(error).__name__}: {error}"[:500], "exercises": [],
                               "points": 0, "max_points": 0}

    with ThreadPoolExecutor(max(1, int(jobs))) as pool:
        reports = dict(pool.map(one, subs))
    if messages is not None:
        Path(messages).mkdir(parents=True, exist_ok=True)
        for sub, rep in reports.items():
            (Path(messages) / f"{sub}.txt").write_text(student_messages(rep) + "\n", encoding="utf-8")
    if csv_path is not None:
        names = sorted({r["exercise"] for rep in reports.values() for r in rep["exercises"]})
        with open(csv_path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["submission", "points", "max_points", *names, "error", "messages"])
            for sub, rep in reports.items():
                per = {r["exercise"]: r["points"] for r in rep["exercises"]}
                writer.writerow([sub, rep["points"], rep["max_points"], *[per.get(n, "") for n in names],
                                 rep.get("error", ""), student_messages(rep)])
    return reports


def edition_info_file(path):
    """The exercises and provided names of an autograder.json or an edition's assignment.json."""
    info = load_config(path)
    return {"exercises": info.get("exercises"), "provided": info.get("provided", [])}


__all__ = ["VISIBILITIES", "MANIFEST", "load_config", "apply_config", "gradescope_results",
           "build_autograder", "grade_all", "student_messages", "edition_info_file"]
