"""Elementwise formulas over cache-sized blocks, the block size measured, and the flush of
subnormal buffer entries.

Speed machinery for minivae.optim, kept out of the formulas a student reads
(docs/performance.md, "The optimiser").

* :func:`blocks` cuts equally shaped arrays into matching flat slices (views), so
  a formula of several NumPy passes runs over one slice at a time: when the
  slices of every operand fit in the CPU's cache together, each pass after the
  first reads from cache instead of from memory.  The results are the same
  numbers as over the whole arrays (every operation is elementwise).
* :class:`BlockSizes` picks the block size an optimiser uses: the fastest of
  :data:`CANDIDATES`, timed over the optimiser's first steps, because which one
  is fastest depends on the CPU's caches (whole arrays on one machine, 64k-element
  blocks on another).  Since every size gives the same numbers, the choice
  changes how long a step takes and nothing else.
* :func:`flush_subnormals` sets entries between 0 and the smallest normal float
  to 0, as a CPU's flush-to-zero mode would (NumPy cannot switch that mode on).
"""
import numpy as np

# elements per block: MEASURE lets each optimiser time CANDIDATES and keep the fastest;
# an int fixes the size; None runs every formula over whole arrays
MEASURE = "measure"
BLOCK_ELEMENTS = MEASURE
# the sizes tried (None: whole arrays); an array of at most 2**15 elements is never cut
CANDIDATES = (None, 2 ** 15, 2 ** 16, 2 ** 17)
SKIPPED_STEPS = 2        # the first steps run over whole arrays, untimed (cold caches)
ROUNDS = 5               # each candidate is timed this many times, in turn
# every FLUSH_EVERY steps, an optimiser sets its subnormal buffer entries to 0
FLUSH_EVERY = 50


def blocks(*arrays, size):
    """Yield tuples of matching slices of ``arrays`` (same shape), ``size`` elements at a time.

    The slices are views: writing into one writes into its array.  A size of
    None, arrays of at most ``size`` elements, or arrays that are not all
    C-contiguous give one tuple of the whole arrays.
    """
    n = arrays[0].size
    if size is None or n <= size or not all(a.flags.c_contiguous for a in arrays):
        yield arrays
        return
    flat = [a.reshape(-1) for a in arrays]
    for start in range(0, n, size):
        yield tuple(a[start:start + size] for a in flat)


class BlockSizes:
    """The block size of each step of one optimiser: BLOCK_ELEMENTS, or measured.

    With ``BLOCK_ELEMENTS == MEASURE``: the first SKIPPED_STEPS steps use whole
    arrays; the next ``ROUNDS * len(CANDIDATES)`` steps take the candidates in
    turn (so a change of the machine's load falls on all of them alike), each
    step's seconds go to ``record``; then the candidate with the smallest median
    is ``chosen`` and used from there on.

    ``seconds``: candidate -> the seconds recorded for it; ``chosen``: the size
    kept, or MEASURE while still measuring.
    """

    def __init__(self):
        self.steps = 0
        self.seconds = {size: [] for size in CANDIDATES}
        self.chosen = MEASURE

    def next_size(self):
        """The block size for the next step."""
        if BLOCK_ELEMENTS != MEASURE:
            return BLOCK_ELEMENTS
        if self.chosen != MEASURE:
            return self.chosen
        turn = self.steps - SKIPPED_STEPS
        return None if turn < 0 else CANDIDATES[turn % len(CANDIDATES)]

    def record(self, size, seconds):
        """Note that a step with block size ``size`` took ``seconds``; choose once all are timed."""
        self.steps += 1
        if BLOCK_ELEMENTS != MEASURE or self.chosen != MEASURE or self.steps <= SKIPPED_STEPS:
            return
        self.seconds[size].append(seconds)
        if all(len(times) >= ROUNDS for times in self.seconds.values()):
            self.chosen = min(CANDIDATES, key=lambda c: np.median(self.seconds[c]))


def flush_subnormals(*arrays):
    """Set every subnormal entry (``0 < |x| < finfo.tiny``) of ``arrays`` to 0, in place.

    Each array is multiplied by ``(|x| >= tiny)`` as 1.0 or 0.0, so a normal entry is
    unchanged bit for bit.  Works block by block: the masks stay cache-sized.
    """
    for array in arrays:
        tiny = np.finfo(array.dtype).tiny
        for (block,) in blocks(array, size=2 ** 16):
            np.multiply(block, np.abs(block) >= tiny, out=block)
