"""A grader that checks its own checks: ``minivae assignment selftest`` (docs/assignments.md).

On the solution checkout, :func:`selftest` runs every exercise's checks in this
process (the code is the instructor's own: no worker, no sandbox) and reports:

1. the reference earns full marks, and the stubs (a fresh edition) nothing;
2. every entry of the misconception bank (``tests/misconceptions.py``: known-wrong
   region bodies, each with the points it should earn) earns exactly those points,
   in the grader's checks and in the student's local checks alike, and again when
   regraded with ``regrades`` fresh hidden seeds (REGRADES; THOROUGH_REGRADES with
   ``minivae assignment selftest --thorough``, the full matrix before a term);
3. every automatic mutant of every solution region (minivae.assignment.mutants:
   sign flips, constants changed, operands swapped, an axis changed, a term dropped)
   fails at least one check.  A mutant nothing catches is run again on more seeds;
   if its outputs still match the reference's it is listed as equivalent, with why
   (bit-for-bit the same outputs, or the same within the tolerance), else as uncaught;
4. each check that catches no mutant and no bank entry: it does not discriminate.

The checks run as the grader runs them (minivae.assignment.probes and
grader.compare), on a tree that is the reference with only the changed file
replaced: the isolated mode of the grader.
"""
import ast
import importlib.util
import signal
import textwrap
import time
import types
import warnings
from pathlib import Path

import numpy as np

from minivae import distributions, elbo, evaluate, nn, optim, vae
from minivae.assignment import selfchecks
from minivae.assignment.exercises import PACKAGE, exercise_table, select, stub_message
from minivae.assignment.grader import case_sizes, cases_of, compare, reference_outputs
from minivae.assignment.localcheck import LOCAL, case_dtype, judge
from minivae.assignment.mutants import mutants
from minivae.assignment.probes import PROBES
from minivae.assignment.regions import render, scan

SEEDS = (0, 1, 2)                 # the grader's public seeds and one standing for a hidden one
MORE_SEEDS = (3, 4, 5, 6, 7)      # an uncaught mutant is tried on these before it is called equivalent
MUTANT_SECONDS = 5.0              # CPU seconds: a mutant that loops longer is caught (the grader's time limit)
REGRADES = 3                      # hidden seeds each bank entry is regraded with (the test suite's count)
THOROUGH_REGRADES = 20            # ... with --thorough: the full matrix an instructor runs before a term
BANK_FILE = "tests/misconceptions.py"
_FILES = {"nn": "nn.py", "dist": "distributions.py", "elbo": "elbo.py", "vae": "vae.py",
          "evaluate": "evaluate.py", "optim": "optim.py"}
_REFERENCE = {"nn": nn, "dist": distributions, "elbo": elbo, "vae": vae, "evaluate": evaluate, "optim": optim}


class _TooLong(Exception):
    """A mutant ran past MUTANT_SECONDS."""


def modules_with(replaced, package=PACKAGE):
    """The probes' namespace: the reference modules, those of ``replaced`` ({rel path: source}) run anew."""
    mods = dict(_REFERENCE)
    for key, file in _FILES.items():
        rel = f"{package}/{file}"
        if rel in replaced:
            module = types.ModuleType(f"{package}.{file[:-3]}")
            module.__file__ = rel
            exec(compile(replaced[rel], rel, "exec"), module.__dict__)      # noqa: S102 -- the instructor's code
            mods[key] = module
    return types.SimpleNamespace(**mods)


def planted(scanned, name, bodies, stub=False):
    """{rel: source} with the regions of ``name`` given by ``bodies`` ({(rel, index): text}), the others
    the reference's (or, with ``stub``, a stub raising the exercise's hint)."""
    out = {}
    for rel, (text, regions) in scanned.items():
        mine = [r for r in regions if r["exercise"] == name]
        if not mine:
            continue
        count = iter(range(len(mine)))

        def replace(region, body, rel=rel):
            if region["exercise"] != name:
                return [f"{region['indent']}# BEGIN SOLUTION {region['exercise']}\n", *body,
                        f"{region['indent']}# END SOLUTION\n"]
            new = bodies.get((rel, next(count)))
            if new is None and not stub:
                return [f"{region['indent']}# BEGIN SOLUTION {name}\n", *body, f"{region['indent']}# END SOLUTION\n"]
            if new is None:
                new = f"raise NotImplementedError({stub_message(name)!r})\n"
            lines = [region["indent"] + line if line.strip() else line
                     for line in textwrap.dedent(new).strip("\n").splitlines(keepends=True)]
            return [f"{region['indent']}# BEGIN SOLUTION {name}\n", *lines, "\n",
                    f"{region['indent']}# END SOLUTION\n"]

        out[rel] = render(text, regions, replace)
    return out


def _run(m, probe, seed, case):
    try:
        return {k: np.asarray(v) for k, v in PROBES[probe](m, seed, **case).items()}
    except _TooLong:
        raise
    except Exception as error:                            # noqa: BLE001 -- a wrong answer may raise anything
        return {"!error": np.frombuffer(f"{type(error).__name__}: {error}".encode()[:300], np.uint8)}


def grader_verdicts(m, entry, seeds, ref, stop=False):
    """{check: None if it passes, else why} of the grader's checks of ``entry`` on the namespace ``m``."""
    out = {}
    for check in entry["checks"]:
        out[check] = None
        for cid, probe, seed, case, name in cases_of(entry, seeds):
            if name == check:
                why = compare(ref[cid], _run(m, probe, seed, case), case_sizes(case, probe), case.get("dtype"))
                if why:
                    out[check] = f"case {case or 'default'} (seed {seed}): {why}"
                    break
        if stop and out[check]:
            break
    return out


def local_verdicts(m, name, table=None):
    """{check: None or why} of the student's local checks (localcheck.LOCAL) of ``name`` on ``m``."""
    selfchecks.GRADER_PROBES.update(PROBES)
    out = {}
    for check in exercise_table(table)[name]["checks"]:
        runs = LOCAL.get(name, {}).get(check, [])
        out[check] = None if runs else "no local check"
        for probe, case in runs:
            try:
                got = {k: np.asarray(v) for k, v in selfchecks.PROBES[probe](m, 0, **case).items()}
            except Exception as error:                    # noqa: BLE001
                got = {"!error": np.frombuffer(f"{type(error).__name__}: {error}".encode()[:300], np.uint8)}
            why = judge(got, case_dtype(probe, case))
            if why:
                out[check] = why
                break
    return out


def points(entry, verdicts):
    return sum(spec["points"] for check, spec in entry["checks"].items() if not verdicts[check])


def hidden_seeds(count):
    """``count`` hidden seeds as the grader draws them (>= 100), from a fixed generator: repeatable,
    and the first ``count`` of a longer list are the same seeds."""
    return [int(s) for s in np.random.default_rng(7).integers(100, 2**31, size=count)]


def regrade_points(m, entry, hidden):
    """{points} of the grader's checks of ``entry`` on ``m``, graded once per hidden seed of ``hidden``
    (with the public seeds 0 and 1): one value if the score does not depend on the draw."""
    scores = set()
    for seed in hidden:
        seeds = (0, 1, seed)
        scores.add(points(entry, grader_verdicts(m, entry, seeds, reference_outputs(cases_of(entry, seeds)))))
    return scores


def load_bank(path):
    """The misconception bank: {name: {exercise, misconception, see, points, regions}} from ``path``."""
    spec = importlib.util.spec_from_file_location("_minivae_misconceptions", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.BANK


def _limited(function, *args):
    """function(*args), or _TooLong after MUTANT_SECONDS of this process's CPU time (a SIGPROF in this,
    the main, thread). CPU time, not wall time: on a loaded machine an equivalent mutant's extra
    seeds could take longer than that in wall time and be called uncaught."""
    def alarm(signum, frame):
        raise _TooLong()

    previous = signal.signal(signal.SIGPROF, alarm)
    signal.setitimer(signal.ITIMER_PROF, MUTANT_SECONDS)
    try:
        return function(*args)
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


def _same_outputs(m, entry, seeds):
    """'bit-for-bit' if ``m`` gives the reference's exact outputs on every case, 'within' if within
    tolerance, None if not (then a check on these seeds would catch it)."""
    cases = cases_of(entry, seeds)
    ref, exact = reference_outputs(cases), True
    for cid, probe, seed, case, _ in cases:
        got = _run(m, probe, seed, case)
        if compare(ref[cid], got, case_sizes(case, probe), case.get("dtype")):
            return None
        exact = exact and all(np.array_equal(ref[cid][k], got[k], equal_nan=True) for k in ref[cid])
    return "bit-for-bit" if exact else "within"


def selftest(root, names=None, table=None, bank_path=None, seeds=SEEDS, mutate=True, package=PACKAGE,
             regrades=REGRADES):
    """Check the checks of ``names`` (default all) on the solution checkout ``root``; see the module doc.

    Returns {"exercises": [{exercise, reference, stub, bank: [{..., regrades: [points of each
    distinct score], regraded}], mutants: {caught, uncaught: [...], equivalent: [...]},
    idle_checks: [...]}], "ok", "seconds"}.
    """
    start = time.monotonic()
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")              # a wrong answer may overflow: its verdict says so
        return _selftest(root, names, table, bank_path, seeds, mutate, package, start, hidden_seeds(regrades))


def _selftest(root, names, table, bank_path, seeds, mutate, package, start, hidden):
    table = exercise_table(table)
    names = select(names, table)
    scanned = scan(root, package, table)
    bank_path = Path(root) / BANK_FILE if bank_path is None else Path(bank_path)
    bank = load_bank(bank_path) if bank_path.is_file() else {}
    rows = []
    for name in names:
        entry = table[name]
        ref = reference_outputs(cases_of(entry, seeds))
        full = grader_verdicts(modules_with({}), entry, seeds, ref)
        stub = grader_verdicts(modules_with(planted(scanned, name, {}, stub=True)), entry, seeds, ref)
        catches = {check: 0 for check in entry["checks"]}
        row = {"exercise": name, "reference": points(entry, full), "stub": points(entry, stub),
               "max_points": entry["points"], "bank": [], "mutants": {"caught": 0, "uncaught": [], "equivalent": []}}
        for label, wrong in sorted(bank.items()):
            if wrong["exercise"] != name:
                continue
            m = modules_with(planted(scanned, name, {(rel, i): body for rel, i, body in wrong["regions"]}))
            graded, local = grader_verdicts(m, entry, seeds, ref), local_verdicts(m, name, table)
            for check, why in graded.items():
                catches[check] += bool(why)
            row["bank"].append({"name": label, "points": points(entry, graded), "local": points(entry, local),
                                "expected": wrong["points"], "failed": [c for c, w in graded.items() if w],
                                "local_failed": [c for c, w in local.items() if w],
                                "regrades": sorted(regrade_points(m, entry, hidden)), "regraded": len(hidden)})
        if mutate:
            _mutate(scanned, name, entry, seeds, ref, row, catches)
        row["idle_checks"] = [c for c, n in catches.items() if not n]
        rows.append(row)
    ok = all(r["reference"] == r["max_points"] and r["stub"] == 0 and not r["mutants"]["uncaught"]
             and not r["idle_checks"] and all(_as_expected(b) and b["points"] < r["max_points"] for b in r["bank"])
             for r in rows)
    return {"exercises": rows, "ok": ok, "seconds": time.monotonic() - start}


def _as_expected(b):
    """A bank row earns its expected points from the grader, the local check and every regrade."""
    return b["points"] == b["local"] == b["expected"] and set(b["regrades"]) <= {b["expected"]}


def _mutate(scanned, name, entry, seeds, ref, row, catches):
    for rel, (text, regions) in scanned.items():
        ranges = [(r["begin"] + 2, r["end"]) for r in regions if r["exercise"] == name]
        for line, what, source in (_mutants_by_function(text, ranges) if ranges else ()):
            where = {"file": rel, "line": line, "change": what,
                     "code": text.splitlines()[line - 1].strip()}
            try:
                m = _limited(modules_with, {rel: source})
                verdicts = _limited(grader_verdicts, m, entry, seeds, ref)
            except _TooLong:
                row["mutants"]["caught"] += 1             # the grader's time limit stops it
                continue
            except Exception:                             # noqa: BLE001 -- a mutant that cannot even load
                row["mutants"]["caught"] += 1
                continue
            failed = [c for c, w in verdicts.items() if w]
            if failed:
                row["mutants"]["caught"] += 1
                for check in failed:
                    catches[check] += 1
                continue
            try:
                # judged on every probe of the exercise (the default table's too), not only these checks':
                # a check table that never calls a backward must not call its mutants equivalent
                same = _limited(_same_outputs, m, _all_cases(entry, name), MORE_SEEDS)
            except _TooLong:
                same = None
            if same is None:
                row["mutants"]["uncaught"].append(where)
            else:
                why = ("its outputs are bit-for-bit the reference's on every case and seed" if same == "bit-for-bit"
                       else "its outputs match the reference's within the tolerance on every case and seed")
                row["mutants"]["equivalent"].append({**where, "why": why})


def _mutants_by_function(text, ranges):
    """The mutants of ``text`` within ``ranges`` (mutants.mutants), each made on the function that holds
    its range, not on the whole file: the same changes, with the rest of the file as it is.

    mutants() copies and unparses the tree it is given once per mutant; given the whole file, that
    was most of the selftest's time. Here it is given the function alone, on its own lines, under
    ``if True:`` lines standing for the blocks around it (so the line numbers and the indentation
    are the file's), and the function it returns replaces the function's lines in ``text``.
    """
    lines = text.splitlines(keepends=True)
    functions = [n for n in ast.walk(ast.parse(text)) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    for first, last in ranges:
        holders = [f for f in functions if f.lineno <= first and last <= f.end_lineno]
        if not holders:                                   # not in a function: the whole file, as before
            yield from mutants(text, [(first, last)])
            continue
        holder = min(holders, key=lambda f: f.end_lineno - f.lineno)
        start, end = min([holder.lineno] + [d.lineno for d in holder.decorator_list]), holder.end_lineno
        levels, odd = divmod(holder.col_offset, 4)
        if odd or levels > start - 1:
            yield from mutants(text, [(first, last)])
            continue
        alone = "\n" * (start - 1 - levels) + "".join("    " * k + "if True:\n" for k in range(levels))
        alone += "".join(lines[start - 1:end])
        for line, what, source in mutants(alone, [(first, last)]):
            function = "".join(source.splitlines(keepends=True)[levels:])
            yield line, what, "".join(lines[:start - 1]) + function.rstrip("\n") + "\n" + "".join(lines[end:])


def _all_cases(entry, name):
    """``entry`` with the checks of the default table's exercise ``name`` added (if there is one)."""
    default = exercise_table(None).get(name, {}).get("checks", {})
    return {**entry, "checks": {**{f"default {k}": v for k, v in default.items()}, **entry["checks"]}}


def format_selftest(report):
    """The report of :func:`selftest` as text."""
    lines = []
    for r in report["exercises"]:
        mut = r["mutants"]
        lines.append(f"{r['exercise']}: reference {r['reference']:g}/{r['max_points']:g}, stub {r['stub']:g}, "
                     f"bank {sum(_as_expected(b) for b in r['bank'])}/{len(r['bank'])} "
                     f"as expected, mutants caught {mut['caught']}, uncaught {len(mut['uncaught'])}, "
                     f"equivalent {len(mut['equivalent'])}")
        for b in r["bank"]:
            if not _as_expected(b):
                lines.append(f"  BANK {b['name']}: grader {b['points']:g}, local check {b['local']:g}, "
                             f"regraded with {b['regraded']} hidden seeds {b['regrades']}, "
                             f"expected {b['expected']:g} (grader fails {b['failed']}, local {b['local_failed']})")
        for u in mut["uncaught"]:
            lines.append(f"  UNCAUGHT {u['file']}:{u['line']} {u['change']}: {u['code']}")
        for e in mut["equivalent"]:
            lines.append(f"  equivalent {e['file']}:{e['line']} {e['change']}: {e['code']} ({e['why']})")
        for c in r["idle_checks"]:
            lines.append(f"  IDLE CHECK {c}: catches no mutant and no bank entry")
    lines.append(f"selftest {'passed' if report['ok'] else 'FAILED'} in {report['seconds']:.0f} s")
    return "\n".join(lines)
