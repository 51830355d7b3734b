"""Benchmarks: what a training step and an evaluation cost on this machine, and why.

What is inside::

    step.py        ``minivae bench``: a training step split into its phases, the GEMM-only bound, memory
    evaluation.py  ``minivae bench --eval``: the importance-sampled log-likelihood, timed

A student does not need these, and no tutorial uses them; docs/performance.md
explains the numbers they print.
"""
