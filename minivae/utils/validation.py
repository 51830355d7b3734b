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
* a yes/no setting (Nesterov momentum): :func:`check_flag`;
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


def check_flag(value, name):
    """Return ``value`` as a bool if it is True or False (Python's or NumPy's), else raise a TypeError.

    >>> check_flag(True, "nesterov")
    True
    >>> check_flag("yes", "nesterov")
    Traceback (most recent call last):
    TypeError: nesterov must be True or False, got 'yes' (str)
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    return bool(value)


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


# hints for a data set of the wrong dtype, by dtype kind
_FLOAT_HINTS = {"u": " (pixels 0-255? divide by 255: x / 255.0, or preprocessing.to_unit_interval)",
                "i": " (pixels 0-255? divide by 255: x / 255.0)",
                "b": " (binary images? x.astype(np.float32))",
                "f": " (x.astype(np.float32))"}


def check_float_data(x, name="x"):
    """Return ``x`` as an array of dtype float32 or float64, or raise a TypeError naming its dtype.

    >>> check_float_data(np.zeros((2, 3), dtype=np.uint8), "x_train")
    Traceback (most recent call last):
    ...
    TypeError: x_train must be a float32 or float64 array, got dtype uint8 (pixels 0-255? ...)
    """
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be a float32 or float64 array, got dtype {x.dtype}"
                        + _FLOAT_HINTS.get(x.dtype.kind, ""))
    return x


# A Gaussian likelihood with a learned variance starts at unit scale; data beyond this (pixels
# 0-255, raw prices) drives the first steps to losses of 1e7 and, in float32, to overflow,
# in float64 to an ELBO of -1e85 after a few epochs.  Refused before training, with advice.
GAUSSIAN_DATA_LIMIT = 100.0


def check_unit_scale(x, name="x", limit=GAUSSIAN_DATA_LIMIT):
    """Return the (finite) array ``x`` if every |x| <= ``limit``, else a ValueError with advice.

    The data of a Gaussian likelihood, which starts at unit scale (minivae.train checks it).

    >>> check_unit_scale(np.array([0.5, 255.0]), "x_train")
    Traceback (most recent call last):
    ...
    ValueError: x_train must be near unit scale (|x| <= 100), got values up to 255; ...
    """
    largest = float(np.abs(x).max()) if np.size(x) else 0.0
    if largest > limit:
        raise ValueError(f"{name} must be near unit scale (|x| <= {limit:g}), got values up to "
                         f"{largest:g}; standardise it, (x - x.mean(0)) / x.std(0) (pixels 0-255: "
                         "divide by 255)")
    return x


def check_attributes(value, name, attributes, contract="the model contract of minivae.train"):
    """Return ``value`` if it has every one of ``attributes``, else a TypeError naming those it lacks.

    >>> check_attributes(object(), "model", ("params", "loss_and_grads"))
    Traceback (most recent call last):
    ...
    TypeError: model must have params, loss_and_grads (the model contract of minivae.train), got ...
    """
    missing = [a for a in attributes if not hasattr(value, a)]
    if missing:
        raise TypeError(f"{name} must have {', '.join(attributes)} ({contract}), got "
                        f"{type(value).__name__!r} lacking {', '.join(missing)}")
    return value
