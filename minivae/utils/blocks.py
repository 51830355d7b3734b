"""Elementwise formulas over cache-sized blocks, and the flush of subnormal buffer entries.

Speed machinery for minivae.optim, kept out of the formulas a student reads
(docs/performance.md, "The optimiser").

* :func:`blocks` cuts equally shaped arrays into matching flat slices (views), so
  a formula of several NumPy passes runs over one slice at a time: when the
  slices of every operand fit in the CPU's cache together, each pass after the
  first reads from cache instead of from memory.  The results are the same
  numbers as over the whole arrays (every operation is elementwise).
* :func:`flush_subnormals` sets entries between 0 and the smallest normal float
  to 0, as a CPU's flush-to-zero mode would (NumPy cannot switch that mode on).
"""
import numpy as np

# elements per block; None runs every formula over whole arrays (docs/performance.md)
BLOCK_ELEMENTS = None


def blocks(*arrays, size=None):
    """Yield tuples of matching slices of ``arrays`` (same shape), ``size`` elements at a time.

    ``size`` defaults to BLOCK_ELEMENTS.  The slices are views: writing into one
    writes into its array.  Arrays that are not all C-contiguous, or a size of
    None, give one tuple of the whole arrays.
    """
    size = BLOCK_ELEMENTS if size is None else size
    n = arrays[0].size
    if size is None or n <= size or not all(a.flags.c_contiguous for a in arrays):
        yield arrays
        return
    flat = [a.reshape(-1) for a in arrays]
    for start in range(0, n, size):
        yield tuple(a[start:start + size] for a in flat)


def flush_subnormals(*arrays):
    """Set every subnormal entry (``0 < |x| < finfo.tiny``) of ``arrays`` to 0, in place.

    Each array is multiplied by ``(|x| >= tiny)`` as 1.0 or 0.0, so a normal entry is
    unchanged bit for bit.  Works block by block: the masks stay cache-sized.
    """
    for array in arrays:
        tiny = np.finfo(array.dtype).tiny
        for (block,) in blocks(array, size=2 ** 16):
            np.multiply(block, np.abs(block) >= tiny, out=block)
