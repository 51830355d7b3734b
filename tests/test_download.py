"""Tests of minivae.data.download: checked downloads from mirrors, and load_mnist(download=True).

The download tests run a small HTTP server on 127.0.0.1 inside the test process and serve
IDX files generated here; nothing touches the internet.
"""
import gzip
import hashlib
import http.server
import os
import socket
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from idx_files import ALL_FILES, fake_mnist, idx_bytes, write, write_fake_mnist
from minivae.data import datasets, download

GZ_FILES = [name + ".gz" for name in ALL_FILES]


def md5(content):
    return hashlib.md5(content).hexdigest()


class LocalServer:
    """Serves ``routes[path] = (body, content_length)`` on 127.0.0.1; logs every request path."""

    def __init__(self):
        self.routes, self.requests, self.streams = {}, [], {}
        routes, requests, streams = self.routes, self.requests, self.streams

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                requests.append(self.path)
                if self.path in streams:          # (chunks, seconds between them, length or None)
                    chunks, pause, length = streams[self.path]
                    self.send_response(200)
                    if length is not None:
                        self.send_header("Content-Length", str(length))
                    self.end_headers()
                    try:
                        for chunk in chunks():
                            self.wfile.write(chunk)
                            self.wfile.flush()
                            time.sleep(pause)
                    except OSError:               # the client gave up: what the tests want
                        pass
                    return
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
    paths = download.download_files(tmp_path, table, [bad, good], progress=False)
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
    with pytest.raises(download.DownloadError) as error:
        download.download_files(tmp_path, table, mirrors, progress=False)
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
    download.download_files(tmp_path, table, [good], progress=False)
    assert len(server.requests) == 4
    download.download_files(tmp_path, table, [good], progress=False)
    assert len(server.requests) == 4


def test_a_present_file_with_the_wrong_checksum_is_downloaded_again(server, served, tmp_path):
    _, files, table = served
    write(tmp_path / "t10k-labels-idx1-ubyte.gz", b"not the file")
    for name in GZ_FILES:
        if name != "t10k-labels-idx1-ubyte.gz":
            write(tmp_path / name, files[name])
    good = server.mirror("good", files)
    download.download_files(tmp_path, table, [good], progress=False)
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
    download.download_files(tmp_path, table, [server.mirror("good", files)], progress=False)
    assert sorted(os.listdir(tmp_path)) == GZ_FILES


def test_a_checksum_that_is_neither_md5_nor_sha256_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="32 \\(MD5\\) or 64 \\(SHA-256\\) hex digits"):
        download.download_files(tmp_path, {"x.gz": "abc"}, ["http://127.0.0.1:9/"])


@pytest.mark.parametrize("fetch, table", [
    (download.download_mnist, download.MNIST_FILES),
    (download.download_fashion_mnist, download.FASHION_MNIST_FILES),
])
def test_download_helpers_check_against_the_published_checksums(server, served, tmp_path,
                                                                fetch, table):
    # the locally served fake files cannot have the official checksums: the error shows
    # which checksum the helper expected
    _, files, _ = served
    with pytest.raises(download.DownloadError) as error:
        fetch(tmp_path, mirrors=[server.mirror("good", files)], progress=False)
    assert table["train-images-idx3-ubyte.gz"] in str(error.value)
    assert os.listdir(tmp_path) == []


def test_progress_lines_name_the_file_the_mirror_and_the_bytes(server, served, tmp_path, capsys):
    _, files, table = served
    good = server.mirror("good", files)
    download.download_files(tmp_path, table, [good], progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""                          # progress goes to stderr only
    size = len(files["train-images-idx3-ubyte.gz"])
    assert f"{good}train-images-idx3-ubyte.gz" in captured.err
    assert f"train-images-idx3-ubyte.gz: {size:,} bytes, md5 ok" in captured.err


@pytest.mark.parametrize("timeout, error", [(0, ValueError), (-1, ValueError), (np.inf, ValueError),
                                            ("30", TypeError), (None, TypeError)])
def test_a_timeout_that_is_not_a_positive_number_is_rejected_before_any_request(
        server, served, tmp_path, timeout, error):
    _, files, table = served
    with pytest.raises(error, match="timeout must be"):
        download.download_files(tmp_path, table, [server.mirror("good", files)], timeout=timeout,
                                progress=False)
    assert server.requests == []


@pytest.mark.parametrize("mirrors, error", [([], ValueError), ([3], TypeError), (None, TypeError),
                                            (["http://127.0.0.1:9/", b"bytes"], TypeError)])
def test_mirrors_must_be_a_non_empty_list_of_strings(tmp_path, mirrors, error):
    with pytest.raises(error, match="mirrors must be"):
        download.download_files(tmp_path, {"x.gz": "0" * 32}, mirrors, progress=False)


def forever(chunk):
    def chunks():
        while True:
            yield chunk
    return chunks


NAME = "train-images-idx3-ubyte.gz"


def test_a_server_dripping_one_byte_at_a_time_is_given_up_at_the_deadline(server, tmp_path):
    # each byte arrives well within any per-read timeout, so only a deadline for the whole
    # file ends this download
    server.streams[f"/drip/{NAME}"] = (forever(b"x"), 0.02, 10**6)
    tic = time.monotonic()
    with pytest.raises(download.DownloadError, match=r"timed out: .* bytes in 0.5 s, the deadline"):
        download.download_files(tmp_path, {NAME: "0" * 32}, [f"{server.base}/drip/"],
                                timeout=0.5, progress=False)
    assert time.monotonic() - tic < 5
    assert os.listdir(tmp_path) == []


def test_load_mnist_passes_its_timeout_to_the_download(server, tmp_path):
    server.streams[f"/drip/{NAME}"] = (forever(b"x"), 0.02, 10**6)
    with pytest.raises(download.DownloadError, match="timed out"):
        datasets.load_mnist(tmp_path, download=True, mirrors=[f"{server.base}/drip/"], timeout=0.3)
    assert os.listdir(tmp_path) == []


def test_an_endless_response_is_given_up_once_it_exceeds_the_known_size(server, tmp_path):
    server.streams[f"/endless/{NAME}"] = (forever(b"\0" * 65536), 0, None)   # no Content-Length
    with pytest.raises(download.DownloadError, match=r"more than 100,000 bytes received"):
        download.download_files(tmp_path, {NAME: "0" * 32}, [f"{server.base}/endless/"],
                                sizes={NAME: 100_000}, progress=False)
    assert os.listdir(tmp_path) == []


def test_an_announced_size_larger_than_the_known_one_is_refused_before_reading(server, tmp_path):
    server.streams[f"/big/{NAME}"] = (forever(b"\0" * 65536), 0, 2 * 10**9)
    with pytest.raises(download.DownloadError, match=r"announces 2,000,000,000 bytes; the file "
                                                     r"has 9,912,422"):
        download.download_files(tmp_path, {NAME: "0" * 32}, [f"{server.base}/big/"],
                                sizes=download.MNIST_SIZES, progress=False)
    assert os.listdir(tmp_path) == []


def test_the_size_tables_cover_every_file_of_the_checksum_tables():
    assert set(download.MNIST_SIZES) == set(download.MNIST_FILES)
    assert set(download.FASHION_MNIST_SIZES) == set(download.FASHION_MNIST_FILES)


CHILD = """
import sys
from minivae.data import download
download.download_files(sys.argv[1], {sys.argv[2]: "0" * 32}, [sys.argv[3]], timeout=60,
                        progress=False)
"""


def test_sigterm_during_a_download_leaves_no_part_file(server, tmp_path):
    server.streams[f"/drip/{NAME}"] = (forever(b"x" * 100), 0.05, 10**6)
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path), NAME,
                              f"{server.base}/drip/"], stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(200):                              # until the .part file exists
            if any(p.endswith(".part") for p in os.listdir(tmp_path)):
                break
            time.sleep(0.05)
        assert any(p.endswith(".part") for p in os.listdir(tmp_path)), "the download never began"
        child.send_signal(signal.SIGTERM)
        _, stderr = child.communicate(timeout=30)
    finally:
        child.kill()
    assert child.returncode != 0 and "KeyboardInterrupt" in stderr
    assert os.listdir(tmp_path) == []


def test_a_part_file_left_by_a_killed_download_is_removed_by_the_next_one(server, served, tmp_path):
    _, files, table = served
    stale = tmp_path / f".{NAME}.k1ll3d.part"           # what SIGKILL mid-download leaves
    stale.write_bytes(b"half")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    live = tmp_path / f".{NAME}.another-download.part"  # a download in progress elsewhere
    live.write_bytes(b"x")
    unrelated = tmp_path / ".notes.part"
    unrelated.write_bytes(b"mine")
    os.utime(unrelated, (old, old))
    download.download_files(tmp_path, table, [server.mirror("good", files)], progress=False)
    assert not stale.exists() and live.exists() and unrelated.exists()


class HostileServer:
    """A raw TCP server on 127.0.0.1 that answers every request with ``behaviour(send)``: it may
    drip a status line or headers, or send '100 Continue' forever.  Each connection's thread
    stops when the client hangs up, or after ``max_seconds`` at the latest."""

    def __init__(self, behaviour, pause=0.02, max_seconds=60):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.base = f"http://127.0.0.1:{self.listener.getsockname()[1]}/"
        self.behaviour, self.pause, self.max_seconds = behaviour, pause, max_seconds
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:                   # closed by close()
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        end = time.monotonic() + self.max_seconds
        with conn:
            conn.recv(65536)                  # the request; its content does not matter
            try:
                for piece in self.behaviour():
                    if time.monotonic() > end:
                        return
                    conn.sendall(piece)
                    time.sleep(self.pause)
            except OSError:                   # the client gave up: what the tests want
                pass

    def close(self):
        self.listener.close()


def drip_status_line():
    yield from (bytes([b]) for b in b"HTTP/1.1 200 OK\r\n")
    while True:
        yield b"X"                            # a header line that never ends


def drip_headers():
    yield b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n"
    while True:
        yield b"X-Slow: a\r\n"                # a header every pause, forever


def endless_continue():
    while True:
        yield b"HTTP/1.1 100 Continue\r\n\r\n"


@pytest.mark.parametrize("behaviour", [drip_status_line, drip_headers, endless_continue])
def test_one_deadline_covers_headers_and_body_together(monkeypatch, tmp_path, behaviour):
    # every byte arrives well within any per-read timeout: only the overall deadline ends these
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")
    hostile = HostileServer(behaviour)
    try:
        with pytest.raises(download.DownloadError,
                           match=r"timed out: 0 bytes in 0.4 s, the deadline for one file "
                                 r"\(headers and body together\)"):
            download.download_files(tmp_path, {NAME: "0" * 32}, [hostile.base], timeout=0.4,
                                    progress=False)
    finally:
        hostile.close()
    assert hostile.connections == 1
    assert os.listdir(tmp_path) == [], "a .part file was left behind"


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(files=["x.gz"]), TypeError, "files must be a dict of file names"),
    (dict(files={"../x.gz": "0" * 32}), TypeError, "files must be a dict of file names"),
    (dict(files={3: "0" * 32}), TypeError, "files must be a dict of file names"),
    (dict(sizes=[1]), TypeError, "sizes must be a dict"),
    (dict(sizes={NAME: -1}), ValueError, r"sizes\['train-images-idx3-ubyte.gz'\] must be a positive"),
    (dict(progress="yes"), TypeError, "progress must be True or False, got 'yes'"),
    (dict(root=3), TypeError, "root must be a path"),
])
def test_bad_arguments_are_refused_before_the_folder_is_made(tmp_path, refused_url, kwargs, error, match):
    arguments = dict(root=tmp_path / "new", files={NAME: "0" * 32}, mirrors=[refused_url])
    arguments.update(kwargs)
    with pytest.raises(error, match=match):
        download.download_files(arguments.pop("root"), arguments.pop("files"),
                                arguments.pop("mirrors"), **arguments)
    assert not (tmp_path / "new").exists()
