"""NumPy's BLAS: how many threads it uses, setting that count, and its kernel.

NumPy does not report its BLAS thread count (threadpoolctl does, but it is not
a dependency), so on Linux the OpenBLAS that NumPy loaded is found in
/proc/self/maps and asked directly, through ctypes.  Where that fails (another
BLAS, another OS) the functions say so: None, or a ValueError from
:func:`set_blas_threads`.  This module imports only the validation rules.
"""
import contextlib
import ctypes
import re

from minivae.utils.validation import check_count


def _openblas_function(name):
    """``openblas_<name>`` of the OpenBLAS that NumPy loaded into this process, or None.

    SciPy-OpenBLAS builds prefix and suffix the symbol names
    (``scipy_openblas_get_num_threads64_``).
    """
    try:
        with open("/proc/self/maps") as f:
            paths = sorted(set(re.findall(r"(/\S*openblas\S*\.so\S*)", f.read())))
    except OSError:
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for symbol in (f"openblas_{name}", f"scipy_openblas_{name}64_", f"scipy_openblas_{name}"):
            function = getattr(lib, symbol, None)
            if function is not None:
                return function
    return None


def blas_threads():
    """The number of threads NumPy's BLAS uses for a matrix product, or None if unknown."""
    get = _openblas_function("get_num_threads")
    return None if get is None else int(get())


def set_blas_threads(n):
    """Make NumPy's OpenBLAS use n threads; ValueError if this NumPy's BLAS cannot be reached."""
    n = check_count(n, "threads")
    set_threads = _openblas_function("set_num_threads")
    if set_threads is None:
        raise ValueError("cannot set the BLAS thread count of this NumPy from Python; set "
                         f"OPENBLAS_NUM_THREADS={n} (or OMP_NUM_THREADS, MKL_NUM_THREADS) "
                         "in the environment instead")
    set_threads(int(n))


def blas_kernel():
    """The kernel OpenBLAS chose for this CPU (e.g. "Zen", "SkylakeX", "Haswell"), or None."""
    get = _openblas_function("get_corename")
    if get is None:
        return None
    get.restype = ctypes.c_char_p
    return get().decode()


@contextlib.contextmanager
def one_blas_thread():
    """Run NumPy's BLAS on one thread inside the block; yield the thread count it had.

    The count is restored on leaving.  Yields 1, and changes nothing, when the
    count cannot be read.  minivae.evaluate uses it to run that many chunks of
    samples side by side, each with its own one-thread products (the count is
    process-wide: other threads' products run on one thread meanwhile).
    """
    threads = blas_threads()
    if threads is None or threads == 1:
        yield 1
        return
    set_blas_threads(1)
    try:
        yield threads
    finally:
        set_blas_threads(threads)
