"""pytest plugin of `minivae assignment grade` (copied by minivae.assignment.grader).

Not imported by minivae: the grader copies this file into the scratch folder of
each run, next to the JUnit file, and pytest loads it with ``-p``; outside such a
run it fails to import (it needs MINIVAE_GRADING_SCRATCH).  It runs only the
tests the grader asked for (the node ids in tests.txt in its scratch folder; an
id without [...] keeps all its parametrisations).  A failing property test (a
stub fails on every example) is reported at its first failing example instead of
after Hypothesis shrinks and explains it (about 10 s per test), Hypothesis writes
no patch file for it (the patch writer parses the test file, about 1 s per run),
and nothing is stored in the graded tree (Hypothesis's and pytest-benchmark's
folders go to the scratch folder).  Passing tests run exactly as under the
suite's own profile.
"""
import os
import sys

SCRATCH = os.environ["MINIVAE_GRADING_SCRATCH"]     # the grader's folder for this run

# Hypothesis's pytest plugin skips its "add @example" patch when this import fails
sys.modules["hypothesis.extra._patching"] = None

try:    # Hypothesis's files go to the grader's scratch folder, not into the graded tree
    from hypothesis.configuration import set_hypothesis_home_dir
    set_hypothesis_home_dir(os.path.join(SCRATCH, "hypothesis"))
except ImportError:
    pass


def pytest_configure(config):
    if hasattr(config.option, "benchmark_storage"):      # pytest-benchmark's default is ./.benchmarks
        config.option.benchmark_storage = "file://" + os.path.join(SCRATCH, "benchmarks")


def pytest_sessionstart(session):
    # imported here, not at the top: Hypothesis is optional (a tree may not use it)
    try:
        from hypothesis import Phase, settings
    except ImportError:
        return
    # after the conftests loaded their profile, before any test module is imported
    settings.register_profile("minivae-grading", parent=settings.default, database=None,
                              phases=[Phase.explicit, Phase.reuse, Phase.generate])
    settings.load_profile("minivae-grading")


def _named(nodeid, entry):
    # minivae.assignment.grader._matches; not imported: the graded tree's minivae may have no
    # assignment, and this file imports nothing of minivae
    return nodeid == entry or nodeid.startswith(entry + "[") or nodeid.startswith(entry + "::")


def pytest_collection_modifyitems(config, items):
    with open(os.path.join(SCRATCH, "tests.txt"), encoding="utf-8") as f:
        entries = [line for line in f.read().splitlines() if line]
    named = [any(_named(item.nodeid, e) for e in entries) for item in items]
    if not all(named):
        config.hook.pytest_deselected(items=[i for i, n in zip(items, named) if not n])
        items[:] = [i for i, n in zip(items, named) if n]
