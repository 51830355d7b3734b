"""Grading: named all-or-nothing checks, decided in a process that never runs student code.

For each exercise, :func:`grade`

1. builds the tree the submission is run from (:func:`compose`): isolated (the
   default), the reference package with that exercise's regions taken from the
   submission, the reference kept only in the regions of the exercises it uses
   (``uses`` in the table) and every other region stubbed, so a broken marker or
   a wrong answer elsewhere costs only its own exercise; or whole, the
   submission's files as they are over the edition;
2. runs the exercise's probes (minivae/assignment/probes.py) on that tree in a
   worker process (minivae.assignment.launch: a sandbox where Linux allows it, a
   time limit, no file writes), which returns raw outputs as an .npz of numeric arrays;
3. runs the same probes here on the reference package, on the same inputs (fixed
   seeds and seeds drawn now), and compares (:func:`compare`).

A check earns its points only if every output of every case on every seed
matches; nothing the worker writes but its arrays is read, so a forged file, a
patched NumPy or an early exit only lose outputs.  Exercises are graded in the
rounds of :func:`minivae.assignment.exercises.levels`: an exercise's worker runs
only after every exercise whose reference its tree holds has been graded.
The submission's files are read as data: a symlink, a file over MAX_FILE_BYTES
or a manifest (assignment.json) in the submission decides nothing.
"""
import ast
import difflib
import json
import os
import re
import secrets
import shutil
import tempfile
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from minivae import distributions, elbo, evaluate, nn, optim, vae
from minivae.gradcheck import diagnose
from minivae.assignment.probes import PROBES, SIZES
from minivae.assignment.edition import MANIFEST, edition_sources
from minivae.assignment.exercises import PACKAGE, AssignmentError, exercise_table, levels, select
from minivae.assignment.launch import run_worker, sandbox_status
from minivae.assignment.regions import render, scan

PROBES_FILE = Path(__file__).with_name("probes.py")   # the worker's copy of the probes
PUBLIC_SEEDS = (0, 1)           # every check runs on these and on HIDDEN_SEEDS drawn per grading
HIDDEN_SEEDS = 1
MAX_FILE_BYTES = 512 << 10      # a submitted file beyond this is not read (the largest reference: 25 KiB)
MAX_NOTES = 10                  # changes outside the markers reported per file
TOLERANCES = {"float64": (1e-6, 1e-8), "float32": (2e-3, 1e-4)}   # rtol, atol as a share of max |ref|
# (of an output's dtype, or of the case's "dtype" if that is coarser: see tolerance())
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
    """The submission's files, under ``package/`` or flat (``nn.py``): ({relative path: text}, problems).

    A file that is a symlink, lies outside ``directory`` once resolved, or is larger
    than MAX_FILE_BYTES is not read; ``problems`` says why, per relative path.
    """
    directory, found, problems = Path(directory), {}, {}
    top = os.path.realpath(directory)
    for rel in reference_files:
        for path in (directory / rel, directory / Path(rel).name):
            if not (path.is_file() or path.is_symlink()):
                continue
            real = os.path.realpath(path)
            if path.is_symlink() or os.path.dirname(real) != os.path.realpath(path.parent) \
                    or not real.startswith(top + os.sep):
                problems[rel] = f"{path.relative_to(directory)} is a symbolic link; submit the file itself"
            elif path.stat().st_size > MAX_FILE_BYTES:
                problems[rel] = f"{path.relative_to(directory)} is larger than {MAX_FILE_BYTES >> 10} KiB"
            else:
                found[rel] = path.read_bytes().decode("utf-8", errors="replace")
            break
    return found, problems


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
    except (SyntaxError, ValueError, RecursionError, MemoryError):
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


def compose(scanned, files, name, mode, edition, table=None, problems=None):
    """The package files to run ``name`` on: {relative path: text} over a copy of the reference.

    isolated: every region file of the reference, with ``name``'s regions holding
    the submission's lines (and its extra top-level imports), the regions of the
    exercises ``name`` uses holding the reference's, and every other region a stub;
    whole: the edition's files with the submission's over them.  Raises
    AssignmentError if the submission's regions of ``name`` are missing or not as
    many as the reference's.
    """
    mine = [rel for rel, (_, regions) in scanned.items() if any(r["exercise"] == name for r in regions)]
    refused = [problems[rel] for rel in mine if rel in (problems or {})]
    if refused:
        raise AssignmentError(refused[0])
    if mode == "whole":
        return {**edition, **files}
    uses = set(exercise_table(table)[name].get("uses", ()))
    sources = {}
    for rel, (text, regions) in scanned.items():
        taken, imports = None, []
        if any(r["exercise"] == name for r in regions):
            if rel not in files:
                raise AssignmentError(f"the submission has no {rel}")
            bodies = student_bodies(files[rel], name)
            wanted = sum(r["exercise"] == name for r in regions)
            if len(bodies) != wanted:
                raise AssignmentError(f"{rel}: {len(bodies)} region(s) of {name} found, {wanted} expected; keep "
                                      f"the lines '# BEGIN SOLUTION {name}' and '# END SOLUTION' around your code")
            taken, imports = iter(bodies), _extra_imports(files[rel], text)

        def replace(region, body):
            begin, end = f"{region['indent']}# BEGIN SOLUTION {region['exercise']}\n", f"{region['indent']}# END SOLUTION\n"
            if region["exercise"] == name:
                return [begin, *next(taken), end]
            if region["exercise"] in uses:
                return [begin, *body, end]
            return [begin, f"{region['indent']}raise NotImplementedError(\"Exercise {region['exercise']} is not "
                           f"part of the grading of {name}\")\n", end]

        sources[rel] = _with_imports(render(text, regions, replace), imports)
    return sources


def outside_changes(files, edition):
    """Where the submission's files differ from the edition's outside the markers: a list of lines."""
    notes = []
    for rel, text in sorted(files.items()):
        expected = edition.get(rel)
        if expected is None:
            continue
        mine, theirs = _outside(text), _outside(expected)
        changes = [op for op in difflib.SequenceMatcher(None, theirs, mine, autojunk=False).get_opcodes()
                   if op[0] != "equal"]
        for tag, i1, i2, j1, j2 in changes[:MAX_NOTES]:
            shown = "".join(mine[j1:j2]).strip().splitlines()[:1] or ["(lines removed)"]
            notes.append(f"{rel}: changed outside the markers near line {i1 + 1} of the edition: "
                         f"{shown[0][:80]!r} (not graded in isolated mode)")
        if len(changes) > MAX_NOTES:
            notes.append(f"{rel}: and {len(changes) - MAX_NOTES} more changes outside the markers")
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
    return types.SimpleNamespace(nn=nn, dist=distributions, elbo=elbo, vae=vae, evaluate=evaluate,
                                 optim=optim)


def reference_outputs(cases):
    """{case id: {key: array}} of the reference on every case (computed here, never in a worker)."""
    m = reference_modules()
    return {cid: {k: np.asarray(v) for k, v in PROBES[probe](m, seed, **kw).items()}
            for cid, probe, seed, kw, _ in cases}


def tolerance(ref, dtype=None):
    """(rtol, atol share) for a reference output ``ref`` of a case computed in ``dtype`` (the case's
    "dtype", default float64): the coarser of the two dtypes' TOLERANCES.

    An output is only as precise as the arithmetic it came from: a float32 model's loss (a Python
    float) or its IWAE estimate (float64, summed from float32 log-densities) carries float32's
    rounding, which correct code written differently rounds differently (relative 1e-6 and more
    after cancellation), so it is judged at float32's tolerance, not at its own dtype's.
    """
    own = TOLERANCES.get(ref.dtype.name, (0, 0))
    if ref.dtype.kind != "f" or dtype is None:
        return own
    case = TOLERANCES[dtype]
    return max(own[0], case[0]), max(own[1], case[1])


def compare(ref, got, sizes=None, dtype=None):
    """None if ``got`` matches ``ref`` (same keys, shapes, dtypes, values within tolerance), else why not.

    ``got`` is what the worker returned (plain numeric arrays); whatever it holds,
    this returns a reason rather than raising.  A wrong array is described by
    :func:`minivae.gradcheck.diagnose` (sign, factor, transpose, axis, zeros...), under
    its own name; ``sizes`` names the case's sizes for the factors ({"L, ...": 3});
    ``dtype`` is the dtype the case computes in (its "dtype"), for :func:`tolerance`.
    """
    try:
        return _compare(ref, got, sizes, dtype)
    except Exception as error:                            # noqa: BLE001 -- any array is a wrong answer
        return f"outputs that cannot be compared ({type(error).__name__})"


def _compare(ref, got, sizes, dtype):
    if got is None:
        return "no outputs"
    if "!error" in got:
        lines = bytes(got["!error"]).decode("utf-8", "replace").strip().splitlines() or ["?"]
        return "raised: " + lines[-1][:300]
    if set(got) != set(ref):
        return f"returned {sorted(got)[:8]}, expected {sorted(ref)}"
    for key, r in ref.items():
        g = got[key]
        if g.shape == r.shape and g.dtype != r.dtype:
            return f"{key} has dtype {g.dtype}, expected {r.dtype}"
        if g.dtype.kind not in "fiub" or r.dtype.kind not in "fiub":
            return f"{key} has dtype {g.dtype}, expected {r.dtype}"
        rtol, share = tolerance(r, dtype)
        found = diagnose(g, r, key, sizes, rtol=rtol, atol=share)
        if found["pattern"] != "match":
            return found["message"]
    return None


def case_sizes(case, probe=None):
    """The sizes a case sets (L samples, k...) and its probe's (B, D...), named for the factors a
    diagnosis may find."""
    names = {"L": "L, the number of samples", "k": "k, the number of importance samples",
             "steps": "the number of steps"}
    return {**{label: case[key] for key, label in names.items() if isinstance(case.get(key), int)},
            **SIZES.get(probe, {})}


def grade_exercise(name, entry, reference, scanned, files, edition, mode, seeds, timeout, table=None,
                   problems=None, hide=()):
    """One row of the report: the exercise's checks, each all-or-nothing."""
    cases = cases_of(entry, seeds)
    ref = reference_outputs(cases)
    error, outputs = None, {}
    try:
        sources = compose(scanned, files, name, mode, edition, table, problems)
    except AssignmentError as exc:
        error = str(exc)
    if error is None:
        with tempfile.TemporaryDirectory(prefix=f"minivae-grade-{name}-") as tmp:
            _write_tree(Path(reference), Path(tmp), sources)
            request = [[cid, probe, seed, kw] for cid, probe, seed, kw, _ in cases]
            outputs, error = run_worker(Path(tmp), request, timeout, {"_minivae_probes.py": PROBES_FILE},
                                        hide=[reference, *hide])
    checks = []
    for check, spec in entry["checks"].items():
        mine = [c for c in cases if c[4] == check]
        why = next((f"case {c[3] or 'default'} (seed {'hidden' if c[2] not in PUBLIC_SEEDS else c[2]}): {w}"
                    for c in mine for w in [compare(ref[c[0]], outputs.get(c[0]), case_sizes(c[3], c[1]),
                                                   c[3].get("dtype"))] if w), None)
        why = why if error is None else error
        if why and error is None and entry.get("see") and entry["see"] not in why:
            why = f"{why} (the formula: {entry['see']})"
        checks.append({"name": check, "max_points": spec["points"], "points": 0 if why else spec["points"],
                       "passed": why is None, "output": why or "passed",
                       "visibility": spec.get("visibility", "visible")})
    points = sum(c["points"] for c in checks)
    return {"exercise": name, "title": entry["title"], "points": points, "max_points": entry["points"],
            "checks": checks, "error": error, "hint": None if points == entry["points"] else entry["hint"]}


def _write_tree(reference, tmp, sources, package=PACKAGE):
    """A package tree in ``tmp``: the reference package's files, then ``sources`` over them."""
    shutil.copytree(reference / package, tmp / package, ignore=shutil.ignore_patterns("__pycache__", "data"))
    for rel, text in sources.items():
        (tmp / rel).write_text(text, encoding="utf-8")


def trusted_assignment(directory, edition_info=None):
    """The exercises and provided names to grade by, and a note when the submission claims some.

    Only ``edition_info`` (the instructor's assignment.json or autograder.json)
    decides; without it every exercise (or the caller's ``exercises``) is graded
    and nothing is provided.  The submission's own manifest decides nothing: what
    it claims as provided only keeps those files out of the "changed outside the
    regions" notes.
    """
    if edition_info is not None:
        return {"exercises": edition_info.get("exercises"), "provided": list(edition_info.get("provided") or [])}, None
    info = read_edition(directory)
    if not info:
        return {"exercises": None, "provided": []}, None
    return ({"exercises": None, "provided": [], "claimed": info.get("provided") or []},
            "the submission's assignment.json decides nothing; every exercise is graded unless "
            "--edition (the edition's assignment.json) or --exercises chooses them")


def grade(directory, exercises=None, *, reference, mode="isolated", table=None, seeds=None,
          timeout=60, jobs=1, package=PACKAGE, edition_info=None, hide=()):
    """Grade the submission in ``directory`` against the solution checkout ``reference``.

    ``exercises``: default the edition's (``edition_info``, the instructor's) or all; ``mode``: "isolated" or "whole"; ``seeds``: the
    inputs' seeds (default PUBLIC_SEEDS and HIDDEN_SEEDS drawn now); ``jobs``:
    exercises graded at once; ``hide``: more folders the worker must not see (a
    class's other submissions).  Returns a report: mode, directory, exercises
    (rows: exercise, title, points, max_points, checks, error, hint),
    outside_changes, notes, sandbox, points, max_points, all_passed.
    """
    table = exercise_table(table)
    directory = Path(directory).resolve()
    info, note = trusted_assignment(directory, edition_info)
    names = select(info["exercises"] if exercises is None else exercises, table)
    scanned = scan(reference, package, table)
    files, problems = submission_files(directory, list(scanned), package)
    if not files and not problems:
        raise AssignmentError(f"{directory} has none of the files {', '.join(scanned)} (in {package}/ or flat)")
    assigned = info["exercises"] or names
    edition = edition_sources(scanned, assigned, info["provided"], table)
    if seeds is None:
        seeds = list(PUBLIC_SEEDS) + [secrets.randbelow(2**31) + 100 for _ in range(HIDDEN_SEEDS)]
    sandboxed, how = sandbox_status()                  # probed here, before the workers' threads
    rows = {}
    with ThreadPoolExecutor(max(1, int(jobs))) as pool:
        for round_ in levels(names, table):            # an exercise after those whose reference it runs
            rows.update(zip(round_, pool.map(lambda n: grade_exercise(
                n, table[n], reference, scanned, files, edition, mode, seeds, timeout, table, problems,
                [directory, *hide]), round_)))
    rows = [rows[n] for n in names]
    noted = edition_sources(scanned, assigned, info.get("claimed", info["provided"]), table)
    notes = ([note] if note else []) + ([] if sandboxed else [
        f"the submission ran without the sandbox ({how}): it could read what this user can read; "
        "grade untrusted code in the autograder (docs/assignments.md)"])
    return {"mode": mode, "directory": str(directory), "exercises": rows,
            "outside_changes": outside_changes(files, noted) + list(problems.values()), "notes": notes,
            "sandbox": how if sandboxed else None,
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
    lines += [f"note: {n}" for n in report["outside_changes"] + report.get("notes", [])]
    lines.append(f"total {report['points']:g}/{report['max_points']:g}")
    return "\n".join(lines)
