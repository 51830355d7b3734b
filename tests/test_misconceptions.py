"""The misconception bank (tests/misconceptions.py) and the grader's self-test (minivae.assignment.selftest).

Each known-wrong solution is planted into the reference in this process, as the grader's isolated
mode runs it, and graded by the grader's checks and by the student's local checks."""
import json
import shutil
from pathlib import Path

import pytest

from minivae import assignment
from minivae.assignment import selftest
from minivae.assignment.exercises import EXERCISES
from minivae.assignment.grader import cases_of, reference_outputs
from minivae.assignment.regions import scan
from minivae.cli.main import main
from grading_variants import with_region
from misconceptions import BANK

ROOT = Path(__file__).resolve().parents[1]
SCANNED = scan(ROOT)


def planted(label):
    wrong = BANK[label]
    return selftest.modules_with(selftest.planted(SCANNED, wrong["exercise"],
                                                  {(rel, i): body for rel, i, body in wrong["regions"]}))


def test_the_bank_has_thirty_misconceptions_over_every_exercise_each_with_a_docs_section():
    assert len(BANK) >= 30
    assert {w["exercise"] for w in BANK.values()} == set(EXERCISES)
    for label, wrong in BANK.items():
        doc, _, anchor = wrong["see"].partition("#")
        assert (ROOT / doc).is_file() and anchor, label
        assert wrong["points"] < EXERCISES[wrong["exercise"]]["points"], label


# a misconception's own arithmetic may overflow (the naive log(sigmoid(a)) does at |a| ~ 1e2): it is
# graded by the values it returns (inf, NaN), and NumPy's warnings about it are not this test's subject
WRONG_ARITHMETIC = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning",
                                              "ignore:divide by zero encountered:RuntimeWarning",
                                              "ignore:invalid value encountered:RuntimeWarning")


@WRONG_ARITHMETIC
@pytest.mark.parametrize("label", sorted(BANK))
def test_each_misconception_earns_its_points_from_the_grader_and_the_local_check_alike(label):
    wrong = BANK[label]
    entry = EXERCISES[wrong["exercise"]]
    seeds = (0, 1, 12345)
    m = planted(label)
    graded = selftest.grader_verdicts(m, entry, seeds, reference_outputs(cases_of(entry, seeds)))
    local = selftest.local_verdicts(m, wrong["exercise"])
    assert {c: bool(w) for c, w in graded.items()} == {c: bool(w) for c, w in local.items()}, (graded, local)
    assert selftest.points(entry, graded) == wrong["points"], graded


@WRONG_ARITHMETIC
@pytest.mark.parametrize("label", sorted(BANK))
def test_regrades_with_fresh_hidden_seeds_give_one_score(label):
    # REGRADES (3) hidden seeds here, from a fixed generator (repeatable); the same property on
    # THOROUGH_REGRADES (20) is `minivae assignment selftest --thorough`, before a term
    wrong = BANK[label]
    entry = EXERCISES[wrong["exercise"]]
    hidden = selftest.hidden_seeds(selftest.REGRADES)
    assert len(set(hidden)) == selftest.REGRADES >= 2 and min(hidden) >= 100
    assert selftest.regrade_points(planted(label), entry, hidden) == {wrong["points"]}


def test_selftest_thorough_regrades_each_bank_entry_with_twenty_hidden_seeds(monkeypatch, capsys):
    # --thorough is accepted and asks for THOROUGH_REGRADES; the run itself is monkeypatched away
    asked = []
    monkeypatch.setattr(selftest, "selftest", lambda *a, **k: asked.append(k["regrades"]) or
                        {"exercises": [], "ok": True, "seconds": 0.0})
    assert main(["assignment", "selftest", "--thorough", "--exercises", "analytic_kl", "--no-mutants"]) == 0
    assert main(["assignment", "selftest", "--exercises", "analytic_kl", "--no-mutants"]) == 0
    assert asked == [selftest.THOROUGH_REGRADES, selftest.REGRADES] and selftest.THOROUGH_REGRADES == 20
    monkeypatch.undo()
    # and selftest regrades every bank entry with that many hidden seeds (counted, not run: each
    # regrade here gives two scores, which selftest must report as a failure)
    graded = []
    monkeypatch.setattr(selftest, "regrade_points",
                        lambda m, entry, hidden: graded.append(list(hidden)) or {0, 1})
    report = selftest.selftest(ROOT, ["analytic_kl"], mutate=False, regrades=selftest.THOROUGH_REGRADES)
    rows = report["exercises"][0]["bank"]
    assert len(graded) == len(rows) == sum(w["exercise"] == "analytic_kl" for w in BANK.values())
    assert all(h == selftest.hidden_seeds(20) and len(set(h)) == 20 for h in graded)
    assert all(b["regraded"] == 20 for b in rows)
    assert not report["ok"] and "regraded with 20 hidden seeds [0, 1]" in selftest.format_selftest(report)
    assert selftest.hidden_seeds(20)[:selftest.REGRADES] == selftest.hidden_seeds(selftest.REGRADES)


PATTERNS = {"kl_dlogvar_half_dropped": ("dlogvar", "is 2 times"), "sample_dlogvar_half_dropped": ("dlogvar", "is 2 times"),
            "standard_normal_dz_sign": ("dz", "wrong sign"), "affine_dW_transposed": ("dW", "transposed"),
            "affine_db_not_summed": ("db", "over axis 0"), "sample_dmu_mean_over_samples": ("dmu", "1/3"),
            "gaussian_dmean_not_summed_over_samples": ("dmean", "over axis 0"),
            "kl_averaged_over_D": ("kl", "1/3"), "bce_gradient_sign": ("dlogits", "wrong sign")}


@pytest.mark.parametrize("label", sorted(PATTERNS))
def test_the_messages_name_the_output_and_the_pattern(label):
    wrong = BANK[label]
    entry = EXERCISES[wrong["exercise"]]
    seeds = (0, 1, 2)
    m = planted(label)
    name, pattern = PATTERNS[label]
    graded = selftest.grader_verdicts(m, entry, seeds, reference_outputs(cases_of(entry, seeds)))
    first = next(w for w in graded.values() if w)
    assert f"{name}: " in first and pattern in first, first
    local = next(w for w in selftest.local_verdicts(m, wrong["exercise"]).values() if w)
    assert f"{name}" in local and "d0" not in local, local


def test_planted_in_a_student_edition_gradescope_shows_the_output_the_pattern_and_the_docs(tmp_path):
    edition = tmp_path / "student"
    assignment.make_assignment(ROOT, edition, ["analytic_kl"], provide=())
    wrong = BANK["kl_half_dropped"]
    sub = tmp_path / "zip" / "top-level-folder"        # as a student zips it: one folder on top
    shutil.copytree(edition / "minivae", sub / "minivae")
    for rel, index, body in wrong["regions"]:
        (sub / rel).write_text(with_region((sub / rel).read_text(), "analytic_kl", index, body))
    report = assignment.grade(sub, ["analytic_kl"], reference=ROOT, edition_info={"exercises": ["analytic_kl"]})
    results = assignment.gradescope_results(report)
    failed = [t for t in results["tests"] if t["score"] < t["max_score"]]
    assert results["score"] == wrong["points"] and failed, assignment.format_report(report)
    gradient = next(t for t in failed if t["name"] == "analytic_kl: gradient")
    assert "dmu: is 2 times" in gradient["output"] and wrong["see"] in gradient["output"]
    assert "kl: is 2 times" in next(t for t in failed if t["name"] == "analytic_kl: value")["output"]
    assert json.dumps(results)


def test_selftest_passes_on_the_default_assignment():
    # regrades=0: each entry's regrades are test_regrades_with_fresh_hidden_seeds_give_one_score's,
    # on the same hidden seeds, and the thorough test shows selftest doing them
    report = selftest.selftest(ROOT, regrades=0)
    assert report["ok"], selftest.format_selftest(report)
    rows = {r["exercise"]: r for r in report["exercises"]}
    assert set(rows) == set(EXERCISES)
    assert sum(len(r["bank"]) for r in rows.values()) == len(BANK)
    assert all(r["mutants"]["caught"] > 0 and not r["mutants"]["uncaught"] for r in rows.values())
    assert all(e["why"] for r in rows.values() for e in r["mutants"]["equivalent"])


def test_selftest_reports_a_check_that_catches_nothing_and_an_uncaught_mutant():
    table = {name: dict(entry) for name, entry in EXERCISES.items()}
    kl = dict(table["analytic_kl"])
    # only the near-prior value case: dlogvar is never compared, so its mutants go uncaught
    kl["checks"] = {"value": {"points": 3, "probe": "kl", "cases": [{}]},
                    "idle": {"points": 5, "probe": "kl", "cases": [{"part": "value", "near_prior": True}]}}
    kl["points"] = 8
    table["analytic_kl"] = kl
    report = selftest.selftest(ROOT, ["analytic_kl"], table=table)
    row = report["exercises"][0]
    assert not report["ok"] and row["mutants"]["uncaught"]
    assert all({"file", "line", "change", "code"} <= set(u) for u in row["mutants"]["uncaught"])
    assert "UNCAUGHT minivae/distributions.py:" in selftest.format_selftest(report)
