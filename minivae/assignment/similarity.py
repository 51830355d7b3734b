"""A cohort similarity report: which students handed in the same regions, renamed or not.

:func:`similarity_report` reads every submission (a sub-folder, files in ``minivae/`` or
flat) of a folder, takes only the students' regions (the lines between the markers,
as the grader does; the stub given in the edition is no one's work and is dropped),
and cuts each region into the normalised fingerprints of the leak scan
(:func:`minivae.assignment.leaks.normal_forms`: names, constants, formatting and
comments abstracted), tagged by exercise.  A fingerprint most of the class shares
(the textbook way to write a line) says little about copying, a rare one much, so
each weighs log(N / students who have it) (inverse document frequency).  A pair's
score is the weighted Jaccard index of their fingerprint sets, ::

    score(a, b) = sum_{f in a & b} w_f / sum_{f in a | b} w_f     in [0, 1],

computed for every pair at once through an index of who has which fingerprint.
Pairs are ranked by score; those at FLAG_SCORE or above are flagged.  A region whose
whole normal form is that of the published solution (the reference) is flagged too.
:func:`format_text` and :func:`format_html` show the top pairs' regions side by side.
"""
import collections
import difflib
import html
import itertools
import math
from pathlib import Path

from minivae.assignment.exercises import PACKAGE, exercise_table
from minivae.assignment.grader import student_bodies, submission_files
from minivae.assignment.leaks import _form, normal_forms, parse_code, region_code
from minivae.assignment.regions import scan

FLAG_SCORE = 0.9
MIN_NODES = 4                     # every statement and run counts here, expressions from this size


def _fingerprints(code):
    """(set of fingerprints, whole normal form) of a region's code; (set(), None) if not Python."""
    statements = parse_code(code)
    if not statements:
        return set(), None
    forms = set(normal_forms(statements, windows=(1,), min_nodes=MIN_NODES, min_run=1))   # order-free
    return forms, "\n".join(map(_form, statements))


def read_regions(folder, scanned, names):
    """{submission: {exercise: region code}} of every sub-folder of ``folder`` (stubs left out)."""
    regions = {}
    for sub in sorted(p for p in Path(folder).iterdir() if p.is_dir()):
        files, _ = submission_files(sub, list(scanned), PACKAGE)
        mine = {}
        for rel, (_, file_regions) in scanned.items():
            if rel not in files:
                continue
            for name in dict.fromkeys(r["exercise"] for r in file_regions if r["exercise"] in names):
                try:
                    bodies = student_bodies(files[rel], name)
                except Exception:                       # noqa: BLE001 -- a broken marker: no region
                    continue
                code = "".join(line for body in bodies for line in body)
                if code.strip() and "NotImplementedError(" not in code.replace(" ", "")[:400]:
                    mine[name] = mine.get(name, "") + code
        regions[sub.name] = mine
    return regions


def similarity_report(folder, reference, exercises=None, top=20, table=None):
    """Rank every pair of submissions in ``folder`` by how alike their regions are.

    ``reference``: the solution checkout (its regions say where to look and are the
    published solution's form).  Returns {"pairs": [(score, a, b, {exercise: score})]
    best first (at most ``top``, plus every flagged pair), "flagged": pairs with
    score >= FLAG_SCORE, "solution_copies": [(submission, exercise)] whose region's
    normal form is the reference's, "regions": {submission: {exercise: code}}, "n": N}.
    """
    table = exercise_table(table)
    names = list(table) if exercises is None else list(exercises)
    scanned = scan(reference, PACKAGE, table)
    regions = read_regions(folder, scanned, names)
    solution = collections.defaultdict(str)
    for rel, (text, file_regions) in scanned.items():
        for region in file_regions:
            solution[region["exercise"]] += region_code(text, region)
    published = {name: _fingerprints(code)[1] for name, code in solution.items()}
    prints, copies = {}, []
    for sub, mine in regions.items():
        prints[sub] = set()
        for name, code in mine.items():
            forms, whole = _fingerprints(code)
            prints[sub] |= {(name, f) for f in forms}
            if whole is not None and whole == published.get(name):
                copies.append((sub, name))
    n = max(len(prints), 1)
    holders = collections.defaultdict(list)
    for sub, forms in prints.items():
        for f in forms:
            holders[f].append(sub)
    weight = {f: math.log((n + 1) / len(who)) for f, who in holders.items()}
    total = {sub: sum(weight[f] for f in forms) for sub, forms in prints.items()}
    shared = collections.defaultdict(float)
    per = collections.defaultdict(lambda: collections.defaultdict(float))
    for f, who in holders.items():
        if len(who) > 1 and weight[f] > 0:
            for a, b in itertools.combinations(sorted(who), 2):
                shared[a, b] += weight[f]
                per[a, b][f[0]] += weight[f]
    scored = []
    for (a, b), common in shared.items():
        union = total[a] + total[b] - common
        if union > 0:
            scored.append((common / union, a, b, _per_exercise(per[a, b], prints[a], prints[b], weight)))
    scored.sort(key=lambda s: (-s[0], s[1], s[2]))
    flagged = [s for s in scored if s[0] >= FLAG_SCORE]
    return {"pairs": scored[:max(top, len(flagged))], "flagged": flagged, "solution_copies": copies,
            "regions": regions, "n": len(prints)}


def _per_exercise(common, a, b, weight):
    """{exercise: the pair's weighted Jaccard index on that exercise's fingerprints alone}."""
    out = {}
    for name, value in common.items():
        union = sum(weight[f] for f in (a | b) if f[0] == name)
        out[name] = round(value / union, 3) if union else 0.0
    return out


def format_text(report, width=60, shown=3):
    """The ranking as text; the ``shown`` best pairs with their most alike region side by side."""
    lines = [f"{report['n']} submissions; {len(report['flagged'])} pair(s) at score >= {FLAG_SCORE}"]
    for rank, (score, a, b, per) in enumerate(report["pairs"], 1):
        flag = "FLAG " if score >= FLAG_SCORE else "     "
        detail = ", ".join(f"{k} {v:.2f}" for k, v in sorted(per.items(), key=lambda kv: -kv[1]))
        lines.append(f"{rank:>3}. {flag}{score:.3f}  {a} ~ {b}  ({detail})")
    for score, a, b, per in report["pairs"][:shown]:
        name = max(per, key=per.get) if per else None
        if name is None:
            continue
        left = report["regions"][a].get(name, "").splitlines()
        right = report["regions"][b].get(name, "").splitlines()
        lines += ["", f"{a} | {b}: {name} ({per[name]:.2f})"]
        for x, y in itertools.zip_longest(left, right, fillvalue=""):
            lines.append(f"{x[:width]:<{width}} | {y[:width]}")
    if report["solution_copies"]:
        lines += ["", "regions identical (normalised) to the published solution:"]
        lines += [f"  {sub}: {name}" for sub, name in report["solution_copies"]]
    return "\n".join(lines)


def format_html(report, shown=20):
    """The ranking as one HTML page, each of the ``shown`` best pairs' regions side by side."""
    parts = ["<!doctype html><meta charset='utf-8'><title>minivae similarity</title>",
             f"<h1>Similarity of {report['n']} submissions</h1><ol>"]
    for score, a, b, per in report["pairs"]:
        parts.append(f"<li>{'<b>FLAG</b> ' if score >= FLAG_SCORE else ''}{score:.3f} "
                     f"{html.escape(a)} ~ {html.escape(b)}</li>")
    parts.append("</ol>")
    differ = difflib.HtmlDiff(wrapcolumn=70)
    for score, a, b, per in report["pairs"][:shown]:
        for name in sorted(per, key=per.get, reverse=True):
            parts.append(f"<h2>{html.escape(a)} ~ {html.escape(b)}: {html.escape(name)} ({per[name]:.2f})</h2>")
            parts.append(differ.make_table(report["regions"][a].get(name, "").splitlines(),
                                           report["regions"][b].get(name, "").splitlines(), a, b))
    if report["solution_copies"]:
        parts.append("<h2>Identical to the published solution</h2><ul>")
        parts += [f"<li>{html.escape(sub)}: {html.escape(name)}</li>" for sub, name in report["solution_copies"]]
        parts.append("</ul>")
    return "\n".join(parts)
