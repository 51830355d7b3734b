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
file and saying which byte or length is wrong.  The header is read first and
then exactly the bytes it declares, so a decompression bomb (a small gzip
file inflating to gigabytes) costs no more memory than its header declares,
and a header declaring more than ``max_bytes`` is refused before any data is
read.  This module imports only the validation and memory rules.
"""
import gzip
import os
import zlib

import numpy as np

from minivae.utils.memory import check_fits
from minivae.utils.validation import check_count, check_path

IDX_TYPES = {
    0x08: np.dtype(">u1"),    # unsigned byte
    0x09: np.dtype(">i1"),    # signed byte
    0x0B: np.dtype(">i2"),    # short
    0x0C: np.dtype(">i4"),    # int
    0x0D: np.dtype(">f4"),    # float
    0x0E: np.dtype(">f8"),    # double
}
GZIP_MAGIC = b"\x1f\x8b"
MAX_BYTES = 2 ** 30         # the most data a header may declare, unless read_idx is told more
DEFLATE_MAX_RATIO = 1032    # deflate's largest compression ratio: a gzip file of n bytes inflates to < 1032 n
CHUNK = 2 ** 20             # bytes read (and inflated) at a time


def read_idx(path, max_bytes=MAX_BYTES):
    """Read an IDX file, plain or gzipped, into an array; check every length.

    Gzip is recognised by the file's first two bytes (1f 8b), not by its name.
    The file is read in pieces: the header first, then exactly the number of
    bytes its sizes declare, so memory stays bounded by that number whatever
    the file holds (a small gzip file inflating to gigabytes is refused after
    the declared bytes, not read to its end).

    Parameters
    ----------
    path : path
        The file.
    max_bytes : int
        The most data a header may declare (default :data:`MAX_BYTES`, 1 GiB;
        the MNIST training images are 47 MB).

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
        a header declaring more than ``max_bytes`` (or more than a gzip file
        of this size can hold), a corrupt gzip stream, or a data part whose
        length is not exactly prod(sizes) * bytes per value (a truncated
        file, or trailing bytes).
    """
    path = check_path(path, "path")
    max_bytes = check_count(max_bytes, "max_bytes")
    with open(path, "rb") as raw:
        on_disk = os.fstat(raw.fileno()).st_size
        gzipped = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        stream = gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
        try:
            return _read_stream(stream, path, gzipped, on_disk, max_bytes)
        except (OSError, EOFError, zlib.error) as error:
            if not gzipped:
                raise
            # OSError: bad header or CRC (gzip.BadGzipFile); EOFError: the stream stops early;
            # zlib.error: the compressed data itself is damaged
            raise ValueError(f"{path}: corrupt gzip data ({type(error).__name__}: {error}); "
                             "delete the file and download it again") from None


def _read_stream(stream, path, gzipped, on_disk, max_bytes):
    """The header, then exactly the declared data bytes of an open (decompressing) stream."""
    head = _read_up_to(stream, 4)
    if len(head) == 4:
        head += _read_up_to(stream, 4 * head[3])
    dtype, shape, header_size = _parse_idx_header(head, path)
    expected = dtype.itemsize
    for size in shape:          # Python ints: a product of four 32-bit sizes can overflow NumPy's
        expected *= size
    declared = f"the header gives shape {shape} of {dtype.name} values, {expected:,} bytes"
    if expected > max_bytes:
        raise ValueError(f"{path}: {declared}, more than max_bytes = {max_bytes:,}; pass a larger "
                         "max_bytes if the file is meant to be this large")
    if gzipped and expected > DEFLATE_MAX_RATIO * on_disk:
        raise ValueError(f"{path}: truncated file: {declared}, more than a {on_disk:,}-byte "
                         f"gzip file can hold (deflate packs at most {DEFLATE_MAX_RATIO} to 1)")
    if not gzipped and on_disk - header_size != expected:
        _refuse_length(path, dtype, shape, header_size, expected, on_disk - header_size)
    check_fits(f"{path}: its data", 2 * expected)       # the bytes, and the array made from them
    data = _read_up_to(stream, expected)
    if len(data) < expected:
        _refuse_length(path, dtype, shape, header_size, expected, len(data))
    if stream.read(1):        # gzip: only the declared bytes are inflated, then one more at most
        _refuse_length(path, dtype, shape, header_size, expected, f"more than {expected}")
    values = np.frombuffer(data, dtype=dtype).reshape(shape)
    # a copy in native byte order: writable, and independent of the file's bytes
    return values.astype(dtype.newbyteorder("="))


def _read_up_to(stream, n):
    """Up to n bytes of ``stream`` (fewer only at its end), read in pieces of at most CHUNK bytes."""
    data = bytearray(n)
    view, done = memoryview(data), 0
    while done < n:
        piece = stream.read(min(CHUNK, n - done))
        if not piece:
            break
        view[done:done + len(piece)] = piece
        done += len(piece)
    view.release()
    del data[done:]
    return data


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


def _refuse_length(path, dtype, shape, header_size, expected, found):
    problem = "truncated file" if isinstance(found, int) and found < expected else \
        "trailing bytes after the data"
    raise ValueError(f"{path}: {problem}: the header gives shape {shape} of {dtype.name} "
                     f"values, so expected {expected} bytes of data after the "
                     f"{header_size}-byte header, found {found}")
