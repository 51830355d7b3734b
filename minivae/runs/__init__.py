"""Runs: what makes a long training run safe to stop, resume and trust.

What is inside::

    checkpoint.py         the .npz checkpoint format (no pickle): save, load, find the latest
    checkpoint_checks.py  every entry of a checkpoint checked against the model it describes
    run_control.py        Ctrl-C/SIGTERM between steps, divergence, and the checks before a resume

A student does not need to read these to follow the VAE: ``minivae.training.train``
uses them so that Algorithm 1 can stay short; no tutorial reads them.
docs/reliability.md lists their tests.
"""
