"""Grading: named all-or-nothing checks, decided in a process that never runs student code.

For each exercise, :func:`grade`

1. builds the tree the submission is run from (:func:`compose`): isolated (the
   default), the reference package with only that exercise's regions taken from
   the submission, so a broken marker or a wrong answer elsewhere costs only its
   own exercise; or whole, the submission's files as they are;
2. runs the exercise's probes (minivae/assignment/probes.py) on that tree in a
   worker process (_worker.py: ``python -I``, a time limit, a scratch folder),
   which returns raw outputs as an .npz of numeric arrays;
3. runs the same probes here on the reference package, on the same inputs (fixed
   seeds and seeds drawn now), and compares (:func:`compare`).

A check earns its points only if every output of every case on every seed
matches; nothing the worker writes but its arrays is read, so a forged file, a
patched NumPy or an early exit only lose outputs.
"""
import ast
import difflib
import io
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

try:
    import pwd                    # POSIX: the worker drops root (see _unprivileged)
except ImportError:               # pragma: no cover - Windows
    pwd = None

from minivae import distributions, evaluate, nn, optim, vae
from minivae.assignment.probes import PROBES
from minivae.assignment.edition import MANIFEST, edition_sources
from minivae.assignment.exercises import PACKAGE, AssignmentError, exercise_table, select
from minivae.assignment.regions import scan

WORKER = Path(__file__).with_name("_worker.py")
PROBES_FILE = Path(__file__).with_name("probes.py")   # the worker's copy of the probes
PUBLIC_SEEDS = (0, 1)           # every check runs on these and on HIDDEN_SEEDS drawn per grading
HIDDEN_SEEDS = 1
MAX_OUTPUT_BYTES = 64 << 20     # a worker's .npz beyond this is refused
TOLERANCES = {"float64": (1e-6, 1e-8), "float32": (2e-3, 1e-4)}   # rtol, atol as a share of max |ref|
_BEGIN = re.compile(r"^\s*#\s*BEGIN\s+SOLUTION\s+(\S+)\s*$")
_END = re.compile(r"^\s*#\s*END\s+SOLUTION\s*$")


def read_edition(directory):
    """The manifest of a student edition (exercises, provided, ...) or {} without one."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise AssignmentError(f"{path} is not a manifest written by make ({error})") from None


def submission_files(directory, reference_files, package=PACKAGE):
    """{relative path: text} of the submission's files: under ``package/`` or flat (``nn.py``)."""
    directory, found = Path(directory), {}
    for rel in reference_files:
        for path in (directory / rel, directory / Path(rel).name):
            if path.is_file():
                found[rel] = path.read_text(encoding="utf-8", errors="replace")
                break
    return found


def student_bodies(text, name):
    """The bodies (lists of lines) of ``name``'s regions in a submitted file, read line by line.

    Only these markers are read, so a broken marker of another exercise does not
    matter.  Raises AssignmentError for a BEGIN without its END.
    """
    bodies, current = [], None
    for number, line in enumerate(text.splitlines(keepends=True), 1):
        begin = _BEGIN.match(line)
        if current is not None and begin:
            raise AssignmentError(f"line {number}: BEGIN SOLUTION inside the open region of {name}; "
                                  "its '# END SOLUTION' is missing")
        if current is not None and _END.match(line):
            bodies.append(current)
            current = None
            continue
        if current is not None:
            current.append(line)
        elif begin and begin.group(1) == name:
            current = []
    if current is not None:
        raise AssignmentError(f"the region of {name} has no '# END SOLUTION' after it")
    return bodies


def _extra_imports(text, reference_text):
    """Top-level import lines of the submission that the reference file does not have."""
    try:
        theirs, ours = ast.parse(text).body, ast.parse(reference_text).body
    except SyntaxError:
        return []
    known = {ast.unparse(n) for n in ours if isinstance(n, (ast.Import, ast.ImportFrom))}
    return [ast.unparse(n) + "\n" for n in theirs
            if isinstance(n, (ast.Import, ast.ImportFrom)) and ast.unparse(n) not in known]


def _with_imports(text, imports):
    """``text`` with ``imports`` inserted after its last top-level import."""
    if not imports:
        return text
    last = max(n.end_lineno for n in ast.parse(text).body if isinstance(n, (ast.Import, ast.ImportFrom)))
    lines = text.splitlines(keepends=True)
    return "".join(lines[:last] + imports + lines[last:])


def compose(scanned, files, name, mode, edition):
    """The package files to run ``name`` on: {relative path: text} over a copy of the reference.

    isolated: the reference's files, with ``name``'s regions holding the
    submission's lines (and the submission's extra top-level imports); whole: the
    edition's files with the submission's over them.  Raises AssignmentError if
    the submission's regions of ``name`` are missing or not as many as the reference's.
    """
    if mode == "whole":
        return {**edition, **files}
    sources = {}
    for rel, (text, regions) in scanned.items():
        wanted = sum(r["exercise"] == name for r in regions)
        if not wanted:
            continue
        if rel not in files:
            raise AssignmentError(f"the submission has no {rel}")
        bodies = student_bodies(files[rel], name)
        if len(bodies) != wanted:
            raise AssignmentError(f"{rel}: {len(bodies)} region(s) of {name} found, {wanted} expected; keep "
                                  f"the lines '# BEGIN SOLUTION {name}' and '# END SOLUTION' around your code")
        lines, out, pos, taken = text.splitlines(keepends=True), [], 0, iter(bodies)
        for region in regions:
            out += lines[pos:region["begin"] + 1]
            out += next(taken) if region["exercise"] == name else lines[region["begin"] + 1:region["end"]]
            pos = region["end"]
        sources[rel] = _with_imports("".join(out + lines[pos:]), _extra_imports(files[rel], text))
    return sources


def outside_changes(files, edition):
    """Where the submission's files differ from the edition's outside the markers: a list of lines."""
    notes = []
    for rel, text in sorted(files.items()):
        expected = edition.get(rel)
        if expected is None:
            continue
        mine, theirs = _outside(text), _outside(expected)
        for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, theirs, mine, autojunk=False).get_opcodes():
            if tag != "equal":
                shown = "".join(mine[j1:j2]).strip().splitlines()[:1] or ["(lines removed)"]
                notes.append(f"{rel}: changed outside the markers near line {i1 + 1} of the edition: "
                             f"{shown[0][:80]!r} (not graded in isolated mode)")
    return notes


def _outside(text):
    lines, inside, kept = text.splitlines(keepends=True), False, []
    for line in lines:
        if _BEGIN.match(line):
            inside = True
            kept.append(line)
        elif _END.match(line):
            inside = False
            kept.append(line)
        elif not inside:
            kept.append(line)
    return [line.rstrip() + "\n" for line in kept if line.strip()]


def cases_of(entry, seeds):
    """[(case id, probe, seed, kwargs, check name)] of an exercise's checks."""
    return [(f"{check}.{i}.{seed}", spec["probe"], seed, case, check)
            for check, spec in entry["checks"].items()
            for i, case in enumerate(spec["cases"]) for seed in seeds]


def reference_modules():
    """The reference package's modules, as the probes take them (this process's minivae)."""
    return types.SimpleNamespace(nn=nn, dist=distributions, vae=vae, evaluate=evaluate, optim=optim)


def reference_outputs(cases):
    """{case id: {key: array}} of the reference on every case (computed here, never in a worker)."""
    m = reference_modules()
    return {cid: {k: np.asarray(v) for k, v in PROBES[probe](m, seed, **kw).items()}
            for cid, probe, seed, kw, _ in cases}


def run_worker(tree, cases, timeout):
    """Run ``cases`` on the package in ``tree`` in a worker process: ({case id: {key: array}}, note)."""
    with tempfile.TemporaryDirectory(prefix="minivae-worker-") as scratch:
        shutil.copyfile(WORKER, os.path.join(scratch, "_worker.py"))
        shutil.copyfile(PROBES_FILE, os.path.join(scratch, "_minivae_probes.py"))
        request = json.dumps([[cid, probe, seed, kw] for cid, probe, seed, kw, _ in cases])
        env = {"PATH": os.environ.get("PATH", ""), "HOME": scratch, "PYTHONDONTWRITEBYTECODE": "1",
               "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        process = subprocess.Popen([sys.executable, "-I", "_worker.py", str(tree)], cwd=scratch, env=env,
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   start_new_session=True, **_unprivileged(scratch, tree))
        try:
            out, err = process.communicate(request.encode(), timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.communicate()
            return {}, f"stopped after {timeout:g} s (an endless loop?)"
    tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
    if len(out) > MAX_OUTPUT_BYTES:
        return {}, f"the outputs were larger than {MAX_OUTPUT_BYTES >> 20} MiB"
    try:
        with np.load(io.BytesIO(out), allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except Exception:                                      # noqa: BLE001 -- any unreadable output
        return {}, f"the submission's process gave no outputs (exit status {process.returncode}): {tail[0][:300]}"
    outputs = {}
    for key, value in arrays.items():
        cid, _, name = key.rpartition("/")
        outputs.setdefault(cid, {})[name] = value
    return outputs, None


def _unprivileged(*folders):
    """As root with MINIVAE_WORKER_USER set (the Gradescope autograder: "nobody"), the worker's
    user and group, and ``folders`` made readable to it; otherwise {} (the worker runs as us)."""
    name = os.environ.get("MINIVAE_WORKER_USER")
    if not name or pwd is None or os.geteuid() != 0:
        return {}
    user = pwd.getpwnam(name)
    for folder in folders:
        for path in [folder, *Path(folder).rglob("*")]:
            os.chmod(path, 0o755 if Path(path).is_dir() else 0o644)
    return {"user": user.pw_uid, "group": user.pw_gid}


def compare(ref, got):
    """None if ``got`` matches ``ref`` (same keys, shapes, dtypes, values within tolerance), else why not."""
    if got is None:
        return "no outputs"
    if "!error" in got:
        return "raised: " + bytes(got["!error"]).decode("utf-8", "replace").strip().splitlines()[-1][:300]
    if set(got) != set(ref):
        return f"returned {sorted(got)}, expected {sorted(ref)}"
    for key, r in ref.items():
        g = got[key]
        if g.shape != r.shape:
            return f"{key} has shape {g.shape}, expected {r.shape}"
        if g.dtype != r.dtype:
            return f"{key} has dtype {g.dtype}, expected {r.dtype}"
        rtol, share = TOLERANCES.get(r.dtype.name, (0, 0))
        finite = np.isfinite(r)
        if not np.array_equal(finite, np.isfinite(g)) or not np.array_equal(r[~finite], g[~finite]):
            return f"{key}: non-finite where the reference is finite (or the other way round)"
        scale = float(np.max(np.abs(r[finite]), initial=0.0))
        if not np.allclose(g[finite], r[finite], rtol=rtol, atol=share * max(scale, 1e-300)):
            worst = float(np.max(np.abs(g[finite].astype(float) - r[finite])))
            return f"{key} differs from the reference (largest difference {worst:.3g})"
    return None


def grade_exercise(name, entry, reference, scanned, files, edition, mode, seeds, timeout):
    """One row of the report: the exercise's checks, each all-or-nothing."""
    cases = cases_of(entry, seeds)
    ref = reference_outputs(cases)
    error, outputs = None, {}
    try:
        sources = compose(scanned, files, name, mode, edition)
    except AssignmentError as exc:
        error = str(exc)
    if error is None:
        with tempfile.TemporaryDirectory(prefix=f"minivae-grade-{name}-") as tmp:
            _write_tree(Path(reference), Path(tmp), {**edition_or_reference(scanned, mode, edition), **sources})
            outputs, error = run_worker(Path(tmp), cases, timeout)
    checks = []
    for check, spec in entry["checks"].items():
        mine = [c for c in cases if c[4] == check]
        why = next((f"case {c[3] or 'default'} (seed {'hidden' if c[2] not in PUBLIC_SEEDS else c[2]}): {w}"
                    for c in mine for w in [compare(ref[c[0]], outputs.get(c[0]))] if w), None)
        why = why if error is None else error
        checks.append({"name": check, "max_points": spec["points"], "points": 0 if why else spec["points"],
                       "passed": why is None, "output": why or "passed",
                       "visibility": spec.get("visibility", "visible")})
    points = sum(c["points"] for c in checks)
    return {"exercise": name, "title": entry["title"], "points": points, "max_points": entry["points"],
            "checks": checks, "error": error, "hint": None if points == entry["points"] else entry["hint"]}


def edition_or_reference(scanned, mode, edition):
    """The region files under the submission's: the edition's (whole) or the reference's (isolated)."""
    return edition if mode == "whole" else {rel: text for rel, (text, _) in scanned.items()}


def _write_tree(reference, tmp, sources, package=PACKAGE):
    """A package tree in ``tmp``: the reference package's files, then ``sources`` over them."""
    shutil.copytree(reference / package, tmp / package, ignore=shutil.ignore_patterns("__pycache__", "data"))
    for rel, text in sources.items():
        (tmp / rel).write_text(text, encoding="utf-8")


def grade(directory, exercises=None, *, reference, mode="isolated", table=None, seeds=None,
          timeout=60, jobs=1, package=PACKAGE, edition_info=None):
    """Grade the submission in ``directory`` against the solution checkout ``reference``.

    ``exercises``: default the edition's (assignment.json) or all; ``mode``:
    "isolated" or "whole"; ``seeds``: the inputs' seeds (default PUBLIC_SEEDS and
    HIDDEN_SEEDS drawn now); ``jobs``: exercises graded at once.  Returns a report:
    mode, directory, exercises (rows: exercise, title, points, max_points, checks,
    error, hint), outside_changes, points, max_points, all_passed.
    """
    table = exercise_table(table)
    directory = Path(directory).resolve()
    info = edition_info if edition_info is not None else read_edition(directory)
    names = select(info.get("exercises") if exercises is None else exercises, table)
    scanned = scan(reference, package, table)
    files = submission_files(directory, list(scanned), package)
    if not files:
        raise AssignmentError(f"{directory} has none of the files {', '.join(scanned)} (in {package}/ or flat)")
    edition = edition_sources(scanned, info.get("exercises", names), info.get("provided", []), table)
    if seeds is None:
        seeds = list(PUBLIC_SEEDS) + [secrets.randbelow(2**31) + 100 for _ in range(HIDDEN_SEEDS)]
    with ThreadPoolExecutor(max(1, int(jobs))) as pool:
        rows = list(pool.map(lambda n: grade_exercise(n, table[n], reference, scanned, files, edition, mode, seeds,
                                                      timeout), names))
    return {"mode": mode, "directory": str(directory), "exercises": rows,
            "outside_changes": outside_changes(files, edition),
            "points": sum(r["points"] for r in rows), "max_points": sum(r["max_points"] for r in rows),
            "all_passed": all(r["points"] == r["max_points"] for r in rows)}


def format_report(report, show_hidden=True):
    """The report of :func:`grade` as text: one line per check, the hint of each unfinished exercise."""
    lines = [f"{report['directory']} ({report['mode']})"]
    for r in report["exercises"]:
        lines.append(f"{r['exercise']:<34} {r['points']:>3g}/{r['max_points']:<3g} {r['title']}")
        for c in r["checks"]:
            if c["visibility"] != "visible" and not show_hidden:
                continue
            lines.append(f"    {'ok  ' if c['passed'] else 'FAIL'} {c['name']:<22} "
                         f"{c['points']:>2g}/{c['max_points']:<2g} {'' if c['passed'] else c['output']}")
        if r["hint"]:
            lines.append(f"    hint: {r['hint']}")
    lines += [f"note: {n}" for n in report["outside_changes"]]
    lines.append(f"total {report['points']:g}/{report['max_points']:g}")
    return "\n".join(lines)
