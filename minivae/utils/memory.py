"""Memory checks: refuse sizes that cannot fit before allocating, instead of a MemoryError later.

A model with ``z_dim = 99999999999`` or ``minivae sample --n 100000000`` asks
NumPy for hundreds of gigabytes; NumPy raises ``MemoryError`` (or the
operating system kills the process) only once the allocation is attempted,
after a run folder has been made.  The functions here estimate the bytes
first, from the sizes alone, and :func:`check_fits` compares them with the
memory the machine has available, raising a ``ValueError`` that says how much
was asked for.  The estimates count the big arrays only (parameters,
optimiser buffers, a step's activations); they are meant to catch requests
that are far too large, not to budget memory to the byte.

This module imports nothing of the package: every layer may use it.
"""
import os

from minivae.utils.validation import check_count

ALWAYS_FITS = 2 ** 26      # 64 MiB: smaller requests are not compared with the free memory


def available_bytes():
    """Memory available to a new allocation: MemAvailable of /proc/meminfo, else physical memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None              # unknown: nothing is refused


def check_fits(what, nbytes, hint=""):
    """Raise a ValueError if ``nbytes`` exceeds the available memory; ``what`` names the request.

    Requests up to ALWAYS_FITS bytes pass without reading /proc/meminfo, so a check on
    every batch costs nothing.
    """
    if nbytes <= ALWAYS_FITS:
        return
    available = available_bytes()
    if available is not None and nbytes > available:
        raise ValueError(f"{what} would need about {_gb(nbytes)} of memory, but only "
                         f"{_gb(available)} is available{hint}")


def _gb(nbytes):
    return f"{nbytes / 2**30:,.1f} GB" if nbytes >= 2**27 else f"{nbytes / 2**20:,.1f} MB"


def layer_widths(x_dim, z_dim, hidden):
    """The widths of the encoder x -> hidden -> (mu, logvar) and decoder z -> hidden -> x.

    Checked by the constructor's rules (counts >= 1), so any caller may pass
    unvalidated sizes.  Returns two lists of widths.
    """
    x_dim, z_dim = check_count(x_dim, "x_dim"), check_count(z_dim, "z_dim")
    if isinstance(hidden, (str, bytes)) or not hasattr(hidden, "__iter__"):
        raise TypeError(f"hidden must be a sequence of layer widths such as (400,), got {hidden!r}")
    hidden = [check_count(h, f"hidden[{i}]") for i, h in enumerate(hidden)]
    return [x_dim, *hidden, 2 * z_dim], [z_dim, *reversed(hidden), x_dim]


def parameter_count(x_dim, z_dim, hidden):
    """Numbers in a VAE's weights and biases, plus x_dim for a learned Gaussian variance (a bound)."""
    encoder, decoder = layer_widths(x_dim, z_dim, hidden)
    return encoder[0] + sum(n_in * n_out + n_out for widths in (encoder, decoder)
                            for n_in, n_out in zip(widths, widths[1:]))


def activation_count(x_dim, z_dim, hidden, rows):
    """Numbers in the activations of ``rows`` examples (B L) through encoder and decoder."""
    encoder, decoder = layer_widths(x_dim, z_dim, hidden)
    # each layer keeps its input, its pre-activation and its output for the backward pass
    return 3 * rows * (sum(encoder) + sum(decoder))
