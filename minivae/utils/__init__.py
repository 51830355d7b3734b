"""Utilities every layer may use: validation, progress, BLAS threads, blocks, threads, memory.

What is inside::

    validation.py  the one validation rule: check_count(value, name), check_rng(value, name), ...
    progress.py    the one progress reporter (a bar with an ETA) for anything that takes seconds
    blas.py        the BLAS thread count and kernel; one-thread products for parallel workers
    blocks.py      elementwise formulas block by block over cache-sized slices; the subnormal flush
    parallel.py    an ordered map over threads (the evaluation's forward passes), serial under a debugger
    memory.py      the memory a model, a batch or a sample would need, checked before allocating

A student does not need to read these: they keep the study modules' entry points
honest (a clear message instead of a NumPy traceback) and say nothing about the VAE.
No tutorial uses them directly.  This folder imports nothing else of minivae.
"""
