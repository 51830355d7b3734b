"""From bytes to the binary images the Bernoulli likelihood needs: grey levels, then binarisation.

Top to bottom:

1. ``to_unit_interval``: bytes 0-255 -> grey levels in [0, 1] (float32);
2. ``bernoulli_binarize``: one random draw per pixel, P(x_j = 1) = x_j;
3. ``threshold_binarize``: 1 where x_j > threshold, without randomness;
4. ``fixed_binarization``: the one static binarisation of a test set that a
   run with a given seed reports its ELBOs on.

Binarisation.  The Bernoulli likelihood ::

    log p(x|z) = sum_j [x_j log lambda_j + (1 - x_j) log(1 - lambda_j)]

is a proper log-probability only for binary x.  ``bernoulli_binarize`` turns
grey levels into binary images by one draw per pixel with P(x_j = 1) equal to
the grey level.  Called afresh for every minibatch, as ``minivae.train``
does, this is *dynamic* binarisation: the model never sees the same binary
image twice.  Called once with a fixed Generator and kept, it is *static*
binarisation (as in Salakhutdinov & Murray, 2008): one fixed binary data set.
ELBOs measured under the two are not comparable with each other; a test
set is binarised once (static, :func:`fixed_binarization`) so that its ELBO
is comparable between epochs.

Input rules (minivae.utils.validation): an array of the wrong dtype (grey levels given
as bytes, bytes given as floats) is a ``TypeError``; values outside [0, 1] or
NaN are a ``ValueError``.
"""
import numpy as np

from minivae.utils.validation import (check_count, check_number, check_numeric_array, check_rng,
                                      check_unit_interval)


def to_unit_interval(x_uint8):
    """Grey levels in [0, 1] from bytes: x / 255, as float32.

    Only uint8 is accepted: dividing data that is already in [0, 1] by 255
    again would silently give an almost black data set.

    Parameters
    ----------
    x_uint8 : uint8 ndarray, any shape
        Pixel values 0-255.

    Returns
    -------
    ndarray, float32, shape of x_uint8
        Grey levels k / 255.

    Raises
    ------
    TypeError
        ``x_uint8`` is not a uint8 array.
    """
    x_uint8 = check_numeric_array(x_uint8, "x_uint8")
    if x_uint8.dtype != np.uint8:
        raise TypeError(f"x_uint8 must be a uint8 array (pixel values 0-255), got dtype "
                        f"{x_uint8.dtype}")
    return x_uint8.astype(np.float32) / np.float32(255)


def _check_unit_interval(x, values=True):
    """x as an array: TypeError unless it is a float array; with values=True, ValueError unless in [0, 1]."""
    hint = " (for uint8 pixels use to_unit_interval first)"
    x = check_numeric_array(x, "x")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"x must be a float array of grey levels in [0, 1], got dtype {x.dtype}{hint}")
    return check_unit_interval(x, "x", hint) if values else x


def _check_out(out, shape):
    """The buffer bernoulli_binarize writes into: a float32 ndarray (TypeError), writable,
    C-contiguous and of ``shape`` (ValueError)."""
    if not (isinstance(out, np.ndarray) and out.dtype == np.float32):
        raise TypeError(f"out must be a float32 array of shape {shape}, got "
                        f"{getattr(out, 'dtype', type(out).__name__)}")
    if not (out.shape == shape and out.flags.c_contiguous and out.flags.writeable):
        raise ValueError(f"out must be a writable, C-contiguous float32 array of shape {shape}, "
                         f"got shape {out.shape}"
                         + ("" if out.flags.c_contiguous else ", not C-contiguous")
                         + ("" if out.flags.writeable else ", read-only"))
    return out


def bernoulli_binarize(x, rng, out=None, check=True):
    """Binary images drawn pixel by pixel: x_bin_j ~ Bernoulli(x_j), so P(x_bin_j = 1) = x_j.

    One call is one draw.  Dynamic binarisation calls it afresh for every
    minibatch (as ``minivae.train`` does); static binarisation calls it
    once with a fixed Generator and keeps the result (see the module
    docstring).  E[x_bin] = x, so on average the data is unchanged.

    Parameters
    ----------
    x : float array, any shape, e.g. (B, 784)
        Grey levels in [0, 1].
    rng : numpy.random.Generator
        The source of randomness; the same state gives the same draw.
    out : float32 ndarray of x's shape, C-contiguous, optional
        Written in place and returned, to reuse one buffer every epoch.
    check : bool
        Scan x's values (in [0, 1], no NaN).  A training loop that validated
        its whole data set once passes False to skip the scan on every batch
        (two passes over the batch); x's dtype is checked either way.

    Returns
    -------
    ndarray, float32, shape of x
        0.0 and 1.0 only.

    Raises
    ------
    TypeError
        ``x`` is not a float array, ``rng`` not a Generator, ``out`` not a
        float32 array.
    ValueError
        ``x`` outside [0, 1] or NaN (with ``check``), ``out`` of the wrong
        shape, not C-contiguous or read-only.
    """
    x = _check_unit_interval(x, values=check)
    rng = check_rng(rng)
    out = np.empty(x.shape, dtype=np.float32) if out is None else _check_out(out, x.shape)
    # u ~ Uniform[0, 1) and P(u < x) = x: the draw is the comparison.  x = 0 never gives 1
    # (u < 0 is impossible), x = 1 always does (u < 1 always holds)
    rng.random(dtype=np.float32, out=out)
    np.less(out, x, out=out)
    return out


def threshold_binarize(x, threshold=0.5):
    """Deterministic binary images: 1.0 where x > threshold, else 0.0.

    Unlike :func:`bernoulli_binarize` there is no randomness, but the
    binary images no longer average to x.

    Parameters
    ----------
    x : float array, any shape
        Grey levels in [0, 1].
    threshold : float
        In [0, 1].

    Returns
    -------
    ndarray, float32, shape of x
        0.0 and 1.0 only.
    """
    x = _check_unit_interval(x)
    threshold = check_number(threshold, "threshold", low=0, high=1)
    return (x > threshold).astype(np.float32)


def fixed_binarization(x_test, seed):
    """The one static binarisation of the test set that a run with ``seed`` reports ELBOs on.

    One :func:`bernoulli_binarize` draw with ``np.random.default_rng(seed + 1)``
    (``seed`` itself seeds the training run's own Generator), so the same
    seed always gives the same binary test set.

    Parameters
    ----------
    x_test : float32 or float64 ndarray, shape (N, P)
        Grey levels in [0, 1].
    seed : int
        The run's seed, >= 0.

    Returns
    -------
    ndarray, shape (N, P), dtype of x_test
        0.0 and 1.0 only.
    """
    seed = check_count(seed, "seed", low=0)
    return bernoulli_binarize(x_test, np.random.default_rng(seed + 1)).astype(x_test.dtype)
