"""Tests of minivae.data.idx: the IDX reader, plain and gzipped, on whole, cut and damaged files."""
import gzip
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from idx_files import TYPE_CODES, idx_bytes, write
from minivae.data import idx


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
    back = idx.read_idx(path)
    assert back.shape == array.shape
    assert back.dtype == np.dtype(dtype)          # native byte order, as a student expects
    assert np.array_equal(back, array)


def test_gzip_is_recognised_by_its_magic_bytes_not_by_the_file_name(tmp_path):
    labels = np.arange(7, dtype=np.uint8)
    gzipped_without_suffix = write(tmp_path / "labels", gzip.compress(idx_bytes(labels)))
    plain_with_suffix = write(tmp_path / "labels.gz", idx_bytes(labels))
    assert np.array_equal(idx.read_idx(gzipped_without_suffix), labels)
    assert np.array_equal(idx.read_idx(plain_with_suffix), labels)


# a (3, 2, 2) uint8 file: 4 magic bytes + 3 sizes of 4 bytes = 16-byte header, then 12 bytes
@pytest.mark.parametrize("length", [0, 1, 3, 4, 9, 15, 16, 17, 27])
@pytest.mark.parametrize("gz", [False, True])
def test_truncated_idx_file_is_rejected(tmp_path, length, gz):
    content = idx_bytes(np.ones((3, 2, 2), dtype=np.uint8))[:length]
    path = write(tmp_path / "cut", gzip.compress(content) if gz else content)
    with pytest.raises(ValueError, match="cut") as error:
        idx.read_idx(path)
    if length >= 16:      # the header is whole: the message gives the expected and found data bytes
        assert "expected 12 bytes" in str(error.value)
        assert f"found {length - 16}" in str(error.value)


def test_trailing_bytes_after_the_idx_data_are_rejected(tmp_path):
    path = write(tmp_path / "long", idx_bytes(np.ones((3, 4), dtype=np.uint8)) + b"\x00\x00")
    with pytest.raises(ValueError, match="trailing bytes.*expected 12 bytes.*found 14"):
        idx.read_idx(path)


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
        idx.read_idx(path)


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
        idx.read_idx(path)


def _bomb(path, declared_shape, members):
    """A gzip file whose header declares ``declared_shape`` of uint8 but inflates to ``members``
    MiB of zeros after it: many gzip members of 1 MiB each, about 1 KB apiece on disk."""
    header = bytes([0, 0, 0x08, len(declared_shape)]) + b"".join(
        n.to_bytes(4, "big") for n in declared_shape)
    member = gzip.compress(bytes(2 ** 20))
    return write(path, gzip.compress(header) + member * members)


def test_a_decompression_bomb_is_refused_with_memory_bounded_by_the_header(tmp_path):
    # about 2 MB on disk inflating to 2 GiB; the header declares 10 x 10 bytes
    path = _bomb(tmp_path / "bomb.gz", (10, 10), members=2048)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="bomb.gz: trailing bytes after the data.*expected 100"):
            idx.read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2 ** 20, f"reading a refused bomb allocated {peak:,} bytes"


def test_a_header_declaring_more_than_the_file_can_hold_is_refused_before_reading(tmp_path):
    # 2 GiB declared; a gzip file of a few KB cannot inflate to it (deflate: at most 1032 to 1)
    path = _bomb(tmp_path / "big.gz", (2 ** 11, 2 ** 10, 2 ** 10), members=2)
    with pytest.raises(ValueError, match="more than max_bytes"):
        idx.read_idx(path)
    with pytest.raises(ValueError, match="more than a [\\d,]+-byte gzip file can hold"):
        idx.read_idx(path, max_bytes=2 ** 32)
    with pytest.raises(TypeError, match="max_bytes must be a positive integer, got '1' \\(str\\)"):
        idx.read_idx(path, max_bytes="1")


@settings(max_examples=150, deadline=None)
@given(content=st.binary(max_size=64), gz=st.booleans(), cut=st.integers(0, 80))
def test_any_bytes_give_an_array_or_a_value_error(tmp_path_factory, content, gz, cut):
    # random bytes after a plausible header half the time, so the length checks are reached
    if cut % 2:
        content = bytes([0, 0, 0x08, 1]) + (cut).to_bytes(4, "big") + content
    packed = gzip.compress(content) if gz else content
    path = write(tmp_path_factory.mktemp("fuzz") / "f", packed)
    try:
        array = idx.read_idx(path)
    except ValueError as error:
        assert str(error).startswith(str(path))
    else:
        assert array.size * array.itemsize == len(content) - 4 - 4 * content[3]
