"""Data for the VAE: the embedded MNIST subset, IDX files, checked downloads, binarisation.

Top to bottom:

1. the containers ``Split(x, y)`` and ``Dataset(train, test, name, source)``;
2. the loaders.  ``load_mnist()`` with no arguments gives the 10,000-image
   MNIST subset shipped in ``minivae/data/`` (no network needed), shuffled
   with a fixed seed and split into 9,000 training and 1,000 test images.
   ``load_mnist(DIR)`` reads full MNIST (the official 60,000 / 10,000 split)
   from the four IDX files in DIR; ``load_fashion_mnist(DIR)`` does the same
   for Fashion-MNIST, whose files have the same names;
3. ``read_idx``: the IDX file format that MNIST is distributed in, parsed
   and checked byte by byte;
4. ``download_mnist``, ``download_fashion_mnist`` and the ``download_files``
   they share: fetch the IDX files from a list of mirrors, verify each
   file's published checksum, never leave a half-written file behind;
5. preprocessing: ``to_unit_interval`` (bytes -> grey levels in [0, 1]),
   ``bernoulli_binarize`` and ``threshold_binarize``.

Every loader returns images as float32 rows of grey levels in [0, 1], shape
(N, 784) (a 28x28 image read row by row, the x the VAE sees), and labels as
int64, shape (N,).  The labels are not used by the VAE; they colour the
latent scatter plot.

Binarisation.  The Bernoulli likelihood

    log p(x|z) = sum_j [x_j log lambda_j + (1 - x_j) log(1 - lambda_j)]

is a proper log-probability only for binary x.  ``bernoulli_binarize`` turns
grey levels into binary images by one draw per pixel with P(x_j = 1) equal to
the grey level.  Called afresh for every minibatch, as ``minivae.train``
does, this is *dynamic* binarisation: the model never sees the same binary
image twice.  Called once with a fixed Generator and kept, it is *static*
binarisation (as in Salakhutdinov & Murray, 2008): one fixed binary data set.
ELBOs measured under the two are not comparable with each other; a test
set is binarised once (static) so that its ELBO is comparable between epochs.
"""
import gzip
import hashlib
import http.client
import os
import sys
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass

import numpy as np

from minivae.checks import check_count

IMAGE_SHAPE = (28, 28)
N_PIXELS = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]     # 784

# the embedded subset: the first 10,000 images of the MNIST training split, sorted by label
# (see minivae/data/README.md for its provenance and licence)
EMBEDDED_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "mnist_subset.npz")
EMBEDDED_SIZE = 10000
EMBEDDED_SHA256 = "f5c5d9d75a48e7ea9a81b7ff155b21051e8b9511eab90f5078cf59216e4d0a8f"

# The four IDX files of MNIST and Fashion-MNIST (same names for both), as (images, labels) pairs
TRAIN_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
TEST_FILES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

# Published MD5 checksums of the gzipped files.  MD5 protects against a truncated or
# corrupted download, not against a malicious mirror; a table may give SHA-256 digests
# instead (64 hex digits rather than 32), see download_files.
MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
FASHION_MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}

# Base URLs tried in order; a file's URL is the base followed by its name
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",     # PyTorch's copy
    "http://yann.lecun.com/exdb/mnist/",                  # the original address
)
FASHION_MNIST_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",     # Zalando Research's bucket
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)


# ---------------------------------------------------------------------------
# 1. Containers
# ---------------------------------------------------------------------------

# eq=False: comparing two of these with == would compare arrays elementwise, which has
# no single truth value; identity comparison is the honest default
@dataclass(frozen=True, eq=False)
class Split:
    """One part of a data set.

    Attributes
    ----------
    x : ndarray, shape (N, 784), float32
        Images as rows of grey levels in [0, 1].
    y : ndarray, shape (N,), int64
        Labels 0-9.
    """
    x: np.ndarray
    y: np.ndarray


@dataclass(frozen=True, eq=False)
class Dataset:
    """A training and a test split.

    Attributes
    ----------
    train, test : Split
    name : str
        ``"mnist"`` or ``"fashion-mnist"``.
    source : str
        Where the images came from, for printing.
    """
    train: Split
    test: Split
    name: str
    source: str


# ---------------------------------------------------------------------------
# 2. Loaders
# ---------------------------------------------------------------------------

def load_mnist(root=None, *, download=False, mirrors=None, test_size=1000, seed=0):
    """Load MNIST: the embedded 10,000-image subset, or full MNIST from IDX files.

    Parameters
    ----------
    root : path, optional
        None (default): the subset shipped with minivae, the first 10,000
        images of the official training split (no network needed), shuffled
        by ``np.random.default_rng(seed).permutation`` and split into
        ``10000 - test_size`` training and ``test_size`` test images.
        A directory: full MNIST from the IDX files ``train-images-idx3-ubyte``,
        ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
        ``t10k-labels-idx1-ubyte`` in it (each plain or gzipped, ``.gz``),
        with the official split: 60,000 training and 10,000 test images.
    download : bool
        With ``root``: first download the files that are missing from it
        (see :func:`download_mnist`).
    mirrors : list of str, optional
        Base URLs for the download; default :data:`MNIST_MIRRORS`.
    test_size : int
        Embedded subset only: the number of test images, 0 < test_size < 10000.
    seed : int
        Embedded subset only: seeds the shuffle, so a seed always gives the
        same split.  (IDX files come with their official split: with
        ``root``, another ``test_size`` or ``seed`` is a ValueError rather
        than silently ignored.)

    Returns
    -------
    Dataset
        ``.train.x`` (N_train, 784) and ``.test.x`` (N_test, 784), float32 in
        [0, 1]; ``.train.y`` (N_train,) and ``.test.y`` (N_test,), int64.
    """
    if root is None:
        if download:
            raise ValueError("download=True needs a directory to download into: "
                             "load_mnist(root=DIR, download=True)")
        return _load_embedded(test_size, seed)
    if (test_size, seed) != (1000, 0):
        raise ValueError(f"test_size and seed choose the split of the embedded subset; the IDX files "
                         f"in {root} come with the official 60,000 / 10,000 split (got "
                         f"test_size={test_size!r}, seed={seed!r})")
    return _load_idx_directory(root, "mnist", download, MNIST_FILES,
                               MNIST_MIRRORS if mirrors is None else mirrors)


def load_fashion_mnist(root, *, download=False, mirrors=None):
    """Load Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017) from the IDX files in ``root``.

    The files have the same names and format as MNIST's (see :func:`load_mnist`);
    the split is the official one, 60,000 training and 10,000 test images.
    With ``download=True`` the missing files are first fetched from ``mirrors``
    (default :data:`FASHION_MNIST_MIRRORS`) and checked against
    :data:`FASHION_MNIST_FILES`.

    Returns
    -------
    Dataset
        As :func:`load_mnist`; the labels 0-9 are T-shirt/top, trouser,
        pullover, dress, coat, sandal, shirt, sneaker, bag, ankle boot.
    """
    return _load_idx_directory(root, "fashion-mnist", download, FASHION_MNIST_FILES,
                               FASHION_MNIST_MIRRORS if mirrors is None else mirrors)


def _load_embedded(test_size, seed):
    """The embedded subset, shuffled by ``seed`` and split into train and test."""
    test_size = check_count("test_size", test_size)
    if test_size >= EMBEDDED_SIZE:
        raise ValueError(f"test_size must be smaller than {EMBEDDED_SIZE} (the embedded subset has "
                         f"{EMBEDDED_SIZE} images and the training split needs some), got {test_size}")
    seed = check_count("seed", seed, low=0)
    with np.load(EMBEDDED_PATH, allow_pickle=False) as archive:     # no pickle: loading runs no code
        images, labels = archive["x"], archive["y"]
    if images.shape != (EMBEDDED_SIZE, N_PIXELS) or labels.shape != (EMBEDDED_SIZE,):
        raise ValueError(f"{EMBEDDED_PATH}: expected x (10000, 784) and y (10000,), got "
                         f"{images.shape} and {labels.shape}; the installed file is damaged, "
                         "reinstall minivae")
    # the file is sorted by label: without the shuffle the test set would be all 9s
    order = np.random.default_rng(seed).permutation(EMBEDDED_SIZE)
    test, train = order[:test_size], order[test_size:]
    x = to_unit_interval(images)
    y = labels.astype(np.int64)
    return Dataset(train=Split(x[train], y[train]), test=Split(x[test], y[test]), name="mnist",
                   source=f"embedded MNIST subset (first {EMBEDDED_SIZE} training images), seed {seed}")


def _find_file(root, name):
    """Path of ``name`` in ``root``, plain or gzipped (the plain one if both exist), or None."""
    for candidate in (name, name + ".gz"):
        path = os.path.join(root, candidate)
        if os.path.isfile(path):
            return path
    return None


def _load_idx_directory(root, name, download, files, mirrors):
    """Read the four IDX files of ``name`` from ``root``, downloading missing ones if asked."""
    root = os.path.expanduser(os.fspath(root))
    wanted = TRAIN_FILES + TEST_FILES
    if download:
        # a plain (already unpacked) file counts as present: its checksum is unknown,
        # since the published ones are of the .gz files, so it is trusted as it is
        missing = {gz: digest for gz, digest in files.items()
                   if not os.path.isfile(os.path.join(root, gz[:-len(".gz")]))}
        download_files(root, missing, mirrors)
    if not os.path.isdir(root):
        raise FileNotFoundError(
            f"{name} directory {root!r} does not exist (expected the IDX files {', '.join(wanted)}, "
            "each plain or .gz, in it); pass download=True (minivae train --download) to fetch them")
    paths = {file: _find_file(root, file) for file in wanted}
    missing = [file for file, path in paths.items() if path is None]
    if missing:
        raise FileNotFoundError(
            f"{name}: {len(missing)} of the 4 IDX files missing from {root!r}: "
            f"{', '.join(missing)} (plain or .gz); pass download=True (minivae train --download) "
            "to fetch them")
    train = _read_split(paths[TRAIN_FILES[0]], paths[TRAIN_FILES[1]])
    test = _read_split(paths[TEST_FILES[0]], paths[TEST_FILES[1]])
    return Dataset(train=train, test=test, name=name, source=root)


def _read_split(images_path, labels_path):
    """Read an images file and its labels file, check they match, return a Split."""
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise ValueError(f"{images_path}: expected images of shape (N, 28, 28), got {images.shape}")
    if images.dtype != np.uint8:
        raise ValueError(f"{images_path}: expected uint8 pixels (IDX type 0x08), got {images.dtype}")
    if labels.ndim != 1:
        raise ValueError(f"{labels_path}: expected labels of shape (N,), got {labels.shape}")
    if len(images) != len(labels):
        raise ValueError(f"{images_path} holds {len(images)} images but {labels_path} holds "
                         f"{len(labels)} labels; the two files must come from the same split")
    x = to_unit_interval(images.reshape(len(images), N_PIXELS))
    return Split(x, labels.astype(np.int64))


# ---------------------------------------------------------------------------
# 3. The IDX format
# ---------------------------------------------------------------------------
#
# An IDX file (http://yann.lecun.com/exdb/mnist/, bottom of the page) is
#
#     bytes 0-1   zero
#     byte  2     type code of the values (0x08 = unsigned byte, see IDX_TYPES)
#     byte  3     number of dimensions, n
#     then        n sizes, each a 4-byte big-endian unsigned integer
#     then        prod(sizes) values, big-endian, last index changing fastest (C order)
#
# MNIST images are (N, 28, 28) unsigned bytes, labels (N,) unsigned bytes.

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


# ---------------------------------------------------------------------------
# 4. Downloads
# ---------------------------------------------------------------------------

class DownloadError(OSError):
    """No mirror gave a file with the expected checksum; the message lists every attempt."""


CHUNK_SIZE = 1 << 16       # bytes read from the network at a time


def download_mnist(root, *, mirrors=None, timeout=30, progress=True):
    """Download the four MNIST IDX files (.gz) into ``root``, checking their MD5s.

    See :func:`download_files`; ``mirrors`` defaults to :data:`MNIST_MIRRORS`,
    the checksums are :data:`MNIST_FILES`.
    """
    return download_files(root, MNIST_FILES, MNIST_MIRRORS if mirrors is None else mirrors,
                          timeout=timeout, progress=progress)


def download_fashion_mnist(root, *, mirrors=None, timeout=30, progress=True):
    """Download the four Fashion-MNIST IDX files (.gz) into ``root``, checking their MD5s.

    See :func:`download_files`; ``mirrors`` defaults to :data:`FASHION_MNIST_MIRRORS`,
    the checksums are :data:`FASHION_MNIST_FILES`.
    """
    return download_files(root, FASHION_MNIST_FILES,
                          FASHION_MNIST_MIRRORS if mirrors is None else mirrors,
                          timeout=timeout, progress=progress)


def download_files(root, files, mirrors, *, timeout=30, progress=True):
    """Download each file of ``files`` into ``root`` from the first mirror that serves it intact.

    For each file: if it is already in ``root`` with the right checksum it
    is kept.  Otherwise each mirror is tried in order: the file is streamed
    into a temporary file in ``root``, its checksum is compared with the
    table's, and only a match is renamed into place (``os.replace``, so the
    file appears complete or not at all).  A network error or a wrong
    checksum moves on to the next mirror; the temporary file is always
    removed.

    Parameters
    ----------
    root : path
        Directory to download into; created if missing.
    files : dict of str -> str
        File name -> expected hex digest of the file as served: MD5 (32 hex
        digits) or SHA-256 (64).
    mirrors : list of str
        Base URLs, tried in order; a file's URL is the base, a ``/`` if the
        base does not end with one, and the file name.  A single string is
        taken as a list of one.
    timeout : float
        Seconds to wait for a connection or for the next bytes.
    progress : bool
        Print what is being fetched from where, and how many bytes, to stderr.

    Returns
    -------
    list of str
        The paths of the files of ``files`` in ``root``, all checked.

    Raises
    ------
    DownloadError
        Some file could be fetched intact from none of the mirrors; the
        message names each URL tried and why it failed.
    """
    root = os.path.expanduser(os.fspath(root))
    mirrors = _check_mirrors(mirrors)
    algorithms = {name: _algorithm_for(name, digest) for name, digest in files.items()}
    os.makedirs(root, exist_ok=True)
    paths = []
    for name, expected in files.items():
        target = os.path.join(root, name)
        algorithm = algorithms[name]
        if os.path.isfile(target):
            if _file_digest(target, algorithm) == expected.lower():
                _say(progress, f"{name}: already in {root}, {algorithm} ok")
                paths.append(target)
                continue
            _say(progress, f"{name}: the copy in {root} has the wrong {algorithm}; downloading again")
        _download_from_mirrors(name, expected.lower(), algorithm, root, mirrors, timeout, progress)
        paths.append(target)
    return paths


def _check_mirrors(mirrors):
    if isinstance(mirrors, str):
        mirrors = [mirrors]
    mirrors = list(mirrors)
    if not mirrors or not all(isinstance(m, str) for m in mirrors):
        raise ValueError(f"mirrors: expected a non-empty list of base URLs, got {mirrors!r}")
    return mirrors


def _algorithm_for(name, digest):
    """'md5' or 'sha256', told apart by the digest's length."""
    algorithm = {32: "md5", 64: "sha256"}.get(len(digest))
    if algorithm is None or any(c not in "0123456789abcdefABCDEF" for c in digest):
        raise ValueError(f"checksum of {name}: expected 32 (MD5) or 64 (SHA-256) hex digits, "
                         f"got {digest!r}")
    return algorithm


def _new_hash(algorithm):
    # usedforsecurity=False: MD5 here checks integrity, and stays allowed on FIPS systems
    return hashlib.new(algorithm, usedforsecurity=False)


def _file_digest(path, algorithm):
    digest = _new_hash(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _say(progress, message):
    if progress:
        print(message, file=sys.stderr, flush=True)


def _download_from_mirrors(name, expected, algorithm, root, mirrors, timeout, progress):
    """Try each mirror in turn until one gives ``name`` with the expected digest."""
    failures = []
    for base in mirrors:
        url = base + name if base.endswith("/") else base + "/" + name
        _say(progress, f"{name}: downloading from {url}")
        try:
            size = _download_one(url, os.path.join(root, name), expected, algorithm, timeout)
        # OSError covers URLError, HTTPError and timeouts; HTTPException a connection that
        # breaks mid-response; ValueError an unusable URL or a wrong checksum
        except (OSError, http.client.HTTPException, ValueError) as error:
            reason = str(error) or type(error).__name__
            _say(progress, f"{name}: failed: {reason}")
            failures.append(f"  {url}: {reason}")
            continue
        _say(progress, f"{name}: {size:,} bytes, {algorithm} ok")
        return
    raise DownloadError(
        f"could not download {name} into {root}; tried {len(failures)} mirror(s):\n"
        + "\n".join(failures)
        + "\nCheck the network connection, pass other mirrors (mirrors=[...]), "
          "or copy the file there by hand.")


def _download_one(url, target, expected, algorithm, timeout):
    """Stream ``url`` to a temporary file next to ``target``; check it; rename it into place.

    Returns the number of bytes.  Raises (and leaves nothing behind) on any failure.
    """
    # same directory as the target, so os.replace is a rename, never a copy across disks
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target),
                               prefix="." + os.path.basename(target) + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            size, digest = _stream(url, out, algorithm, timeout)
        if digest != expected:
            raise ValueError(f"{algorithm} mismatch: expected {expected}, got {digest} "
                             f"({size:,} bytes received)")
        os.replace(tmp, target)
        return size
    finally:
        # after a successful os.replace tmp no longer exists; after any failure
        # (including Ctrl-C) this removes the partial file
        if os.path.exists(tmp):
            os.remove(tmp)


def _stream(url, out, algorithm, timeout):
    """Copy the body of ``url`` into the open file ``out``; return (bytes, hex digest)."""
    digest = _new_hash(algorithm)
    size = 0
    with urllib.request.urlopen(url, timeout=timeout) as response:
        announced = response.headers.get("Content-Length")
        for chunk in iter(lambda: response.read(CHUNK_SIZE), b""):
            out.write(chunk)
            digest.update(chunk)
            size += len(chunk)
    # http.client may return a short body without complaint when the connection drops
    if announced is not None and announced.isdigit() and size != int(announced):
        raise OSError(f"connection closed after {size:,} of {int(announced):,} bytes")
    return size, digest.hexdigest()


# ---------------------------------------------------------------------------
# 5. Preprocessing
# ---------------------------------------------------------------------------

def to_unit_interval(x_uint8):
    """Grey levels in [0, 1] from bytes: x / 255, as float32.

    x_uint8: uint8 array of any shape -> float32 array of the same shape.
    Only uint8 is accepted: dividing data that is already in [0, 1] by 255
    again would silently give an almost black data set.
    """
    x_uint8 = np.asarray(x_uint8)
    if x_uint8.dtype != np.uint8:
        raise ValueError(f"x_uint8: expected a uint8 array (pixel values 0-255), got dtype "
                         f"{x_uint8.dtype}")
    return x_uint8.astype(np.float32) / np.float32(255)


def _check_unit_interval(x, values=True):
    """x as an array; ValueError unless it is a float array (and, with values=True, in [0, 1])."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"x: expected grey levels in [0, 1] as a float array, got dtype {x.dtype} "
                         "(for uint8 pixels use to_unit_interval first)")
    # written so that NaN fails too: every comparison with NaN is False
    if values and x.size and not (x.min() >= 0 and x.max() <= 1):
        raise ValueError(f"x: expected grey levels in [0, 1], got values from {x.min()} to "
                         f"{x.max()} (for uint8 pixels use to_unit_interval first)")
    return x


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
    """
    x = _check_unit_interval(x, values=check)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected a numpy.random.Generator (np.random.default_rng(seed)), "
                        f"got {type(rng).__name__}")
    if out is None:
        out = np.empty(x.shape, dtype=np.float32)
    elif not (isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == x.shape
              and out.flags.c_contiguous and out.flags.writeable):
        raise ValueError(f"out: expected a writable, C-contiguous float32 array of shape {x.shape}, "
                         f"got {getattr(out, 'dtype', type(out).__name__)} {getattr(out, 'shape', '')}")
    # u ~ Uniform[0, 1) and P(u < x) = x: the draw is the comparison.  x = 0 never gives 1
    # (u < 0 is impossible), x = 1 always does (u < 1 always holds)
    rng.random(dtype=np.float32, out=out)
    np.less(out, x, out=out)
    return out


def threshold_binarize(x, threshold=0.5):
    """Deterministic binary images: 1.0 where x > threshold, else 0.0.

    x: float array of grey levels in [0, 1], any shape -> float32, same shape.
    Unlike :func:`bernoulli_binarize` there is no randomness, but the
    binary images no longer average to x.
    """
    x = _check_unit_interval(x)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)):
        raise TypeError(f"threshold: expected a number in [0, 1], got {threshold!r}")
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold: expected a number in [0, 1], got {threshold!r}")
    return (x > threshold).astype(np.float32)


def fixed_binarization(x_test, seed):
    """The one static binarisation of the test set that a run with ``seed`` reports ELBOs on."""
    return bernoulli_binarize(x_test, np.random.default_rng(seed + 1)).astype(x_test.dtype)
