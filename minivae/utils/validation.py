"""Input checks for every public entry point: one rule per kind of input, one message, everywhere.

Every check takes the value first and its name second, returns the value
(converted where that is the point: an int, a float, an array) and raises
with one message template::

    {name} must be {expected}, got {given}

where ``given`` is the value's repr, or for an array a short description (its
shape, dtype or offending entry), never thousands of numbers.

The rule for errors: a value of the wrong *type* (a string where a number is
needed, an array of strings, something that is not a Generator) is a
``TypeError``; a value of the right type but the wrong *value* (a negative
count, NaN, an unknown name, an array of the wrong shape or range) is a
``ValueError``.

Kinds of input, each with its one check:

* counts (epochs, batch sizes, sample numbers, layer widths, seeds): :func:`check_count`;
  a sequence of them (layer widths, an image shape): :func:`check_counts`;
* real numbers with a range (learning rates, beta, thresholds, timeouts): :func:`check_number`;
* True or False: :func:`check_bool`;
* a name from a registry (likelihoods, activations, estimators): :func:`check_choice`;
* random number generators: :func:`check_rng`;
* the floating-point dtype a user chooses once: :func:`check_float_dtype`;
* arrays: :func:`check_numeric_array` (real numbers, not ragged), :func:`check_shape`,
  :func:`check_float_array` (an array changed in place), :func:`check_finite` and
  :func:`check_unit_interval` (values);
* dicts of named arrays (parameters, gradients): :func:`check_array_dict`, :func:`check_keys`;
* paths of files and folders: :func:`check_path`;
* functions given as arguments: :func:`check_callable`; text streams: :func:`check_stream`;
  an object of a given class (a model): :func:`check_type`, or with given attributes:
  :func:`check_attributes`;
* data sets: :func:`check_float_data` (dtype), :func:`check_unit_scale` (a Gaussian's data).

The model's own rules (the shape a VAE needs) are its methods, built on these.
This module imports nothing of the package: every layer may use it.
Its examples run as doctests (tests/test_validation.py).
"""
import numbers
import os

import numpy as np

FLOAT_DTYPES = ("float32", "float64")


def _error(kind, name, expected, given):
    """The one message: ``{name} must be {expected}, got {given}`` (given already formatted)."""
    return kind(f"{name} must be {expected}, got {given}")


def _describe(x):
    """A short account of an array for a message: its shape and dtype, not its values."""
    return f"an array of shape {x.shape} and dtype {x.dtype}"


def check_count(value, name, low=1):
    """Return ``value`` as an int >= low; ``3`` and ``3.0`` pass, ``2.5``, NaN and True do not.

    >>> check_count(3.0, "epochs")
    3
    >>> check_count(0, "epochs")
    Traceback (most recent call last):
    ValueError: epochs must be a positive integer, got 0
    """
    expected = "a positive integer" if low == 1 else f"an integer >= {low}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _error(TypeError, name, expected, f"{value!r} ({type(value).__name__})")
    if not (float(value).is_integer() and value >= low):      # NaN and inf fail is_integer
        raise _error(ValueError, name, expected, repr(value))
    return int(value)


def check_counts(value, name, low=1, length=None):
    """Return a sequence of counts (layer widths, an image shape) as a tuple of ints.

    >>> check_counts([400, 200], "hidden")
    (400, 200)
    >>> check_counts(400, "hidden")
    Traceback (most recent call last):
    TypeError: hidden must be a sequence of integers such as (400,), got 400
    """
    expected = (f"a sequence of {length} integers" if length is not None
                else "a sequence of integers such as (400,)")
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
        raise _error(TypeError, name, expected, repr(value))
    value = tuple(value)
    if length is not None and len(value) != length:
        raise _error(ValueError, name, expected, repr(value))
    return tuple(check_count(v, f"{name}[{i}]", low) for i, v in enumerate(value))


def check_number(value, name, low=None, high=None, low_inclusive=True, high_inclusive=True):
    """Return ``value`` as a finite Python float in the given range (None leaves a side open).

    A Python float never changes an array's dtype (a NumPy float64 scalar would
    turn float32 arrays into float64 ones under NEP 50), so callers get a plain float.

    >>> check_number(1e-3, "lr", low=0, low_inclusive=False)
    0.001
    >>> check_number(float("nan"), "beta", low=0)
    Traceback (most recent call last):
    ValueError: beta must be a finite number >= 0, got nan
    """
    lo = "" if low is None else f"{'>=' if low_inclusive else '>'} {low:g}"
    hi = "" if high is None else f"{'<=' if high_inclusive else '<'} {high:g}"
    bounds = " and ".join(b for b in (lo, hi) if b)
    expected = "a finite number" + (" " + bounds if bounds else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _error(TypeError, name, "a real number", f"{value!r} ({type(value).__name__})")
    value = float(value)
    below = low is not None and (value < low if low_inclusive else value <= low)
    above = high is not None and (value > high if high_inclusive else value >= high)
    if not np.isfinite(value) or below or above:
        raise _error(ValueError, name, expected, repr(value))
    return value


def check_bool(value, name):
    """Return ``value`` as a Python bool; only True and False (NumPy's too) pass, not 'yes' or 1.

    >>> check_bool(np.True_, "return_se")
    True
    >>> check_bool("yes", "return_se")
    Traceback (most recent call last):
    TypeError: return_se must be True or False, got 'yes' (str)
    """
    if not isinstance(value, (bool, np.bool_)):
        raise _error(TypeError, name, "True or False", f"{value!r} ({type(value).__name__})")
    return bool(value)


def check_choice(value, name, choices):
    """Return ``value`` if it is one of ``choices`` (a registry's names), else raise.

    >>> check_choice("A", "estimator", ("B", "A", "iwae"))
    'A'
    >>> check_choice("mc", "estimator", ("B", "A", "iwae"))
    Traceback (most recent call last):
    ValueError: estimator must be one of ['A', 'B', 'iwae'], got 'mc'
    """
    expected = f"one of {sorted(choices)}"
    if not isinstance(value, str):
        raise _error(TypeError, name, expected, f"{value!r} ({type(value).__name__})")
    if value not in choices:
        raise _error(ValueError, name, expected, repr(value))
    return value


def check_rng(value, name="rng"):
    """Return ``value`` if it is a numpy.random.Generator, else raise a TypeError saying how to make one.

    >>> check_rng(42, "rng")
    Traceback (most recent call last):
    TypeError: rng must be a numpy.random.Generator (np.random.default_rng(seed)), got 42 (int)
    """
    if not isinstance(value, np.random.Generator):
        raise _error(TypeError, name, "a numpy.random.Generator (np.random.default_rng(seed))",
                     f"{value!r} ({type(value).__name__})"[:200])
    return value


def check_float_dtype(value, name="dtype"):
    """Return ``value`` as np.dtype float32 or float64 (TypeError if it is no dtype at all).

    >>> check_float_dtype("float32")
    dtype('float32')
    >>> check_float_dtype("int8")
    Traceback (most recent call last):
    ValueError: dtype must be float32 or float64, got 'int8'
    """
    try:
        parsed = np.dtype(value)
    except TypeError:
        raise _error(TypeError, name, "float32 or float64", repr(value)) from None
    if parsed.name not in FLOAT_DTYPES:
        raise _error(ValueError, name, "float32 or float64", repr(parsed.name))
    return parsed


def check_numeric_array(x, name="x"):
    """Return ``x`` as an array of real numbers (bool, int or float); a ragged list is refused.

    >>> check_numeric_array([[0, 1], [1, 0]], "x").shape
    (2, 2)
    >>> check_numeric_array([[0, 1], [1]], "x")
    Traceback (most recent call last):
    ValueError: x must be an array of real numbers (rows of equal length), got a ragged list
    >>> check_numeric_array(None, "x")
    Traceback (most recent call last):
    TypeError: x must be an array of real numbers, got None (NoneType)
    """
    if x is None or isinstance(x, (str, bytes, dict, set)):
        raise _error(TypeError, name, "an array of real numbers", f"{x!r} ({type(x).__name__})"[:200])
    try:
        x = np.asarray(x)
    except ValueError:         # NumPy: "setting an array element with a sequence ... inhomogeneous"
        raise _error(ValueError, name, "an array of real numbers (rows of equal length)",
                     "a ragged list") from None
    if x.dtype.kind not in "biuf":
        raise _error(TypeError, name, "an array of real numbers", _describe(x))
    return x


def check_shape(x, name, shape):
    """Raise unless the array ``x`` has ``shape``; return x.

    Each entry of ``shape`` is a size, or a letter (any size >= 1, e.g. "B"),
    or None (any size, 0 included).

    >>> check_shape(np.zeros((3, 4)), "x", ("B", 4)).shape
    (3, 4)
    >>> check_shape(np.zeros((0, 4)), "x", ("B", 4))
    Traceback (most recent call last):
    ValueError: x must be an array of shape (B, 4) with B >= 1, got an array of shape (0, 4)
    """
    def fits(n, want):
        return want is None or (n >= 1 if isinstance(want, str) else n == want)

    if x.ndim != len(shape) or not all(fits(n, want) for n, want in zip(x.shape, shape)):
        letters = [want for want in shape if isinstance(want, str)]
        expected = "an array of shape (" + ", ".join(
            "any" if want is None else str(want) for want in shape) + ("," if len(shape) == 1 else "") + ")"
        if letters:
            expected += f" with {', '.join(letters)} >= 1"
        raise _error(ValueError, name, expected, f"an array of shape {x.shape}")
    return x


def check_float_array(x, name):
    """Return ``x`` if it is a NumPy array of floats (one an algorithm changes in place).

    An integer array would round every change to a whole number: a gradient
    check stepping it by h = 1e-5 would silently compute nonsense.

    >>> check_float_array(np.array([1, 2]), "params['W']")
    Traceback (most recent call last):
    TypeError: params['W'] must be a NumPy array of floats, got an array of shape (2,) and dtype int64
    """
    if not isinstance(x, np.ndarray):
        raise _error(TypeError, name, "a NumPy array of floats", f"{type(x).__name__}")
    if x.dtype.kind != "f":
        raise _error(TypeError, name, "a NumPy array of floats", _describe(x))
    return x


def check_finite(x, name="x"):
    """Raise a ValueError if the array ``x`` holds NaN or inf, naming the first such entry; return x.

    >>> check_finite(np.array([0.5, np.nan]), "x")
    Traceback (most recent call last):
    ValueError: x must be finite (no NaN or inf), got nan at index (1,)
    """
    if not np.isfinite(x).all():
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(x))[0])
        raise _error(ValueError, name, "finite (no NaN or inf)", f"{float(x[where])!r} at index {where}")
    return x


def check_unit_interval(x, name="x", hint=""):
    """Raise a ValueError unless every value of the array ``x`` is in [0, 1] (NaN fails); return x.

    >>> check_unit_interval(np.array([0.0, 255.0]), "x", " (pixels 0-255? divide by 255)")
    Traceback (most recent call last):
    ValueError: x must be in [0, 1], got values from 0 to 255 (pixels 0-255? divide by 255)
    """
    # written so that NaN fails too: every comparison with NaN is False
    if x.size and not (x.min() >= 0 and x.max() <= 1):
        raise _error(ValueError, name, "in [0, 1]",
                     f"values from {x.min():g} to {x.max():g}{hint}")
    return x


def check_array_dict(value, name):
    """Return ``value`` if it is a dict of named float arrays (``params["encoder.0.W"]``), else raise.

    >>> check_array_dict([np.zeros(2)], "params")
    Traceback (most recent call last):
    TypeError: params must be a dict of named NumPy float arrays, got list
    """
    if not isinstance(value, dict):
        raise _error(TypeError, name, "a dict of named NumPy float arrays", type(value).__name__)
    for key, array in value.items():
        check_float_array(array, f"{name}[{key!r}]")
    return value


def check_keys(value, name, keys, extra=False):
    """Return ``value`` if it is a dict with exactly ``keys`` (gradients keyed like params), or
    with at least ``keys`` if ``extra`` is True.

    >>> check_keys({"W": 1}, "grads", ["W", "b"])
    Traceback (most recent call last):
    ValueError: grads must be a dict with the keys ['W', 'b'], got one missing ['b'] and with no others
    """
    expected = f"a dict with {'at least ' if extra else ''}the keys {sorted(keys)}"
    if not isinstance(value, dict):
        raise _error(TypeError, name, expected, type(value).__name__)
    missing, others = sorted(set(keys) - value.keys()), sorted(value.keys() - set(keys))
    if missing or (others and not extra):
        raise _error(ValueError, name, expected, f"one missing {missing} and with "
                     + (f"the extra keys {others}" if others else "no others"))
    return value


def check_type(value, name, types, expected):
    """Return ``value`` if it is an instance of ``types``; ``expected`` names them for the message.

    >>> check_type([1], "model", dict, "a minivae.VAE")
    Traceback (most recent call last):
    TypeError: model must be a minivae.VAE, got list
    """
    if not isinstance(value, types):
        raise _error(TypeError, name, expected, type(value).__name__)
    return value


def check_path(value, name):
    """Return ``value`` as a str path (``~`` expanded) if it is a str, bytes or os.PathLike, else raise.

    >>> check_path(3, "root")
    Traceback (most recent call last):
    TypeError: root must be a path (a str or os.PathLike), got 3 (int)
    """
    if not isinstance(value, (str, bytes, os.PathLike)):
        raise _error(TypeError, name, "a path (a str or os.PathLike)", f"{value!r} ({type(value).__name__})"[:200])
    return os.path.expanduser(os.fsdecode(value))


def check_callable(value, name):
    """Return ``value`` if it can be called (a function), else raise a TypeError.

    >>> check_callable(3.0, "f")
    Traceback (most recent call last):
    TypeError: f must be a function, got 3.0 (float)
    """
    if not callable(value):
        raise _error(TypeError, name, "a function", f"{value!r} ({type(value).__name__})"[:200])
    return value


def check_stream(value, name="stream"):
    """Return ``value`` if it is None or a text stream (has ``write`` and ``flush``), else raise.

    >>> import sys
    >>> check_stream(sys.stdout) is sys.stdout
    True
    >>> check_stream("log.txt")
    Traceback (most recent call last):
    TypeError: stream must be None or a text stream such as sys.stderr (an open file), got 'log.txt' (str)
    """
    if value is not None and not (callable(getattr(value, "write", None))
                                  and callable(getattr(value, "flush", None))):
        raise _error(TypeError, name, "None or a text stream such as sys.stderr (an open file)",
                     f"{value!r} ({type(value).__name__})"[:200])
    return value


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
    if x is None or isinstance(x, (list, tuple)):        # None, or a ragged list, to the real-number rule
        x = check_numeric_array(x, name)
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        raise _error(TypeError, name, "a float32 or float64 array",
                     f"dtype {x.dtype}{_FLOAT_HINTS.get(x.dtype.kind, '')}")
    return x


# A Gaussian likelihood with a learned variance starts at unit scale; data beyond this (pixels
# 0-255, raw prices) drives the first steps to losses of 1e7 and, in float32, to overflow,
# in float64 to an ELBO of -1e85 after a few epochs.  Refused before training, with advice.
GAUSSIAN_DATA_LIMIT = 100.0


def check_unit_scale(x, name="x", limit=GAUSSIAN_DATA_LIMIT):
    """Return the (finite) array ``x`` if every ``|x| <= limit``, else a ValueError with advice.

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
    """Return ``value`` if it has every one of ``attributes`` (duck typing), else a TypeError.

    >>> check_attributes("vae", "model", ("check_data", "elbo"), "a minivae.VAE")
    Traceback (most recent call last):
    TypeError: model must be an object with check_data, elbo (a minivae.VAE), got 'str' lacking check_data, elbo
    """
    missing = [a for a in attributes if not hasattr(value, a)]
    if missing:
        raise _error(TypeError, name, f"an object with {', '.join(attributes)} ({contract})",
                     f"{type(value).__name__!r} lacking {', '.join(missing)}")
    return value
