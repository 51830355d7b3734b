"""The IDX file format that MNIST and Fashion-MNIST are distributed in, parsed and checked byte by byte.

An IDX file (http://yann.lecun.com/exdb/mnist/, bottom of the page) is ::

    bytes 0-1   zero
    byte  2     type code of the values (0x08 = unsigned byte, see IDX_TYPES)
    byte  3     number of dimensions, n
    then        n sizes, each a 4-byte big-endian unsigned integer
    then        prod(sizes) values, big-endian, last index changing fastest (C order)

MNIST images are (N, 28, 28) unsigned bytes, labels (N,) unsigned bytes.
The files are often stored gzipped; :func:`read_idx` recognises gzip by its
first two bytes (:data:`GZIP_MAGIC`), not by the file name.

A file whose bytes do not follow this layout is a ``ValueError`` naming the
file and saying which byte or length is wrong.  This module imports nothing
of the package.
"""
import gzip
import os
import zlib

import numpy as np

IDX_TYPES = {
    0x08: np.dtype(">u1"),    # unsigned byte
    0x09: np.dtype(">i1"),    # signed byte
    0x0B: np.dtype(">i2"),    # short
    0x0C: np.dtype(">i4"),    # int
    0x0D: np.dtype(">f4"),    # float
    0x0E: np.dtype(">f8"),    # double
}
GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path):
    """Read an IDX file, plain or gzipped, into an array; check every length.

    Gzip is recognised by the file's first two bytes (1f 8b), not by its name.

    Parameters
    ----------
    path : path
        The file.

    Returns
    -------
    ndarray
        Shape as given by the header, e.g. (N, 28, 28) for MNIST images and
        (N,) for labels; dtype from the type code in native byte order
        (uint8 for MNIST).

    Raises
    ------
    ValueError
        Not an IDX file (bad magic bytes, unknown type code, no dimensions),
        a corrupt gzip stream, or a data part whose length is not exactly
        prod(sizes) * bytes per value (a truncated file, or trailing bytes).
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    data = _gunzip(raw, path) if raw[:2] == GZIP_MAGIC else raw
    dtype, shape, header_size = _parse_idx_header(data, path)
    return _parse_idx_values(data, dtype, shape, header_size, path)


def _gunzip(raw, path):
    """Decompress gzip bytes; a damaged stream becomes a ValueError naming the file."""
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        # OSError: bad header or CRC (gzip.BadGzipFile); EOFError: the stream stops early;
        # zlib.error: the compressed data itself is damaged
        raise ValueError(f"{path}: corrupt gzip data ({type(error).__name__}: {error}); "
                         "delete the file and download it again") from None


def _parse_idx_header(data, path):
    """Return (dtype, shape, header size in bytes) from the start of an IDX file's bytes."""
    if len(data) < 4:
        raise ValueError(f"{path}: {len(data)} bytes is too short for an IDX file "
                         "(the header alone has at least 4)")
    if data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file: expected the first two bytes to be 00 00, "
                         f"got {data[:2].hex(' ')}")
    type_code, ndim = data[2], data[3]
    if type_code not in IDX_TYPES:
        known = ", ".join(f"0x{code:02X}" for code in IDX_TYPES)
        raise ValueError(f"{path}: unknown IDX type code 0x{type_code:02X} (byte 2); "
                         f"expected one of {known}")
    if ndim == 0:
        raise ValueError(f"{path}: IDX header gives 0 dimensions (byte 3); expected at least 1")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise ValueError(f"{path}: truncated IDX header: {ndim} dimensions need {header_size} "
                         f"header bytes, found {len(data)}")
    shape = tuple(int.from_bytes(data[4 + 4 * k:8 + 4 * k], "big") for k in range(ndim))
    return IDX_TYPES[type_code], shape, header_size


def _parse_idx_values(data, dtype, shape, header_size, path):
    """The values after the header as an array of ``shape``, in native byte order."""
    # Python ints: a product of four 32-bit sizes can overflow a NumPy integer
    expected = dtype.itemsize
    for size in shape:
        expected *= size
    found = len(data) - header_size
    if found != expected:
        problem = "truncated file" if found < expected else "trailing bytes after the data"
        raise ValueError(f"{path}: {problem}: the header gives shape {shape} of {dtype.name} "
                         f"values, so expected {expected} bytes of data after the "
                         f"{header_size}-byte header, found {found}")
    values = np.frombuffer(data, dtype=dtype, count=expected // dtype.itemsize,
                           offset=header_size).reshape(shape)
    # a copy in native byte order: writable, and independent of the file's bytes
    return values.astype(dtype.newbyteorder("="))
