"""Input checks shared by the public entry points: one rule, one message, everywhere.

Counts (epochs, batch sizes, sample numbers, layer widths, seeds, ...) are
whole numbers: ``3`` and ``3.0`` are accepted, ``2.5``, ``nan`` and ``True``
are not.  A value that is not a number at all is a ``TypeError``; a number
that is not a whole number >= the bound is a ``ValueError``.
"""
import numbers


def check_count(name, value, low=1):
    """Return ``value`` as an int, or raise an error that names ``name`` and what was given."""
    expected = "a positive integer" if low == 1 else f"an integer >= {low}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {expected}, got {value!r} ({type(value).__name__})")
    if not (float(value).is_integer() and value >= low):      # NaN and inf fail is_integer
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return int(value)
