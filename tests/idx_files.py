"""IDX files written by hand, independently of the reader under test (imported by test modules).

Shared by test_idx (the reader), test_datasets (the loaders) and test_download (the files a
local server serves).
"""
import gzip

import numpy as np

ALL_FILES = ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
             "train-images-idx3-ubyte", "train-labels-idx1-ubyte"]

TYPE_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C,
              np.float32: 0x0D, np.float64: 0x0E}


def idx_bytes(array):
    """00 00, type code, number of dims, each size as 4 big-endian bytes, big-endian values."""
    array = np.asarray(array)
    header = bytes([0, 0, TYPE_CODES[array.dtype.type], array.ndim])
    sizes = b"".join(size.to_bytes(4, "big") for size in array.shape)
    return header + sizes + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write(path, content):
    with open(path, "wb") as f:
        f.write(content)
    return str(path)


def fake_mnist(n_train=30, n_test=10, seed=0):
    """Small random IDX contents with MNIST's file names: {name: array}."""
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def write_fake_mnist(root, arrays, gz=True):
    """Write ``arrays`` ({name: array}) into ``root`` as IDX files, gzipped (name.gz) or plain."""
    for name, array in arrays.items():
        content = idx_bytes(array)
        write(root / (name + ".gz" if gz else name), gzip.compress(content) if gz else content)
