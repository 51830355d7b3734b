"""Input checks for every public entry point: one rule per kind of input, one message, everywhere.

The rule for errors: a value of the wrong *type* (a string where a number is
needed, an array of strings, something that is not a Generator) is a
``TypeError``; a value of the right type but the wrong *value* (a negative
count, NaN, an unknown name, an array of the wrong shape or range) is a
``ValueError``.  Every message names the argument and says what was expected
and what was given.

Kinds of input, each with its one check:

* counts (epochs, batch sizes, sample numbers, layer widths, seeds):
  :func:`check_count`.  ``3`` and ``3.0`` are accepted, ``2.5``, ``nan`` and
  ``True`` are not;
* real numbers with a range (learning rates, beta, thresholds, timeouts):
  :func:`check_number`;
* a name from a registry (likelihoods, activations, optimisers):
  :func:`check_choice`;
* random number generators: :func:`check_rng`;
* the floating-point dtype a user chooses once: :func:`check_float_dtype`;
* arrays of numbers: :func:`check_numeric_array` (type) and
  :func:`check_finite` (values).

This module imports nothing of the package: every layer may use it.
"""
import numbers

import numpy as np

FLOAT_DTYPES = ("float32", "float64")


def check_count(value, name, low=1):
    """Return ``value`` as an int, or raise an error that names ``name`` and what was given."""
    expected = "a positive integer" if low == 1 else f"an integer >= {low}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {expected}, got {value!r} ({type(value).__name__})")
    if not (float(value).is_integer() and value >= low):      # NaN and inf fail is_integer
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return int(value)


def check_number(value, name, low=None, high=None, low_inclusive=True, high_inclusive=True):
    """Return ``value`` as a finite Python float in the given range, or raise.

    ``low``/``high`` of None leave that side open.  A Python float never changes
    an array's dtype (a NumPy float64 scalar would turn float32 arrays into
    float64 ones under NEP 50), so callers get a plain float back.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    below = low is not None and (value < low if low_inclusive else value <= low)
    above = high is not None and (value > high if high_inclusive else value >= high)
    if not np.isfinite(value) or below or above:
        lo = "" if low is None else f"{'>=' if low_inclusive else '>'} {low:g}"
        hi = "" if high is None else f"{'<=' if high_inclusive else '<'} {high:g}"
        bounds = " and ".join(b for b in (lo, hi) if b)
        raise ValueError(f"{name} must be a finite number{' ' + bounds if bounds else ''}, "
                         f"got {value!r}")
    return value


def check_choice(value, name, choices):
    """Return ``value`` if it is one of ``choices`` (a registry's names), else raise a ValueError."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {sorted(choices)}, got {value!r} "
                        f"({type(value).__name__})")
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; expected one of {sorted(choices)}")
    return value


def check_rng(value, name="rng"):
    """Return ``rng`` if it is a numpy.random.Generator, else raise a TypeError saying how to make one."""
    if not isinstance(value, np.random.Generator):
        raise TypeError(f"{name} must be a numpy.random.Generator (np.random.default_rng(seed)), "
                        f"got {type(value).__name__}")
    return value


def check_float_dtype(value, name="dtype"):
    """Return ``dtype`` as np.dtype float32 or float64, or raise (TypeError if it is no dtype at all)."""
    try:
        parsed = np.dtype(value)
    except TypeError:
        raise TypeError(f"{name} must be float32 or float64, got {value!r}") from None
    if parsed.name not in FLOAT_DTYPES:
        raise ValueError(f"{name} must be float32 or float64, got {parsed.name}")
    return parsed


def check_numeric_array(x, name="x"):
    """Return ``x`` as an array of real numbers (bool, int or float), or raise a TypeError."""
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
    return x


def check_finite(x, name="x"):
    """Raise a ValueError if the array ``x`` holds NaN or inf; return it otherwise."""
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf")
    return x
