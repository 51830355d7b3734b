"""Tests of minivae.checkpoint: exact round trips and clear errors for damaged files."""
import json

import numpy as np
import pytest

from minivae import checkpoint, optim
from minivae.vae import VAE

from checkpoints import stopped_run


def test_save_and_load_restore_identical_parameters_and_config(tmp_path):
    model = VAE(6, 2, hidden=(5, 4), likelihood="gaussian", activation="tanh", dtype=np.float32, seed=3)
    model.params["decoder.logvar"][:] = np.linspace(-1, 1, 6)
    checkpoint.save(tmp_path / "m.npz", model)
    loaded = checkpoint.load_model(tmp_path / "m.npz")
    assert loaded.config() == model.config()
    assert sorted(loaded.params) == sorted(model.params)
    for k in model.params:
        assert loaded.params[k].dtype == np.float32
        assert np.array_equal(loaded.params[k], model.params[k])


def test_optimizer_and_training_state_round_trip(tmp_path):
    path = stopped_run(tmp_path / "c.npz")
    c = checkpoint.load(path)
    assert (c["train_state"]["epoch"], c["train_state"]["batch"]) == (1, 2)
    assert sorted(c["train_arrays"]["order"]) == list(range(40))
    checkpoint.save(tmp_path / "again.npz", c["model"], c["optimizer_state"], c["train_state"],
                    c["train_arrays"])
    again = checkpoint.load(tmp_path / "again.npz")
    assert again["train_state"] == c["train_state"]
    assert all(np.array_equal(again["optimizer_state"][k], v) for k, v in c["optimizer_state"].items())
    assert np.array_equal(again["train_arrays"]["order"], c["train_arrays"]["order"])


def test_a_truncated_checkpoint_is_a_clear_error_at_every_offset(tmp_path):
    model = VAE(20, 2, hidden=(10,))
    checkpoint.save(tmp_path / "m.npz", model)
    data = (tmp_path / "m.npz").read_bytes()
    for cut in [0, 1, 10, 100, len(data) // 3, len(data) // 2, len(data) - 30, len(data) - 1]:
        (tmp_path / "cut.npz").write_bytes(data[:cut])
        with pytest.raises(checkpoint.CheckpointError, match="cut.npz"):
            checkpoint.load(tmp_path / "cut.npz")


def test_wrong_version_and_wrong_architecture_are_clear_errors(tmp_path):
    model = VAE(4, 2, hidden=(3,))
    arrays = {"format_version": np.array(99), "config": np.array(json.dumps(model.config()))}
    np.savez(tmp_path / "v.npz", **arrays)
    with pytest.raises(checkpoint.CheckpointError, match="version 99"):
        checkpoint.load(tmp_path / "v.npz")
    config = dict(model.config(), hidden=[7])          # the saved arrays are for hidden=(3,)
    arrays = {"format_version": np.array(checkpoint.FORMAT_VERSION), "config": np.array(json.dumps(config))}
    arrays.update({f"param/{k}": v for k, v in model.params.items()})
    np.savez(tmp_path / "a.npz", **arrays)
    with pytest.raises(checkpoint.CheckpointError, match="shape"):
        checkpoint.load(tmp_path / "a.npz")
    with pytest.raises(FileNotFoundError):
        checkpoint.load(tmp_path / "missing.npz")


def test_saving_replaces_the_file_atomically_and_leaves_no_temporary(tmp_path):
    model = VAE(4, 2, hidden=(3,))
    checkpoint.save(tmp_path / "m.npz", model)
    model.params["encoder.0.b"][:] = 1.0
    checkpoint.save(tmp_path / "m.npz", model)
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]
    assert (checkpoint.load_model(tmp_path / "m.npz").params["encoder.0.b"] == 1.0).all()


# --- damaged and foreign files: always a CheckpointError naming the file -----------------

def zip_landmarks(data):
    """Byte offsets of the parts of an .npz (a zip archive) where a cut or a flip lands.

    Returns a dict: the first member's local header, the npy header and the array data of
    a parameter, the central directory and the end-of-central-directory record.
    """
    import io
    import zipfile

    members = zipfile.ZipFile(io.BytesIO(data)).infolist()
    param = next(m for m in members if m.filename.startswith("param/"))
    local = param.header_offset
    name_len = int.from_bytes(data[local + 26:local + 28], "little")
    extra_len = int.from_bytes(data[local + 28:local + 30], "little")
    member_data = local + 30 + name_len + extra_len       # where the .npy bytes start
    end_record = data.rfind(b"PK\x05\x06")
    central = int.from_bytes(data[end_record + 16:end_record + 20], "little")
    return {"first local header": 0, "param local header": local, "param npy header": member_data,
            "param array data": member_data + param.file_size - 16, "central directory": central,
            "end record": end_record}


@pytest.fixture(scope="module")
def saved_checkpoint(tmp_path_factory):
    """A small training-style checkpoint (model, Adam state, train state, arrays) and its bytes."""
    folder = tmp_path_factory.mktemp("ckpt")
    path = stopped_run(folder / "good.npz")
    return checkpoint.load(path)["model"], path.read_bytes()


def load_or_error(path):
    """checkpoint.load(path), or the CheckpointError it raised; any other exception fails."""
    try:
        return checkpoint.load(path)
    except checkpoint.CheckpointError as error:
        assert str(path) in str(error), "the message must name the file"
        return error


def test_a_checkpoint_cut_inside_every_part_of_the_zip_is_a_checkpoint_error(saved_checkpoint, tmp_path):
    _, data = saved_checkpoint
    marks = zip_landmarks(data)
    cuts = {0, 1, 4, 29, len(data) - 22, len(data) - 1, *range(0, len(data), 97)}
    for offset in marks.values():
        cuts |= {offset, offset + 1, offset + 10}
    path = tmp_path / "cut.npz"
    for cut in sorted(c for c in cuts if c < len(data)):
        path.write_bytes(data[:cut])
        result = load_or_error(path)
        assert isinstance(result, checkpoint.CheckpointError), f"a file cut at byte {cut} loaded"


def test_a_flipped_byte_is_a_checkpoint_error_or_changes_nothing(saved_checkpoint, tmp_path):
    # Every byte of the zip headers (local header, central directory entry, end record) and
    # every 71st byte elsewhere, inverted.  Flips in the compression-method, version and flag
    # fields once escaped as NotImplementedError; flips in array data are caught by the
    # zip's CRC-32.  Fields zipfile ignores (timestamps, attributes) may change harmlessly:
    # then the loaded model must be the saved one, bit for bit.
    model, data = saved_checkpoint
    marks = zip_landmarks(data)
    positions = set(range(0, len(data), 71))
    positions |= set(range(marks["param local header"], marks["param local header"] + 30))
    positions |= set(range(marks["central directory"], marks["central directory"] + 46))
    positions |= set(range(marks["end record"], len(data)))
    path = tmp_path / "flip.npz"
    errors = 0
    for pos in sorted(positions):
        damaged = bytearray(data)
        damaged[pos] ^= 0xFF
        path.write_bytes(bytes(damaged))
        result = load_or_error(path)
        if isinstance(result, checkpoint.CheckpointError):
            errors += 1
        else:
            for k, v in model.params.items():
                assert np.array_equal(result["model"].params[k], v), f"flip at {pos} changed {k}"
    assert errors > len(positions) // 2      # most flips must be detected, not just tolerated


def test_files_that_are_not_checkpoints_are_checkpoint_errors(tmp_path):
    import pickle
    import zipfile

    np.save(tmp_path / "array.npy", np.zeros(3))
    (tmp_path / "array.npy").rename(tmp_path / "array.npz")            # one .npy, not an .npz
    (tmp_path / "pickled.npz").write_bytes(pickle.dumps({"x": 1}))       # never unpickled
    (tmp_path / "text.npz").write_text("not a checkpoint\n")
    with zipfile.ZipFile(tmp_path / "other.npz", "w") as z:             # a zip of something else
        z.writestr("format_version", "1")
        z.writestr("config", "{}")
    np.savez(tmp_path / "foreign.npz", x=np.zeros(2))                    # an .npz, not ours
    (tmp_path / "folder.npz").mkdir()
    for name, match in [("array.npz", "single ndarray"), ("pickled.npz", "not a readable"),
                        ("text.npz", "not a readable"), ("other.npz", "not .npy arrays"),
                        ("foreign.npz", "not a minivae checkpoint"), ("folder.npz", "not a file")]:
        with pytest.raises(checkpoint.CheckpointError, match=match):
            checkpoint.load(tmp_path / name)


def write_entries(path, model, **changes):
    """An .npz of a checkpoint's entries for ``model``, with some replaced (None removes one)."""
    arrays = {"format_version": np.array(checkpoint.FORMAT_VERSION),
              "config": np.array(json.dumps(model.config()))}
    arrays.update({f"param/{k}": v for k, v in model.params.items()})
    for key, value in changes.items():
        key = key.replace("__", "/")
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    np.savez(path, **arrays)


@pytest.mark.parametrize("changes, match", [
    (dict(format_version=np.array("1")), "format_version should be one integer"),
    (dict(format_version=np.array([1, 1])), "format_version should be one integer"),
    (dict(config=np.array("{not json")), "'config' is not valid JSON"),
    (dict(config=np.array("[4, 2]")), "config should be a JSON object"),
    (dict(config=np.array('{"x_dim": 4, "z_dim": 2, "colour": "red"}')), "invalid model config"),
    (dict(config=np.array('{"x_dim": -4, "z_dim": 2}')), "invalid model config"),
    (dict(param__encoder__0__W=None), "do not match the architecture"),
    (dict(param__extra=np.zeros(2)), "do not match the architecture"),
    (dict(param__decoder__0__b=np.zeros(3, dtype=np.float32)), "dtype float32"),
    (dict(param__decoder__0__b=np.array([0.0, np.nan, 0.0])), "NaN or inf"),
    (dict(train_state=np.array("{oops")), "'train_state' is not valid JSON"),
    (dict(train_state=np.array("[1, 2]")), "train_state should be a JSON object"),
])
def test_malformed_entries_are_checkpoint_errors_that_say_which(tmp_path, changes, match):
    model = VAE(4, 2, hidden=(3,))
    # "__" stands for "/" in the keyword names above; the dots in parameter names too
    changes = {k.replace("encoder__0__", "encoder.0.").replace("decoder__0__", "decoder.0."): v
               for k, v in changes.items()}
    write_entries(tmp_path / "bad.npz", model, **changes)
    with pytest.raises(checkpoint.CheckpointError, match=match):
        checkpoint.load(tmp_path / "bad.npz")


def test_saving_non_finite_parameters_is_refused_and_keeps_the_previous_file(tmp_path):
    model = VAE(4, 2, hidden=(3,))
    checkpoint.save(tmp_path / "m.npz", model)
    before = (tmp_path / "m.npz").read_bytes()
    model.params["encoder.0.W"][0, 0] = np.nan
    with pytest.raises(ValueError, match=r"encoder\.0\.W.*NaN or inf"):
        checkpoint.save(tmp_path / "m.npz", model)
    assert (tmp_path / "m.npz").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


def test_a_save_interrupted_midway_leaves_the_previous_checkpoint_and_no_temporary(tmp_path,
                                                                                  monkeypatch):
    model = VAE(4, 2, hidden=(3,))
    checkpoint.save(tmp_path / "m.npz", model)
    before = (tmp_path / "m.npz").read_bytes()

    def savez_then_ctrl_c(f, **arrays):        # half an archive written, then Ctrl-C
        f.write(b"PK\x03\x04 half an archive")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.np, "savez", savez_then_ctrl_c)
    model.params["encoder.0.b"][:] = 5.0
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(tmp_path / "m.npz", model)
    assert (tmp_path / "m.npz").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]
