"""Course assignments: a student edition with stubs, and an autograder built from the tests.

An instructor marks, in the solution source itself, the lines a student should
write.  Two comment lines per region, around lines of a function body below
its docstring::

    def square(x):
        '''x^2, elementwise.'''
        # BEGIN SOLUTION square
        y = x * x
        # END SOLUTION
        return y

The name after ``BEGIN SOLUTION`` is an exercise of :data:`EXERCISES`, the one
table that says, per exercise, which functions it covers, the hint a student
sees, the tests that grade it and its points.  An exercise may have several
regions (a forward and its backward).

``make_assignment`` copies the files git tracks and replaces each region of
the chosen exercises by a stub raising the exercise's hint, keeping the
signature, the docstring and the two markers; the regions of every other
exercise are withheld too (a stub saying so) unless named in ``provide``.  A
leak scan ends it: no line of a withheld answer may remain anywhere.

``grade`` scores named all-or-nothing checks per exercise: the submission's
functions run in a worker process (a sandbox where Linux allows it) on inputs
the grader chooses, and the grader's own process compares their outputs with
the reference's.  ``check`` gives a student the same checks locally, in a
second or two, without the reference (gradients against central differences).

One idea a module, each importing only the ones before it::

    exercises.py   the exercise table, its named checks, and the helpers that read it
    probes.py      what each check calls, on which inputs (NumPy only; the worker loads it too)
    selfchecks.py  the same checks without the reference, for a student (NumPy only; the worker's)
    regions.py     finding and checking the marked regions, rendering them replaced
    leaks.py       the leak scan of an edition
    edition.py     the student edition (make_assignment), its README and manifest
    isolation.py   who a worker runs as (a uid of its own) and what it could read (copies of the solution)
    launch.py      the worker process (_guard.py, _worker.py): its sandbox, limits, and the arrays it returns
    localcheck.py  a student's local feedback: the local checks (or the exercise's pytest tests)
    grader.py      the trusted grader, its report
    platform.py    settings files, Gradescope results and autograder, grading a class
    mutants.py     automatic mutants of the solution regions (sign, constant, operands, axis, a term)
    selftest.py    the grader checking its own checks: reference, stubs, misconception bank, mutants
    similarity.py  a cohort similarity report: pairs of submissions ranked by normalised regions

``minivae assignment make|check|grade|grade-all|autograder|selftest`` (minivae.cli.assignment)
are the commands; docs/assignments.md is the instructors' guide.  A student reads
only the edition's README and the stubs; no tutorial uses this folder.
"""
from minivae.assignment.exercises import EXERCISES, PACKAGE, AssignmentError, select, stub_message
from minivae.assignment.regions import check_coverage, find_regions, render, scan
from minivae.assignment.edition import (MANIFEST, copy_tree, edition_sources, find_source_root,
                                        make_assignment, read_manifest, reference_solution)
from minivae.assignment.launch import sandbox_status
from minivae.assignment.localcheck import check_locally, format_local, run_tests
from minivae.assignment.grader import compare, compose, format_report, grade, read_edition
from minivae.assignment import similarity
from minivae.assignment.platform import (apply_config, build_autograder, grade_all,
                                         gradescope_results, load_config)

__all__ = ["EXERCISES", "PACKAGE", "AssignmentError", "select", "stub_message",
           "find_regions", "scan", "check_coverage", "render",
           "MANIFEST", "copy_tree", "edition_sources", "find_source_root", "make_assignment",
           "read_manifest", "reference_solution", "sandbox_status", "check_locally", "format_local", "run_tests",
           "compare", "compose", "format_report", "grade", "read_edition",
           "apply_config", "build_autograder", "grade_all", "gradescope_results",
           "load_config"]
