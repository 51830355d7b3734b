"""Tests of minivae.assignment.similarity on a synthetic cohort of 200 submissions.

Each student writes the four regions of analytic_kl and reparameterised_sample independently:
one choice at each of a dozen points (expm1 or exp - 1, mu * mu or mu ** 2, a helper line or
not, how the cache is packed...), with intermediate names of their own; all are correct.
Ten of them hand in a copy of a classmate's regions instead: renamed, with independent
statements reordered, reformatted and re-commented.  The report must rank the ten planted
pairs above every independent pair and flag few independent pairs.  Fixed seed (0).
"""
import random
from pathlib import Path

import pytest

from minivae import assignment
from minivae.assignment.edition import edition_sources
from minivae.assignment.similarity import FLAG_SCORE, format_html, format_text, similarity_report
from minivae.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(assignment.reference_solution()[0] is None, reason="needs the solution checkout")
NAMES = ["a", "b", "t", "tmp", "var", "v", "w", "s", "sd", "std", "sig", "g", "grad", "up", "q", "r",
         "term", "terms", "e", "ex", "m", "mean", "h", "k", "u", "acc", "part", "val", "res", "aux"]
EXERCISES = ["analytic_kl", "reparameterised_sample"]


def student(rng, choices=None):
    """(choices, {region key: list of statement groups}) of one student's regions.

    A statement group is a list of lines that may be reordered with the other groups of its
    region only when the region's groups are marked independent (a tuple)."""
    c = choices or {k: rng.randrange(n) for k, n in
                    (("vm1", 3), ("sq", 3), ("kl", 4), ("pack", 2), ("unpack", 2), ("bc", 4), ("dmu", 2),
                     ("dlv", 3), ("sig", 3), ("z", 3), ("scache", 2), ("sdmu", 3), ("sdlv", 3))}
    n = dict(zip(["v", "g", "m", "vv", "s", "ds", "t", "ee"], rng.sample(NAMES, 8)))
    v, g, m, vv, s, ds, t, ee = (n[k] for k in ("v", "g", "m", "vv", "s", "ds", "t", "ee"))
    sq = ["mu * mu", "mu ** 2", "np.square(mu)"][c["sq"]]
    first = [f"{v} = np.expm1(logvar)", f"{v} = np.exp(logvar) - 1", f"{v} = np.exp(logvar) - 1.0"][c["vm1"]]
    kl = [[f"kl = 0.5 * ({sq} + {v} - logvar).sum(axis=-1)"],
          [f"kl = 0.5 * np.sum({sq} + {v} - logvar, axis=1)"],
          [f"{t} = {sq} + {v} - logvar", f"kl = 0.5 * {t}.sum(-1)"],
          [f"kl = ({sq} + ({v} - logvar)).sum(axis=-1) / 2"]][c["kl"]]
    pack = [f"cache = (mu, {v})", f"cache = mu, {v}"][c["pack"]]
    unpack = [[f"{m}, {vv} = cache"], [f"{m} = cache[0]", f"{vv} = cache[1]"]][c["unpack"]]
    bc = [f"{g} = dkl[:, None]", f"{g} = dkl.reshape(-1, 1)", f"{g} = np.expand_dims(dkl, 1)",
          f"{g} = dkl[:, np.newaxis]"][c["bc"]]
    dmu = [f"dmu = {g} * {m}", f"dmu = {m} * {g}"][c["dmu"]]
    dlv = [f"dlogvar = 0.5 * {g} * {vv}", f"dlogvar = {g} * {vv} / 2", f"dlogvar = {vv} * {g} * 0.5"][c["dlv"]]
    sig = [f"{s} = np.exp(0.5 * logvar)", f"{s} = np.exp(logvar / 2)", f"{s} = np.sqrt(np.exp(logvar))"][c["sig"]]
    z = [f"z = mu + {s} * eps", f"z = {s} * eps + mu", f"z = eps * {s} + mu"][c["z"]]
    scache = [f"cache = ({s}, eps)", f"cache = [{s}, eps]"][c["scache"]]
    sdmu = ["dmu = dz.sum(axis=0)", "dmu = np.sum(dz, axis=0)", "dmu = dz.sum(0)"][c["sdmu"]]
    sdlv = [[f"dlogvar = 0.5 * {s} * (dz * {ee}).sum(axis=0)"],
            [f"{ds} = np.sum(dz * {ee}, axis=0)", f"dlogvar = {ds} * {s} / 2"],
            [f"dlogvar = (dz * {ee} * {s}).sum(0) * 0.5"]][c["sdlv"]]
    return c, {("analytic_kl", 0): [[first, *kl], [pack]],
               ("analytic_kl", 1): [unpack, [bc, dmu, dlv]],
               ("reparameterised_sample", 0): [[sig, z], [scache]],
               ("reparameterised_sample", 1): [[f"{s}, {ee} = cache"], ([sdmu], sdlv)]}


def disguise(rng, regions):
    """A copy: reordered where the order does not matter, comments and blank lines added."""
    out = {}
    for key, groups in regions.items():
        lines = []
        for group in groups:
            parts = [list(p) for p in group] if isinstance(group, tuple) else [list(group)]
            if isinstance(group, tuple):
                rng.shuffle(parts)
            lines += [line for part in parts for line in part]
        out[key] = [(line.replace(" = ", "=", 1) + "   # mine" if i % 2 else line) for i, line in enumerate(lines)]
        out[key].insert(1, "")
    return out


def flat(regions):
    return {key: [line for group in groups for part in (group if isinstance(group, tuple) else [group])
                  for line in part] for key, groups in regions.items()}


def write(folder, text, regions):
    lines, out, index = text.splitlines(keepends=True), [], {}
    inside = None
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("# BEGIN SOLUTION ") and stripped.split()[-1] in EXERCISES:
            name = stripped.split()[-1]
            inside = (name, index.get(name, 0))
            index[name] = inside[1] + 1
            indent = line[:len(line) - len(line.lstrip())]
            out.append(line)
            out += [f"{indent}{body}\n" if body else "\n" for body in regions[inside]]
            continue
        if inside and stripped == "# END SOLUTION":
            inside = None
        if inside is None:
            out.append(line)
    (folder / "minivae").mkdir(parents=True)
    (folder / "minivae" / "distributions.py").write_text("".join(out))


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    rng = random.Random(0)
    folder = tmp_path_factory.mktemp("cohort")
    scanned = assignment.scan(ROOT)
    stubbed = edition_sources(scanned, list(assignment.EXERCISES))["minivae/distributions.py"]
    students = {f"s{i:03d}": student(rng) for i in range(190)}
    planted = []
    for j, source in enumerate(rng.sample(sorted(students), 10)):
        choices, _ = students[source]
        copy = f"c{j:02d}"
        planted.append((source, copy))
        students[copy] = (choices, disguise(rng, student(rng, choices)[1]))
    for name, (_, regions) in students.items():
        write(folder / name, stubbed, regions if name.startswith("c") else flat(regions))
    return folder, {tuple(sorted(p)) for p in planted}


def test_planted_copies_rank_above_every_independent_pair_in_a_200_cohort(cohort):
    folder, planted = cohort
    report = similarity_report(folder, ROOT, EXERCISES, top=40)
    assert report["n"] == 200
    ranked = [tuple(sorted((a, b))) for _, a, b, _ in report["pairs"]]
    assert set(ranked[:len(planted)]) == planted, format_text(report)
    scores = {tuple(sorted((a, b))): s for s, a, b, _ in report["pairs"]}
    assert all(scores[p] >= FLAG_SCORE for p in planted)
    independent_flagged = [p for s, a, b, _ in report["flagged"] for p in [tuple(sorted((a, b)))] if p not in planted]
    assert len(independent_flagged) <= 5, independent_flagged     # of 19,900 independent pairs


def test_a_region_in_the_published_solutions_form_is_flagged(tmp_path):
    scanned = assignment.scan(ROOT)
    stubbed = edition_sources(scanned, list(assignment.EXERCISES))["minivae/distributions.py"]
    rng = random.Random(1)
    for i in range(3):
        write(tmp_path / f"s{i}", stubbed, flat(student(rng)[1]))
    (tmp_path / "published" / "minivae").mkdir(parents=True)
    text = (ROOT / "minivae" / "distributions.py").read_text().replace("var_minus_1", "vm")   # renamed
    (tmp_path / "published" / "minivae" / "distributions.py").write_text(text)
    report = similarity_report(tmp_path, ROOT, EXERCISES)
    assert sorted(report["solution_copies"]) == [("published", "analytic_kl"), ("published", "reparameterised_sample")]
    assert "identical (normalised) to the published solution" in format_text(report)
    assert "<table" in format_html(report)


def test_the_command_writes_the_ranking_and_an_html_page(cohort, tmp_path, capsys):
    folder, planted = cohort
    page = tmp_path / "similarity.html"
    assert main(["assignment", "similarity", str(folder), "--exercises", ",".join(EXERCISES),
                 "--top", "12", "--html", str(page)]) == 0
    out = capsys.readouterr().out
    assert "FLAG" in out and all(a in out and b in out for a, b in planted)
    assert page.read_text().count("<table") >= len(planted)
