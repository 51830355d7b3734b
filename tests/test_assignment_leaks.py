"""Tests of minivae.assignment.leaks: an edition holds no code of an answer, under any names.

Every region of the solution is planted, renamed (every name and argument), reformatted and
re-commented, into a module, a tutorial script, a notebook's code cell and a Markdown code
block of a withheld edition; the scan must name its exercise in each.  The modules that
reuse an exercise's result (diagnostics, wake-sleep) call the exercise's function instead.
"""
import ast
import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from minivae import assignment, distributions
from minivae.assignment.edition import copy_tracked, edition_sources, tracked_files
from minivae.assignment.leaks import _CONTEXT, _forms_and_sizes, normal_forms, parse_code, region_code, scan_for_leaks
from minivae.topics import diagnostics

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(assignment.reference_solution()[0] is None, reason="needs the solution checkout")
SCANNED = assignment.scan(ROOT) if assignment.reference_solution()[0] else {}
REGIONS = [(rel, i, region["exercise"]) for rel, (_, regions) in SCANNED.items() for i, region in enumerate(regions)]


class _Rename(ast.NodeTransformer):
    """Every name and argument renamed (consistently), as a student hiding a copy would."""

    def __init__(self):
        self.names = {}

    def _new(self, name):
        return self.names.setdefault(name, f"v{len(self.names)}_{name[::-1].strip('_') or 'x'}")

    def visit_Name(self, node):
        node.id = self._new(node.id)
        return node

    def visit_arg(self, node):
        node.arg = self._new(node.arg)
        return node


def disguised(rel, index):
    """Region ``index`` of ``rel``, renamed and reformatted, as the body of a new function."""
    text, regions = SCANNED[rel]
    body = ast.unparse(_Rename().visit(ast.parse(textwrap.dedent(region_code(text, regions[index])))))
    lines = [f"{line}    # reworded" if line.strip() and i % 2 else line for i, line in enumerate(body.splitlines())]
    return "def unrelated_helper(first, second):\n    '''Nothing to see.'''\n" + textwrap.indent("\n".join(lines), "    ") + "\n"


@pytest.fixture(scope="module")
def withheld_edition(tmp_path_factory):
    out = tmp_path_factory.mktemp("withheld")
    copy_tracked(ROOT, out, tracked_files(ROOT))
    for rel, text in edition_sources(SCANNED, list(assignment.EXERCISES)).items():
        (out / rel).write_text(text, encoding="utf-8")
    return out


def test_an_edition_of_every_exercise_has_no_code_of_any_answer_in_its_package(withheld_edition):
    leaks = scan_for_leaks(withheld_edition, SCANNED, list(assignment.EXERCISES))
    assert [leak for leak in leaks if not leak[0].startswith("tests/")] == []


@pytest.mark.parametrize("rel, index, exercise", REGIONS)
def test_a_renamed_reformatted_copy_of_every_region_is_found_anywhere(tmp_path, rel, index, exercise):
    code = disguised(rel, index)
    where = {"minivae/topics/planted_copy.py": code, "tutorials/99_planted.py": code,
             "tutorials/99_planted.ipynb": json.dumps({"cells": [{"cell_type": "code", "source": code.splitlines(True)}]}),
             "docs/planted.md": f"Some prose.\n\n```python\n{code}```\n"}
    for path, text in where.items():               # the rest of the edition: the test above
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text, encoding="utf-8")
    leaks = scan_for_leaks(tmp_path, SCANNED, list(assignment.EXERCISES))
    assert {leak[0] for leak in leaks if leak[2] == exercise} == set(where), code


def test_the_normal_form_ignores_names_constants_formatting_and_comments():
    a = "y = np.expm1(logvar) - logvar  # var - 1\nkl = 0.5 * (mu * mu + y).sum(axis=-1)\n"
    b = "t=np.expm1( s )-s\n\n# the KL\nout = 0.25*(m*m+t).sum(axis=1)\n"
    c = "t = np.exp(s) - s\nout = 0.25 * (m * t).sum(axis=1)\n"       # other code
    assert set(normal_forms(parse_code(a))) == set(normal_forms(parse_code(b))) != set()
    assert not set(normal_forms(parse_code(a))) & set(normal_forms(parse_code(c)))


def test_every_nodes_form_is_its_dump_and_its_size_counts_its_nodes():
    # the forms are built once per tree from the children's (not ast.dump per node); on the
    # package's own code each is ast.dump's text (3.13 leaves empty fields out unless asked),
    # so equal forms are equal trees, and each size is the node count of ast.walk
    every_field = {"show_empty": True} if sys.version_info >= (3, 13) else {}
    seen = set()
    for rel in ("minivae/assignment/leaks.py", "minivae/vae.py", "minivae/nn.py", "tests/test_nn.py"):
        statements = parse_code((ROOT / rel).read_text())
        table = _forms_and_sizes(statements)
        for node in (n for s in statements for n in ast.walk(s)):
            form, size = table[id(node)]
            assert form == ast.dump(node, annotate_fields=False, **every_field), rel
            assert size == sum(not isinstance(n, _CONTEXT) for n in ast.walk(node)), (rel, form)
            seen.add(form)
    assert len(seen) > 1000


def test_kl_per_dimension_is_the_exercises_kl_one_dimension_at_a_time():
    rng = np.random.default_rng(0)
    mu, logvar = rng.normal(size=(6, 4)) * 3, rng.normal(size=(6, 4)) * 4
    per = diagnostics.kl_per_dimension(mu, logvar)
    for d in range(4):               # bit for bit: the same function on one column
        np.testing.assert_array_equal(per[:, d], distributions.kl_standard_normal(mu[:, d:d + 1], logvar[:, d:d + 1])[0])


def test_an_edition_stub_reaches_the_modules_that_reuse_an_answer(withheld_edition):
    # diagnostics and wake-sleep call the exercises' functions, so in an edition they raise its stub
    import subprocess
    import sys
    code = ("import numpy as np\nfrom minivae.topics import diagnostics, wake_sleep\nfrom minivae.vae import VAE\n"
            "for f in (lambda: diagnostics.kl_per_dimension(np.zeros((2, 3)), np.zeros((2, 3))),\n"
            "          lambda: wake_sleep.wake_loss_and_grads(VAE(4, 2, hidden=(3,), seed=0), np.ones((2, 4)),"
            " np.zeros((1, 2, 2)))):\n"
            "    try:\n        f()\n    except NotImplementedError as e:\n        print('stub:', e)\n")
    out = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(withheld_edition)!r})\n" + code],
                         capture_output=True, text=True, cwd=withheld_edition, timeout=60)
    assert out.stdout.count("stub: Exercise") == 2, out.stdout + out.stderr
