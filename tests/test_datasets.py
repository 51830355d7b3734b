"""Tests of minivae.datasets: the embedded subset, the IDX reader, checked downloads, binarisation.

The download tests run a small HTTP server on 127.0.0.1 inside the test process and serve
IDX files generated here; nothing touches the internet.
"""
import gzip
import hashlib
import http.server
import os
import socket
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minivae import datasets

MNIST_SUBSET_COUNTS = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]  # digits 0-9
ALL_FILES = ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
             "train-images-idx3-ubyte", "train-labels-idx1-ubyte"]
GZ_FILES = [name + ".gz" for name in ALL_FILES]


# ---------------------------------------------------------------------------
# helpers: IDX files written by hand, independently of the reader under test
# ---------------------------------------------------------------------------

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
    for name, array in arrays.items():
        content = idx_bytes(array)
        write(root / (name + ".gz" if gz else name), gzip.compress(content) if gz else content)


def md5(content):
    return hashlib.md5(content).hexdigest()


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
# the IDX reader
# ---------------------------------------------------------------------------

@given(shape=st.lists(st.integers(0, 5), min_size=1, max_size=4),
       dtype=st.sampled_from(sorted(TYPE_CODES, key=lambda t: t.__name__)),
       gz=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_read_idx_round_trips_small_arrays_plain_and_gzipped(tmp_path_factory, shape, dtype, gz, seed):
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        array = rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)
    else:
        array = rng.standard_normal(shape).astype(dtype)
    content = idx_bytes(array)
    path = write(tmp_path_factory.mktemp("idx") / "file", gzip.compress(content) if gz else content)
    back = datasets.read_idx(path)
    assert back.shape == array.shape
    assert back.dtype == np.dtype(dtype)          # native byte order, as a student expects
    assert np.array_equal(back, array)


def test_gzip_is_recognised_by_its_magic_bytes_not_by_the_file_name(tmp_path):
    labels = np.arange(7, dtype=np.uint8)
    gzipped_without_suffix = write(tmp_path / "labels", gzip.compress(idx_bytes(labels)))
    plain_with_suffix = write(tmp_path / "labels.gz", idx_bytes(labels))
    assert np.array_equal(datasets.read_idx(gzipped_without_suffix), labels)
    assert np.array_equal(datasets.read_idx(plain_with_suffix), labels)


# a (3, 2, 2) uint8 file: 4 magic bytes + 3 sizes of 4 bytes = 16-byte header, then 12 bytes
@pytest.mark.parametrize("length", [0, 1, 3, 4, 9, 15, 16, 17, 27])
@pytest.mark.parametrize("gz", [False, True])
def test_truncated_idx_file_is_rejected(tmp_path, length, gz):
    content = idx_bytes(np.ones((3, 2, 2), dtype=np.uint8))[:length]
    path = write(tmp_path / "cut", gzip.compress(content) if gz else content)
    with pytest.raises(ValueError, match="cut") as error:
        datasets.read_idx(path)
    if length >= 16:      # the header is whole: the message gives the expected and found data bytes
        assert "expected 12 bytes" in str(error.value)
        assert f"found {length - 16}" in str(error.value)


def test_trailing_bytes_after_the_idx_data_are_rejected(tmp_path):
    path = write(tmp_path / "long", idx_bytes(np.ones((3, 4), dtype=np.uint8)) + b"\x00\x00")
    with pytest.raises(ValueError, match="trailing bytes.*expected 12 bytes.*found 14"):
        datasets.read_idx(path)


@pytest.mark.parametrize("header, reason", [
    (b"\x01\x00\x08\x01", "first two bytes"),    # byte 0 must be zero
    (b"\x00\x07\x08\x01", "first two bytes"),    # byte 1 must be zero
    (b"\x00\x00\x07\x01", "type code"),           # 0x07 is no IDX type
    (b"\x00\x00\x08\x00", "0 dimensions"),
    (b"PK\x03\x04", "first two bytes"),           # a zip file, say
])
def test_a_wrong_idx_header_is_rejected(tmp_path, header, reason):
    path = write(tmp_path / "bad", header + (5).to_bytes(4, "big") + bytes(5))
    with pytest.raises(ValueError, match=reason):
        datasets.read_idx(path)


@pytest.mark.parametrize("damage", ["flipped byte", "cut short", "garbage after magic"])
def test_a_corrupt_gzip_stream_is_a_value_error(tmp_path, damage):
    packed = bytearray(gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8))))
    if damage == "flipped byte":
        packed[len(packed) // 2] ^= 0xFF
    elif damage == "cut short":
        packed = packed[:len(packed) - 12]
    else:
        packed = b"\x1f\x8b" + bytes(range(40))
    path = write(tmp_path / "broken.gz", bytes(packed))
    with pytest.raises(ValueError, match="broken.gz: corrupt gzip"):
        datasets.read_idx(path)


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


# ---------------------------------------------------------------------------
# downloads, from a local HTTP server
# ---------------------------------------------------------------------------

class LocalServer:
    """Serves ``routes[path] = (body, content_length)`` on 127.0.0.1; logs every request path."""

    def __init__(self):
        self.routes, self.requests = {}, []
        routes, requests = self.routes, self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                requests.append(self.path)
                if self.path not in routes:
                    self.send_error(404)
                    return
                body, length = routes[self.path]
                self.send_response(200)
                self.send_header("Content-Length", str(length))
                self.end_headers()
                self.wfile.write(body)   # if length > len(body), the client sees the connection drop

            def log_message(self, *args):     # keep the test output clean
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def mirror(self, name, files, kind="good"):
        """Serve every file of ``files`` ({name: bytes}) under /name/, intact or damaged."""
        for file, body in files.items():
            if kind == "good":
                self.routes[f"/{name}/{file}"] = (body, len(body))
            elif kind == "corrupt":                        # same length, one byte changed
                damaged = bytearray(body)
                damaged[len(damaged) // 2] ^= 0xFF
                self.routes[f"/{name}/{file}"] = (bytes(damaged), len(body))
            elif kind == "truncated":                      # the connection drops half way
                self.routes[f"/{name}/{file}"] = (body[:len(body) // 2], len(body))
            # kind == "missing": no route, so every file is a 404
        return f"{self.base}/{name}/"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def server(monkeypatch):
    # a proxy configured in the environment must not intercept requests to 127.0.0.1
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")
    local = LocalServer()
    yield local
    local.close()


@pytest.fixture
def refused_url():
    """A URL nobody listens on: bind a free port, then release it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture
def served():
    """Gzipped IDX files of a small fake MNIST, and their checksum table."""
    arrays = fake_mnist(n_train=20, n_test=8)
    files = {name + ".gz": gzip.compress(idx_bytes(array)) for name, array in arrays.items()}
    return arrays, files, {name: md5(body) for name, body in files.items()}


def test_download_fetches_every_file_and_load_mnist_reads_them(server, served, tmp_path, monkeypatch):
    arrays, files, table = served
    monkeypatch.setattr(datasets, "MNIST_FILES", table)
    good = server.mirror("good", files)
    data = datasets.load_mnist(tmp_path / "mnist", download=True, mirrors=[good])
    assert sorted(os.listdir(tmp_path / "mnist")) == GZ_FILES
    assert len(server.requests) == 4
    np.testing.assert_array_equal(data.test.y, arrays["t10k-labels-idx1-ubyte"])
    assert data.train.x.shape == (20, 784)


@pytest.mark.parametrize("kind", ["corrupt", "missing", "truncated", "refused"])
def test_a_bad_first_mirror_is_skipped_for_the_second(server, served, tmp_path, refused_url, kind):
    _, files, table = served
    bad = refused_url if kind == "refused" else server.mirror("bad", files, kind)
    good = server.mirror("good", files)
    paths = datasets.download_files(tmp_path, table, [bad, good], progress=False)
    # every file came from the good mirror, intact, and no temporary file is left over
    assert sorted(os.listdir(tmp_path)) == GZ_FILES
    for path in paths:
        with open(path, "rb") as f:
            assert md5(f.read()) == table[os.path.basename(path)]
    assert sum(r.startswith("/good/") for r in server.requests) == 4


def test_all_mirrors_failing_is_an_error_naming_each_mirror_and_leaves_no_file(
        server, served, tmp_path, refused_url):
    _, files, table = served
    mirrors = [server.mirror("corrupt", files, "corrupt"), server.mirror("missing", files, "missing"),
               server.mirror("truncated", files, "truncated"), refused_url]
    with pytest.raises(datasets.DownloadError) as error:
        datasets.download_files(tmp_path, table, mirrors, progress=False)
    message = str(error.value)
    assert "tried 4 mirror(s)" in message
    assert all(mirror in message for mirror in mirrors)
    assert "md5 mismatch" in message                  # the corrupt mirror
    assert "404" in message                           # the missing one
    assert "connection closed after" in message       # the truncated one
    assert os.listdir(tmp_path) == []


def test_files_already_present_with_the_right_checksum_are_not_downloaded_again(
        server, served, tmp_path):
    _, files, table = served
    good = server.mirror("good", files)
    datasets.download_files(tmp_path, table, [good], progress=False)
    assert len(server.requests) == 4
    datasets.download_files(tmp_path, table, [good], progress=False)
    assert len(server.requests) == 4


def test_a_present_file_with_the_wrong_checksum_is_downloaded_again(server, served, tmp_path):
    _, files, table = served
    write(tmp_path / "t10k-labels-idx1-ubyte.gz", b"not the file")
    for name in GZ_FILES:
        if name != "t10k-labels-idx1-ubyte.gz":
            write(tmp_path / name, files[name])
    good = server.mirror("good", files)
    datasets.download_files(tmp_path, table, [good], progress=False)
    assert server.requests == ["/good/t10k-labels-idx1-ubyte.gz"]
    with open(tmp_path / "t10k-labels-idx1-ubyte.gz", "rb") as f:
        assert f.read() == files["t10k-labels-idx1-ubyte.gz"]


def test_unpacked_idx_files_count_as_present_when_loading_with_download(tmp_path, refused_url):
    write_fake_mnist(tmp_path, fake_mnist(), gz=False)
    # the only mirror refuses every connection: any download attempt would raise
    data = datasets.load_mnist(tmp_path, download=True, mirrors=[refused_url])
    assert data.train.x.shape == (30, 784)


def test_sha256_checksums_work_in_place_of_md5(server, served, tmp_path):
    _, files, _ = served
    table = {name: hashlib.sha256(body).hexdigest() for name, body in files.items()}
    datasets.download_files(tmp_path, table, [server.mirror("good", files)], progress=False)
    assert sorted(os.listdir(tmp_path)) == GZ_FILES


def test_a_checksum_that_is_neither_md5_nor_sha256_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="32 \\(MD5\\) or 64 \\(SHA-256\\) hex digits"):
        datasets.download_files(tmp_path, {"x.gz": "abc"}, ["http://127.0.0.1:9/"])


@pytest.mark.parametrize("download, table", [
    (datasets.download_mnist, datasets.MNIST_FILES),
    (datasets.download_fashion_mnist, datasets.FASHION_MNIST_FILES),
])
def test_download_helpers_check_against_the_published_checksums(server, served, tmp_path,
                                                                download, table):
    # the locally served fake files cannot have the official checksums: the error shows
    # which checksum the helper expected
    _, files, _ = served
    with pytest.raises(datasets.DownloadError) as error:
        download(tmp_path, mirrors=[server.mirror("good", files)], progress=False)
    assert table["train-images-idx3-ubyte.gz"] in str(error.value)
    assert os.listdir(tmp_path) == []


def test_progress_lines_name_the_file_the_mirror_and_the_bytes(server, served, tmp_path, capsys):
    _, files, table = served
    good = server.mirror("good", files)
    datasets.download_files(tmp_path, table, [good], progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""                          # progress goes to stderr only
    size = len(files["train-images-idx3-ubyte.gz"])
    assert f"{good}train-images-idx3-ubyte.gz" in captured.err
    assert f"train-images-idx3-ubyte.gz: {size:,} bytes, md5 ok" in captured.err


# ---------------------------------------------------------------------------
# preprocessing
# ---------------------------------------------------------------------------

def test_bernoulli_binarize_averages_to_the_grey_levels():
    x = np.linspace(0, 1, 101, dtype=np.float32)
    K = 4000
    draws = datasets.bernoulli_binarize(np.broadcast_to(x, (K, x.size)), np.random.default_rng(0))
    mean = draws.mean(axis=0, dtype=np.float64)
    # each column mean is an average of K Bernoulli(x) draws: standard error sqrt(x(1-x)/K),
    # at most 0.0079 here.  Five standard errors: a correct sampler exceeds it with
    # probability about 6e-7 per column (and the seed is fixed); P(1) = x^2 or 1 - x
    # would miss by far more.  At x = 0 and x = 1 the draws are exact.
    tolerance = 5 * np.sqrt(x * (1 - x) / K)
    assert np.all(np.abs(mean - x) <= tolerance), np.max(np.abs(mean - x) - tolerance)
    assert mean[0] == 0.0 and mean[-1] == 1.0


@given(shape=st.lists(st.integers(0, 6), min_size=1, max_size=3), seed=st.integers(0, 2**32 - 1))
def test_bernoulli_binarize_gives_float32_zeros_and_ones(shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=shape)
    b = datasets.bernoulli_binarize(x, rng)
    assert b.dtype == np.float32 and b.shape == x.shape
    assert np.all((b == 0) | (b == 1))


def test_bernoulli_binarize_is_reproducible_and_writes_into_out():
    x = np.random.default_rng(1).uniform(size=(5, 7)).astype(np.float32)
    first = datasets.bernoulli_binarize(x, np.random.default_rng(2))
    out = np.full(x.shape, 7.0, dtype=np.float32)
    second = datasets.bernoulli_binarize(x, np.random.default_rng(2), out=out)
    assert second is out
    assert np.array_equal(first, second)


def test_bernoulli_binarize_without_the_value_scan_draws_the_same_and_still_checks_the_dtype():
    x = np.random.default_rng(1).uniform(size=(5, 7)).astype(np.float32)
    checked = datasets.bernoulli_binarize(x, np.random.default_rng(2))
    unchecked = datasets.bernoulli_binarize(x, np.random.default_rng(2), check=False)
    assert np.array_equal(checked, unchecked)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        datasets.bernoulli_binarize(x * 255, np.random.default_rng(2))
    with pytest.raises(ValueError, match="float array, got dtype uint8"):
        datasets.bernoulli_binarize((x * 255).astype(np.uint8), np.random.default_rng(2), check=False)


def test_bernoulli_binarize_rejects_an_unusable_out_buffer():
    x = np.full((4, 6), 0.5)
    with pytest.raises(ValueError, match="out"):
        datasets.bernoulli_binarize(x, np.random.default_rng(0), out=np.empty((4, 6)))  # float64
    with pytest.raises(ValueError, match="out"):
        datasets.bernoulli_binarize(x, np.random.default_rng(0), out=np.empty((6, 4), np.float32))


@pytest.mark.parametrize("binarize", [
    lambda x: datasets.bernoulli_binarize(x, np.random.default_rng(0)),
    lambda x: datasets.threshold_binarize(x),
], ids=["bernoulli", "threshold"])
@pytest.mark.parametrize("bad", [-0.1, 1.1, np.nan])
def test_binarize_rejects_values_outside_the_unit_interval(binarize, bad):
    x = np.array([[0.0, 0.5, bad]])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        binarize(x)


def test_binarize_rejects_raw_bytes_and_points_to_to_unit_interval():
    with pytest.raises(ValueError, match="to_unit_interval"):
        datasets.bernoulli_binarize(np.array([0, 128, 255], np.uint8), np.random.default_rng(0))


def test_threshold_binarize_is_one_exactly_above_the_threshold():
    x = np.array([0.0, 0.3, 0.5, 0.5001, 1.0])
    assert datasets.threshold_binarize(x).tolist() == [0, 0, 0, 1, 1]
    assert datasets.threshold_binarize(x, 0.25).tolist() == [0, 1, 1, 1, 1]
    assert datasets.threshold_binarize(x).dtype == np.float32


def test_to_unit_interval_maps_byte_k_to_k_over_255():
    x = datasets.to_unit_interval(np.arange(256, dtype=np.uint8))
    assert x.dtype == np.float32
    assert x[0] == 0.0 and x[255] == 1.0
    np.testing.assert_allclose(x, np.arange(256) / 255, rtol=1e-6)


def test_to_unit_interval_rejects_data_that_is_not_uint8():
    # dividing grey levels that are already in [0, 1] by 255 again would be a silent bug
    with pytest.raises(ValueError, match="uint8"):
        datasets.to_unit_interval(np.array([0.0, 0.5, 1.0]))
