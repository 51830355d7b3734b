"""Checked downloads: fetch files from a list of mirrors, verify each one's checksum, never leave half a file.

``download_files(root, files, mirrors)`` is the general tool: ``files`` maps
each file name to its published MD5 or SHA-256 digest, and every file is
streamed from the first mirror that serves it intact.  ``download_mnist`` and
``download_fashion_mnist`` call it with the tables below, the one place the
file names, checksums and mirrors of the two data sets are written.

How a download stays safe:

* a file already in ``root`` with the right checksum is kept, not fetched again;
* a file is streamed into a temporary ``.part`` file next to its target and
  renamed into place (``os.replace``) only once its checksum matches, so it
  appears complete or not at all; the ``.part`` file is removed on any
  failure, Ctrl-C and SIGTERM included (SIGTERM is turned into a
  KeyboardInterrupt while a download runs), and one left by a process that
  was killed (SIGKILL) is removed by the next download into that folder;
* every file has a deadline (``timeout``, 120 s by default) for all of it,
  headers and body together, from connecting to the last byte: when it
  passes, a timer shuts down the download's connections, so a server that
  drips its headers one byte a second, or sends ``100 Continue`` forever,
  is given up as surely as one that drips its body; any single wait for the
  network is also capped at :data:`READ_TIMEOUT` (or ``timeout``, if
  shorter), which is what bounds a TLS handshake;
* a body larger than the file's known size (the table's, or the announced
  Content-Length) is given up as soon as the extra bytes arrive, so an
  endless response fills no disk;
* a network error, a short body or a wrong checksum moves on to the next
  mirror; when none is left, :class:`DownloadError` names every URL tried
  and why it failed.

Progress lines (what is fetched from where, and how many bytes) go to stderr
through :class:`minivae.utils.progress.Progress`.
"""
import contextlib
import glob
import hashlib
import http.client
import os
import signal
import sys
import tempfile
import threading
import time

from minivae.data.deadline import Deadline
from minivae.utils.validation import check_bool, check_count, check_number, check_path
from minivae.utils.progress import Progress

# Published MD5 checksums of the gzipped IDX files of MNIST and Fashion-MNIST (the two use
# the same file names).  MD5 protects against a truncated or corrupted download, not against
# a malicious mirror; a table may give SHA-256 digests instead (64 hex digits rather than
# 32), see download_files.
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

# Sizes in bytes of the same files as served: a body that grows past its size is given up at once
MNIST_SIZES = {
    "train-images-idx3-ubyte.gz": 9912422,
    "train-labels-idx1-ubyte.gz": 28881,
    "t10k-images-idx3-ubyte.gz": 1648877,
    "t10k-labels-idx1-ubyte.gz": 4542,
}
# Fashion-MNIST: upper bounds a few percent above the sizes its README lists (26 MB, 29 KB,
# 4.3 MB, 5.1 KB), not the exact byte counts, which were not checked against a server here;
# the MD5 checksums above decide whether a file is right, these only stop an endless body
FASHION_MNIST_SIZES = {
    "train-images-idx3-ubyte.gz": 27_500_000,
    "train-labels-idx1-ubyte.gz": 31_000,
    "t10k-images-idx3-ubyte.gz": 4_600_000,
    "t10k-labels-idx1-ubyte.gz": 5_500,
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

CHUNK_SIZE = 1 << 16       # bytes read from the network at a time
DEFAULT_TIMEOUT = 120      # seconds for all of one file, from connecting to the last byte
READ_TIMEOUT = 30          # seconds for any single wait for the network
MAX_BYTES = 1 << 30        # the most any file may have when neither table nor server gives a size


class DownloadError(OSError):
    """No mirror gave a file with the expected checksum; the message lists every attempt."""


def download_mnist(root, *, mirrors=None, timeout=DEFAULT_TIMEOUT, progress=True):
    """Download the four MNIST IDX files (.gz) into ``root``, checking their MD5s.

    See :func:`download_files`; ``mirrors`` defaults to :data:`MNIST_MIRRORS`,
    the checksums are :data:`MNIST_FILES`, the sizes :data:`MNIST_SIZES`.
    """
    return download_files(root, MNIST_FILES, MNIST_MIRRORS if mirrors is None else mirrors,
                          sizes=MNIST_SIZES, timeout=timeout, progress=progress)


def download_fashion_mnist(root, *, mirrors=None, timeout=DEFAULT_TIMEOUT, progress=True):
    """Download the four Fashion-MNIST IDX files (.gz) into ``root``, checking their MD5s.

    See :func:`download_files`; ``mirrors`` defaults to :data:`FASHION_MNIST_MIRRORS`,
    the checksums are :data:`FASHION_MNIST_FILES`, the sizes :data:`FASHION_MNIST_SIZES`.
    """
    return download_files(root, FASHION_MNIST_FILES,
                          FASHION_MNIST_MIRRORS if mirrors is None else mirrors,
                          sizes=FASHION_MNIST_SIZES, timeout=timeout, progress=progress)


def download_files(root, files, mirrors, *, sizes=None, timeout=DEFAULT_TIMEOUT, progress=True):
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
    sizes : dict of str -> int, optional
        File name -> its size in bytes as served; a body that grows past it
        is given up at once (without it: the announced Content-Length, else
        :data:`MAX_BYTES`).
    timeout : float
        Seconds for each file as a whole, from connecting to the last byte,
        > 0 (default 120); each single wait for the network is at most
        :data:`READ_TIMEOUT` seconds.
    progress : bool
        Print what is being fetched from where, and how many bytes, to stderr.

    Returns
    -------
    list of str
        The paths of the files of ``files`` in ``root``, all checked.

    Raises
    ------
    TypeError
        ``mirrors`` is not a list of strings, a checksum is not a string, or
        ``timeout`` is not a number.
    ValueError
        No mirrors, a checksum that is neither 32 nor 64 hex digits, or a
        ``timeout`` that is not > 0.
    KeyboardInterrupt
        Ctrl-C or SIGTERM during the download; no partial file is left.
    DownloadError
        Some file could be fetched intact from none of the mirrors; the
        message names each URL tried and why it failed.
    """
    # every argument is checked before the folder is made or any request is sent
    root = check_path(root, "root")
    mirrors = _check_mirrors(mirrors)
    if not isinstance(files, dict) or not all(
            isinstance(name, str) and name and os.path.basename(name) == name for name in files):
        raise TypeError(f"files must be a dict of file names (no folders) -> hex digests, "
                        f"got {files!r}"[:300])
    algorithms = {name: _algorithm_for(name, digest) for name, digest in files.items()}
    timeout = check_number(timeout, "timeout", low=0, low_inclusive=False)
    if not isinstance(sizes, (dict, type(None))):
        raise TypeError(f"sizes must be a dict of file names -> sizes in bytes, got {sizes!r}"[:300])
    sizes = {name: check_count(size, f"sizes[{name!r}]") for name, size in (sizes or {}).items()}
    reporter = Progress(sys.stderr if check_bool(progress, "progress") else None)
    os.makedirs(root, exist_ok=True)
    paths = []
    for name, expected in files.items():
        _remove_stale_parts(root, name, timeout)
        target = os.path.join(root, name)
        algorithm = algorithms[name]
        if os.path.isfile(target):
            if _file_digest(target, algorithm) == expected.lower():
                reporter.say(f"{name}: already in {root}, {algorithm} ok")
                paths.append(target)
                continue
            reporter.say(f"{name}: the copy in {root} has the wrong {algorithm}; downloading again")
        with _sigterm_interrupts():
            _download_from_mirrors(name, expected.lower(), algorithm, root, mirrors,
                                   sizes.get(name), timeout, reporter)
        paths.append(target)
    return paths


def _check_mirrors(mirrors):
    """``mirrors`` as a non-empty list of base URLs; a single string is a list of one."""
    given = mirrors
    if isinstance(mirrors, str):
        mirrors = [mirrors]
    try:
        mirrors = list(mirrors)
    except TypeError:          # not iterable: a number, None, ...
        mirrors = [given]
    if not all(isinstance(m, str) for m in mirrors):
        raise TypeError(f"mirrors must be a list of base URLs (strings), got {given!r}")
    if not mirrors:
        raise ValueError("mirrors must be a non-empty list of base URLs, got an empty one")
    return mirrors


def _algorithm_for(name, digest):
    """'md5' or 'sha256', told apart by the digest's length."""
    if not isinstance(digest, str):
        raise TypeError(f"files[{name!r}] (its checksum) must be a string of hex digits, got {digest!r}")
    algorithm = {32: "md5", 64: "sha256"}.get(len(digest))
    if algorithm is None or any(c not in "0123456789abcdefABCDEF" for c in digest):
        raise ValueError(f"files[{name!r}] (its checksum) must be 32 (MD5) or 64 (SHA-256) hex "
                         f"digits, got {digest!r}")
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


def _part_prefix(target):
    """The naming of a download's temporary file: ``.<name>.<random>.part`` beside the target."""
    return "." + os.path.basename(target) + "."


def _remove_stale_parts(root, name, timeout):
    """Remove ``.part`` files of ``name`` older than the deadline: left by a killed process."""
    now = time.time()
    pattern = os.path.join(glob.escape(root), glob.escape(_part_prefix(name)) + "*.part")
    for leftover in glob.glob(pattern):
        try:
            if now - os.path.getmtime(leftover) > timeout:      # no live download is that old
                os.remove(leftover)
        except OSError:
            pass


@contextlib.contextmanager
def _sigterm_interrupts():
    """While active (main thread only), SIGTERM raises KeyboardInterrupt, so cleanups run."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt("SIGTERM during a download")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _download_from_mirrors(name, expected, algorithm, root, mirrors, size, timeout, reporter):
    """Try each mirror in turn until one gives ``name`` with the expected digest."""
    failures = []
    for base in mirrors:
        url = base + name if base.endswith("/") else base + "/" + name
        reporter.say(f"{name}: downloading from {url}")
        try:
            size = _download_one(url, os.path.join(root, name), expected, algorithm, size, timeout)
        # OSError covers URLError, HTTPError and timeouts; HTTPException a connection that
        # breaks mid-response; ValueError an unusable URL or a wrong checksum
        except (OSError, http.client.HTTPException, ValueError) as error:
            reason = str(error) or type(error).__name__
            reporter.say(f"{name}: failed: {reason}")
            failures.append(f"  {url}: {reason}")
            continue
        reporter.say(f"{name}: {size:,} bytes, {algorithm} ok")
        return
    raise DownloadError(
        f"could not download {name} into {root}; tried {len(failures)} mirror(s):\n"
        + "\n".join(failures)
        + "\nCheck the network connection, pass other mirrors (mirrors=[...]), "
          "or copy the file there by hand.")


def _download_one(url, target, expected, algorithm, known_size, timeout):
    """Stream ``url`` to a temporary file next to ``target``; check it; rename it into place.

    Returns the number of bytes.  Raises (and leaves nothing behind) on any failure.
    """
    # same directory as the target, so os.replace is a rename, never a copy across disks
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=_part_prefix(target),
                               suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            size, digest = _stream(url, out, algorithm, known_size, timeout)
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


def _stream(url, out, algorithm, known_size, timeout):
    """Copy the body of ``url`` into the open file ``out``; return (bytes, hex digest).

    Gives up (OSError) once ``timeout`` seconds have passed, headers and body
    together (see :class:`minivae.data.deadline.Deadline`), or more bytes have arrived than the
    file can have.
    """
    digest = _new_hash(algorithm)
    size = 0
    deadline = Deadline(timeout)
    opener = deadline.opener()
    try:
        size = _copy_body(opener, url, out, digest, known_size, timeout, deadline)
    except (OSError, http.client.HTTPException) as error:
        if deadline.expired:      # the timer cut the connection: say so, not what it broke
            raise OSError(f"timed out: {deadline.received:,} bytes in {timeout:g} s, the deadline "
                          "for one file (headers and body together)") from None
        raise
    finally:
        deadline.cancel()
    return size, digest.hexdigest()


def _copy_body(opener, url, out, digest, known_size, timeout, deadline):
    """The body of ``url`` into ``out`` and ``digest``; returns its length in bytes."""
    size = 0
    with opener.open(url, timeout=min(timeout, READ_TIMEOUT)) as response:
        announced = response.headers.get("Content-Length")
        limit = known_size if known_size is not None else (
            int(announced) if announced is not None and announced.isdigit() else MAX_BYTES)
        if announced is not None and announced.isdigit() and int(announced) > limit:
            raise OSError(f"the server announces {int(announced):,} bytes; the file has {limit:,}")
        while True:
            # read1: at most one wait for the network, so the deadline is checked between waits
            chunk = response.read1(CHUNK_SIZE)
            if not chunk:
                break
            size += len(chunk)
            deadline.received = size
            if size > limit:
                raise OSError(f"more than {limit:,} bytes received, the size of the file; "
                              "given up")
            if deadline.expired:
                raise OSError("the deadline passed")     # reworded by _stream
            out.write(chunk)
            digest.update(chunk)
    # http.client may return a short body without complaint when the connection drops
    if announced is not None and announced.isdigit() and size != int(announced):
        raise OSError(f"connection closed after {size:,} of {int(announced):,} bytes")
    if deadline.expired:          # the timer's shutdown can look like the end of the body
        raise OSError("the deadline passed")
    return size
