"""Data for the VAE: the containers, and the loaders of MNIST and Fashion-MNIST.

Top to bottom:

1. the containers ``Split(x, y)`` and ``Dataset(train, test, name, source)``;
2. the loaders.  ``load_mnist()`` with no arguments gives the 10,000-image
   MNIST subset shipped in ``minivae/data/`` (no network needed), shuffled
   with a fixed seed and split into 9,000 training and 1,000 test images.
   ``load_mnist(DIR)`` reads full MNIST (the official 60,000 / 10,000 split)
   from the four IDX files in DIR; ``load_fashion_mnist(DIR)`` does the same
   for Fashion-MNIST, whose files have the same names.

Every loader returns images as float32 rows of grey levels in [0, 1], shape
(N, 784) (a 28x28 image read row by row, the x the VAE sees), and labels as
int64, shape (N,).  The labels are not used by the VAE; they colour the
latent scatter plot.  The images are grey levels, not yet binary: the
binarisation the Bernoulli likelihood needs is in :mod:`minivae.data.preprocessing`.

The layers below: :mod:`minivae.data.idx` reads the files, :mod:`minivae.data.download`
fetches them (and holds their checksums and mirrors), :mod:`minivae.data.preprocessing`
turns bytes into grey levels.
"""
import os
from dataclasses import dataclass

import numpy as np

from minivae.utils.validation import check_count, check_path
from minivae.data.download import (DEFAULT_TIMEOUT, FASHION_MNIST_FILES, FASHION_MNIST_MIRRORS,
                              FASHION_MNIST_SIZES, MNIST_FILES, MNIST_MIRRORS, MNIST_SIZES,
                              download_files)
from minivae.data.idx import read_idx
from minivae.data.preprocessing import to_unit_interval

IMAGE_SHAPE = (28, 28)
N_PIXELS = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]     # 784

# the embedded subset: the first 10,000 images of the MNIST training split, sorted by label
# (see minivae/data/README.md for its provenance and licence)
EMBEDDED_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mnist_subset.npz")
EMBEDDED_SIZE = 10000
EMBEDDED_SHA256 = "f5c5d9d75a48e7ea9a81b7ff155b21051e8b9511eab90f5078cf59216e4d0a8f"

# The four IDX files of MNIST and Fashion-MNIST (same names for both), as (images, labels)
# pairs; the downloads fetch them gzipped (the .gz names in minivae.data.download's tables)
TRAIN_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
TEST_FILES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


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

def load_mnist(root=None, *, download=False, mirrors=None, timeout=DEFAULT_TIMEOUT, test_size=1000,
               seed=0):
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
        ``t10k-labels-idx1-ubyte`` in it (each plain or gzipped, ``.gz``; also found
        with a dot before the format, ``train-images.idx3-ubyte``),
        with the official split: 60,000 training and 10,000 test images.
    download : bool
        With ``root``: first download the files that are missing from it
        (see :func:`minivae.data.download.download_mnist`).
    mirrors : list of str, optional
        Base URLs for the download; default :data:`minivae.data.download.MNIST_MIRRORS`.
    timeout : float
        Seconds each downloaded file may take as a whole (default 120).
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
            raise ValueError("root must be a directory to download into when download=True, got None "
                             "(load_mnist(root=DIR, download=True))")
        return _load_embedded(test_size, seed)
    if (test_size, seed) != (1000, 0):
        raise ValueError(f"test_size and seed must be left at 1000 and 0 with root (they choose the "
                         f"split of the embedded subset; the IDX files in {root} come with the "
                         f"official 60,000 / 10,000 split), got test_size={test_size!r}, seed={seed!r}")
    return _load_idx_directory(root, "mnist", download, MNIST_FILES, MNIST_SIZES,
                               MNIST_MIRRORS if mirrors is None else mirrors, timeout)


def load_fashion_mnist(root, *, download=False, mirrors=None, timeout=DEFAULT_TIMEOUT):
    """Load Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017) from the IDX files in ``root``.

    The files have the same names and format as MNIST's (see :func:`load_mnist`);
    the split is the official one, 60,000 training and 10,000 test images.
    With ``download=True`` the missing files are first fetched from ``mirrors``
    (default :data:`minivae.data.download.FASHION_MNIST_MIRRORS`) and checked
    against :data:`minivae.data.download.FASHION_MNIST_FILES`; each file may take
    ``timeout`` seconds as a whole.

    Returns
    -------
    Dataset
        As :func:`load_mnist`; the labels 0-9 are T-shirt/top, trouser,
        pullover, dress, coat, sandal, shirt, sneaker, bag, ankle boot.
    """
    return _load_idx_directory(root, "fashion-mnist", download, FASHION_MNIST_FILES,
                               FASHION_MNIST_SIZES,
                               FASHION_MNIST_MIRRORS if mirrors is None else mirrors, timeout)


def _load_embedded(test_size, seed):
    """The embedded subset, shuffled by ``seed`` and split into train and test."""
    test_size = check_count(test_size, "test_size")
    if test_size >= EMBEDDED_SIZE:
        raise ValueError(f"test_size must be smaller than {EMBEDDED_SIZE} (the embedded subset has "
                         f"{EMBEDDED_SIZE} images and the training split needs some), got {test_size}")
    seed = check_count(seed, "seed", low=0)
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
    """Path of ``name`` in ``root``, plain or gzipped (the plain one if both exist), or None.

    Also found under the name many unpacked copies carry, with a dot before the format
    (``train-images.idx3-ubyte``).
    """
    dotted = name.replace("-idx", ".idx")
    for candidate in (name, name + ".gz", dotted, dotted + ".gz"):
        path = os.path.join(root, candidate)
        if os.path.isfile(path):
            return path
    return None


def _load_idx_directory(root, name, download, files, sizes, mirrors, timeout):
    """Read the four IDX files of ``name`` from ``root``, downloading missing ones if asked."""
    root = check_path(root, "root")
    wanted = TRAIN_FILES + TEST_FILES
    if download:
        # a plain (already unpacked) file counts as present: its checksum is unknown,
        # since the published ones are of the .gz files, so it is trusted as it is
        missing = {gz: digest for gz, digest in files.items()
                   if not os.path.isfile(os.path.join(root, gz[:-len(".gz")]))}
        download_files(root, missing, mirrors, sizes=sizes, timeout=timeout)
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
    if labels.dtype != np.uint8:
        raise ValueError(f"{labels_path}: expected uint8 labels (IDX type 0x08), got {labels.dtype}")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{labels_path}: labels must be 0-9 (ten classes), got values up to "
                         f"{labels.max()}")
    if len(images) != len(labels):
        raise ValueError(f"{images_path} holds {len(images)} images but {labels_path} holds "
                         f"{len(labels)} labels; the two files must come from the same split")
    x = to_unit_interval(images.reshape(len(images), N_PIXELS))
    return Split(x, labels.astype(np.int64))
