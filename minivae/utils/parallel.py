"""An ordered map over threads, for the work around a student's code, never inside it.

minivae.evaluate runs the VAE's forward pass over chunks of samples on as many
threads as BLAS had (each with one-thread products, :func:`minivae.utils.blas.one_blas_thread`),
so the elementwise work runs on every core too (docs/performance.md, "Evaluation").
The results come back to the caller's thread in order, and what the caller does with
them (the importance-sampling sums an exercise asks for) runs there.  With one
worker, or while a debugger traces the program, no thread is started: everything
runs in the caller's thread, where a breakpoint stops as a student expects.
"""
import collections
import contextlib
import sys
from concurrent.futures import ThreadPoolExecutor


@contextlib.contextmanager
def thread_pool(workers):
    """Yield a pool of ``workers`` threads, or None (no thread: run in the caller's) when
    ``workers`` is 1 or a debugger is tracing (``sys.gettrace()``)."""
    if workers <= 1 or sys.gettrace() is not None:
        yield None
        return
    with ThreadPoolExecutor(workers) as pool:
        yield pool


def map_ahead(pool, function, items, ahead):
    """Yield ``function(item)`` for each item, in order.

    With a pool, at most ``ahead`` items are submitted and not yet returned: the items
    (chunks of noise, say) are drawn as the work goes, so memory stays bounded however
    many there are.  With ``pool=None`` each is computed in the caller's thread when
    asked for.
    """
    if pool is None:
        for item in items:
            yield function(item)
        return
    pending = collections.deque()
    for item in items:
        pending.append(pool.submit(function, item))
        if len(pending) >= ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
