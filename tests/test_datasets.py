"""Tests of minivae.data.datasets: the embedded subset, and the loaders on directories of IDX files."""
import hashlib
import os

import numpy as np
import pytest

from idx_files import ALL_FILES, fake_mnist, write_fake_mnist
from minivae.data import datasets

MNIST_SUBSET_COUNTS = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]  # digits 0-9


# ---------------------------------------------------------------------------
# the embedded subset
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def embedded():
    return datasets.load_mnist()


def test_embedded_subset_splits_into_9000_training_and_1000_test_images(embedded):
    assert embedded.train.x.shape == (9000, 784) and embedded.train.y.shape == (9000,)
    assert embedded.test.x.shape == (1000, 784) and embedded.test.y.shape == (1000,)
    for split in (embedded.train, embedded.test):
        assert split.x.dtype == np.float32
        assert split.y.dtype == np.int64
    assert embedded.name == "mnist"


def test_embedded_images_are_bytes_divided_by_255(embedded):
    x = embedded.train.x
    assert x.min() == 0.0 and x.max() == 1.0
    # every grey level is k / 255 for an integer k: the bytes are recovered exactly
    k = x * 255
    np.testing.assert_allclose(k, np.round(k), atol=1e-4)


def test_every_digit_appears_in_both_embedded_splits(embedded):
    assert set(embedded.train.y) == set(range(10))
    assert set(embedded.test.y) == set(range(10))


def test_embedded_split_is_the_same_for_a_seed_and_differs_for_another(embedded):
    again = datasets.load_mnist(seed=0)
    assert np.array_equal(again.train.x, embedded.train.x)
    assert np.array_equal(again.test.y, embedded.test.y)
    other = datasets.load_mnist(seed=1)
    assert not np.array_equal(other.test.x, embedded.test.x)


def test_embedded_splits_together_hold_every_image_of_the_file_exactly_once(embedded):
    # MNIST may hold duplicate images, so compare multisets of (image, label) rows with the
    # file itself: equal multisets of 10,000 rows each mean no image is in both splits
    with np.load(datasets.EMBEDDED_PATH, allow_pickle=False) as archive:
        file_rows = np.column_stack([archive["x"], archive["y"]])
    x = np.concatenate([embedded.train.x, embedded.test.x])
    y = np.concatenate([embedded.train.y, embedded.test.y])
    split_rows = np.column_stack([np.round(x * 255).astype(np.uint8), y.astype(np.uint8)])
    assert sorted(map(bytes, split_rows)) == sorted(map(bytes, file_rows))
    assert np.bincount(y).tolist() == MNIST_SUBSET_COUNTS


@pytest.mark.parametrize("test_size", [1, 2500, 9999])
def test_test_size_sets_the_sizes_of_the_embedded_splits(test_size):
    data = datasets.load_mnist(test_size=test_size)
    assert len(data.test.x) == len(data.test.y) == test_size
    assert len(data.train.x) == len(data.train.y) == 10000 - test_size


@pytest.mark.parametrize("test_size, error", [(0, ValueError), (10000, ValueError), (-5, ValueError),
                                              (2.5, ValueError), (True, TypeError), ("1000", TypeError)])
def test_test_size_outside_1_to_9999_is_rejected(test_size, error):
    with pytest.raises(error, match="test_size must be"):
        datasets.load_mnist(test_size=test_size)


@pytest.mark.parametrize("seed, error", [(-1, ValueError), (1.5, ValueError), (True, TypeError),
                                         ("0", TypeError)])
def test_seed_of_the_embedded_split_must_be_an_integer_at_least_0(seed, error):
    with pytest.raises(error, match="seed must be an integer >= 0"):
        datasets.load_mnist(seed=seed)


def test_embedded_file_matches_the_sha256_given_in_its_readme():
    with open(datasets.EMBEDDED_PATH, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == datasets.EMBEDDED_SHA256
    readme = os.path.join(os.path.dirname(datasets.EMBEDDED_PATH), "README.md")
    with open(readme, encoding="utf-8") as f:
        assert datasets.EMBEDDED_SHA256 in f.read()


def test_download_without_a_directory_is_rejected():
    with pytest.raises(ValueError, match="directory"):
        datasets.load_mnist(download=True)


# ---------------------------------------------------------------------------
# the loaders on IDX directories
# ---------------------------------------------------------------------------

def test_load_mnist_reads_the_official_split_from_idx_files(tmp_path):
    arrays = fake_mnist(n_train=30, n_test=10)
    write_fake_mnist(tmp_path, arrays, gz=True)
    data = datasets.load_mnist(tmp_path)
    assert data.train.x.shape == (30, 784) and data.test.x.shape == (10, 784)
    assert data.train.x.dtype == np.float32 and data.test.y.dtype == np.int64
    np.testing.assert_array_equal(data.train.x,
                                  arrays["train-images-idx3-ubyte"].reshape(30, 784) / np.float32(255))
    np.testing.assert_array_equal(data.test.y, arrays["t10k-labels-idx1-ubyte"])


@pytest.mark.parametrize("options", [dict(test_size=500), dict(seed=3), dict(test_size=2000, seed=1)])
def test_a_split_option_with_idx_files_is_refused_not_ignored(tmp_path, options):
    write_fake_mnist(tmp_path, fake_mnist(n_train=30, n_test=10), gz=True)
    with pytest.raises(ValueError, match="official 60,000 / 10,000 split"):
        datasets.load_mnist(tmp_path, **options)
    assert len(datasets.load_mnist(tmp_path, test_size=1000, seed=0).test.x) == 10   # the defaults


def test_plain_and_gzipped_idx_files_give_the_same_data(tmp_path):
    arrays = fake_mnist()
    (tmp_path / "gz").mkdir()
    (tmp_path / "plain").mkdir()
    write_fake_mnist(tmp_path / "gz", arrays, gz=True)
    write_fake_mnist(tmp_path / "plain", arrays, gz=False)
    a, b = datasets.load_mnist(tmp_path / "gz"), datasets.load_mnist(tmp_path / "plain")
    assert np.array_equal(a.train.x, b.train.x) and np.array_equal(a.test.y, b.test.y)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_files_named_with_a_dot_before_the_format_are_found(tmp_path, gz):
    # many unpacked copies of MNIST are named train-images.idx3-ubyte, not train-images-idx3-ubyte
    arrays = fake_mnist(n_train=12, n_test=5)
    write_fake_mnist(tmp_path, arrays, gz=gz)
    for path in tmp_path.iterdir():
        path.rename(tmp_path / path.name.replace("-idx", ".idx"))
    assert sorted(p.name for p in tmp_path.iterdir())[0] == "t10k-images.idx3-ubyte" + (".gz" if gz else "")
    data = datasets.load_mnist(tmp_path)
    np.testing.assert_array_equal(data.test.y, arrays["t10k-labels-idx1-ubyte"])
    assert data.train.x.shape == (12, 784)


def test_load_fashion_mnist_reads_the_same_file_names(tmp_path):
    write_fake_mnist(tmp_path, fake_mnist(n_train=12, n_test=5))
    data = datasets.load_fashion_mnist(tmp_path)
    assert data.name == "fashion-mnist"
    assert data.train.x.shape == (12, 784) and data.test.x.shape == (5, 784)


def test_mismatched_image_and_label_counts_are_rejected(tmp_path):
    arrays = fake_mnist(n_train=30, n_test=10)
    arrays["t10k-labels-idx1-ubyte"] = arrays["t10k-labels-idx1-ubyte"][:9]
    write_fake_mnist(tmp_path, arrays)
    with pytest.raises(ValueError, match="10 images but .* 9 labels"):
        datasets.load_mnist(tmp_path)


@pytest.mark.parametrize("labels, match", [
    (np.array([0, 3, 10] * 10, np.uint8), r"labels must be 0-9 \(ten classes\), got values up to 10"),
    (np.array([0, 255] * 15, np.uint8), r"labels must be 0-9"),
    (np.array([0.0, np.nan] * 15, np.float32), r"expected uint8 labels \(IDX type 0x08\), got float32"),
    (np.arange(30, dtype=np.int32), r"expected uint8 labels"),
])
def test_labels_that_are_not_digits_0_to_9_are_rejected(tmp_path, labels, match):
    arrays = fake_mnist(n_train=30)
    arrays["train-labels-idx1-ubyte"] = labels
    write_fake_mnist(tmp_path, arrays)
    with pytest.raises(ValueError, match=match):
        datasets.load_mnist(tmp_path)


def test_images_that_are_not_28_by_28_are_rejected(tmp_path):
    arrays = fake_mnist()
    arrays["train-images-idx3-ubyte"] = arrays["train-images-idx3-ubyte"][:, :27, :]
    write_fake_mnist(tmp_path, arrays)
    with pytest.raises(ValueError, match=r"\(N, 28, 28\), got \(30, 27, 28\)"):
        datasets.load_mnist(tmp_path)


def test_a_missing_directory_names_the_expected_files_and_suggests_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist") as error:
        datasets.load_mnist(tmp_path / "nowhere")
    message = str(error.value)
    assert all(name in message for name in ALL_FILES) and "download=True" in message


def test_missing_idx_files_are_listed_and_download_suggested(tmp_path):
    arrays = fake_mnist()
    del arrays["t10k-images-idx3-ubyte"], arrays["train-labels-idx1-ubyte"]
    write_fake_mnist(tmp_path, arrays)
    with pytest.raises(FileNotFoundError, match="2 of the 4") as error:
        datasets.load_mnist(tmp_path)
    message = str(error.value)
    assert "t10k-images-idx3-ubyte" in message and "train-labels-idx1-ubyte" in message
    assert "t10k-labels-idx1-ubyte" not in message and "download=True" in message
