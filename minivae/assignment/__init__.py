"""Course assignments: a student edition with stubs, and an autograder built from the tests.

An instructor marks, in the solution source itself, the lines a student should
write.  Two comment lines per region, around lines of a function body below
its docstring::

    def kl_standard_normal(mu, logvar):
        '''KL(N(mu, diag(exp(logvar))) || N(0, I)) ...'''
        # BEGIN SOLUTION analytic_kl
        var_minus_1 = np.expm1(logvar)                # exp(logvar) - 1
        kl = 0.5 * (mu * mu + (var_minus_1 - logvar)).sum(axis=-1)
        cache = (mu, var_minus_1)
        # END SOLUTION
        return kl, cache

The name after ``BEGIN SOLUTION`` is an exercise of :data:`EXERCISES`, the one
table that says, per exercise, which functions it covers, the hint a student
sees, the tests that grade it and its points.  An exercise may have several
regions (a forward and its backward).

``make_assignment`` copies the source tree and replaces each region of the
chosen exercises by a stub, keeping the signature, the docstring and the two
markers (they show the student where to write, and let the grader find the
student's lines again); the regions of the other exercises keep their solution
and lose their markers::

        # BEGIN SOLUTION analytic_kl
        raise NotImplementedError("Exercise analytic_kl: ... (see docs/derivations.md#analytic-kl)")
        # END SOLUTION

``grade`` runs the tests of each exercise with pytest in a subprocess, with the
graded tree first on PYTHONPATH, and scores them: isolated (given the solution
tree as ``reference``, each exercise is tested on the reference with only that
exercise's regions from the submission) or the whole tree as it is.

One idea a module, each importing only the ones before it:

    exercises.py   the exercise table and the helpers that read it
    regions.py     finding and checking the marked regions, rendering them replaced
    edition.py     the student edition (make_assignment), its manifest, the solution checkout
    grader.py      grading: composing, running pytest (plugin: _grading_plugin.py), scoring

``minivae assignment make|grade`` (minivae.cli) are the commands;
docs/assignments.md is the instructors' guide.
"""
from minivae.assignment.exercises import EXERCISES, PACKAGE, AssignmentError, select, stub_message
from minivae.assignment.regions import check_coverage, find_regions, render, scan
from minivae.assignment.edition import (MANIFEST, copy_tree, find_source_root, make_assignment,
                                        read_manifest, reference_solution)
from minivae.assignment.grader import (check_tree, compose, composed_sources, format_report, grade,
                                       run_tests)

__all__ = ["EXERCISES", "PACKAGE", "AssignmentError", "select", "stub_message",
           "find_regions", "scan", "check_coverage", "render",
           "MANIFEST", "copy_tree", "find_source_root", "make_assignment", "read_manifest",
           "reference_solution",
           "check_tree", "compose", "composed_sources", "run_tests", "grade", "format_report"]
