"""Tests of minivae.runs.checkpoint: exact round trips and clear errors for damaged files."""
import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from minivae import optim
from minivae.runs import checkpoint
from minivae.vae import VAE

from checkpoints import resume, stopped_run


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


def edited(path, out, **changes):
    """A copy of the checkpoint at ``path`` with entries replaced (None removes one).

    A change to a JSON entry is a function from the decoded value to the new one.
    """
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        elif callable(value):
            arrays[key] = np.array(json.dumps(value(json.loads(str(arrays[key])))))
        else:
            arrays[key] = value
    np.savez(out, **arrays)
    return out


def state_with(**fields):
    def change(state):
        for name, value in fields.items():
            section, _, key = name.rpartition("__")
            (state[section] if section else state)[key] = value
        return state
    return change


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    return stopped_run(tmp_path_factory.mktemp("stopped") / "model.npz")


W = "encoder.0.W"
BAD_ENTRIES = [
    ({f"optim/m.{W}": np.full((6, 5), np.nan)}, r"optim: state\['m.encoder.0.W'\] contains NaN"),
    ({f"optim/v.{W}": -np.ones((6, 5))}, r"optim: state\['v.encoder.0.W'\] has negative entries"),
    ({f"optim/v.{W}": np.ones((5, 6))}, r"state\['v.encoder.0.W'\] has shape \(5, 6\)"),
    ({f"optim/m.{W}": np.ones((6, 5), np.float32)}, r"must be an array of dtype float64"),
    ({"optim/lr": np.array(0.5)}, r"optim/name and optim/lr are 'adam' and 0.5, but the training "
                                  r"settings say 'adam' and 0.003"),
    ({"optim/beta1": np.array(5.0)}, r"optim: beta1 must be a finite number >= 0 and < 1, got 5.0"),
    ({"optim/beta1": np.array(0.5)}, r"train\(\) uses the defaults beta1=0.9 for adam; this "
                                     r"state has beta1=0.5"),
    ({"optim/t": np.array(2.7)}, r"optim: state\['t'\] must be an integer"),
    ({"optim/t": np.array(3)}, r"optim/t is 3, but the position \(epoch 1, batch 2\) comes after 6"),
    ({"optim/name": np.array("sgd")}, r"unexpected \['optim/beta1'"),
    ({"optim/name": np.array(7)}, r"optim/name: optimizer must be one of"),
    ({"train/order": np.arange(40.0)}, r"train/order should hold integer indices, got dtype float64"),
    ({"train/order": np.zeros(40, np.int64)}, r"train/order should be a permutation of the 40"),
    ({"train/order": np.arange(40) - 1}, r"train/order should be a permutation"),
    ({"train/order": np.arange(39)}, r"train/order should be a permutation"),
    ({"train/order": None}, r"train/order is missing"),
    ({"train/extra": np.zeros(3)}, r"unknown entries \['train/extra'\]"),
    ({"extra": np.zeros(3)}, r"not a minivae checkpoint: unknown entries \['extra'\]"),
    ({"optim/extra": np.zeros(3)}, r"unexpected \['optim/extra'\]"),
    ({f"optim/m.{W}": None}, r"missing \['optim/m.encoder.0.W'\]"),
    ({"train_state": state_with(epoch=-1)}, r"train_state\['epoch'\] must be an integer >= 0, got -1"),
    ({"train_state": state_with(epoch=7)}, r"position epoch 7, batch 2 is outside a run of 2 epochs"),
    ({"train_state": state_with(batch=5)}, r"position epoch 1, batch 5 is outside"),
    ({"train_state": state_with(batch=1.5)}, r"train_state\['batch'\] must be an integer"),
    ({"train_state": state_with(n_train=41)}, r"comes after 7 steps"),    # 5 batches an epoch
    ({"train_state": state_with(total=float("nan"))}, r"train_state\['total'\] must be a finite"),
    ({"train_state": state_with(total="3")}, r"train_state\['total'\] must be a real number"),
    ({"train_state": state_with(history={})}, r"history'\] should have the keys"),
    ({"train_state": state_with(history__epoch=[])}, r"history\['epoch'\] should be \[1, ..., 1\]"),
    ({"train_state": state_with(history__train_elbo=[None])}, r"history\['train_elbo'\]\[0\] must"),
    ({"train_state": state_with(history__beta=[5])}, r"history\['beta'\]\[0\] must be .* <= 1"),
    ({"train_state": state_with(rng={"bit_generator": "PCG64", "state": 5})}, r"not a loadable PCG64"),
    ({"train_state": state_with(rng="x")}, r"train_state\['rng'\] should be the state of a PCG64"),
    ({"train_state": state_with(settings__lr=-1)}, r"learning rate lr must be a finite number > 0"),
    ({"train_state": state_with(settings__estimator="exact")}, r"settings\['estimator'\] must be one of \['A', 'B', 'iwae'\], got 'exact'"),
    ({"train_state": state_with(settings__batch_size=0)}, r"settings\['batch_size'\] must be a "
                                                          r"positive integer"),
    ({"train_state": state_with(note="x")}, r"unknown \['note'\]"),
    ({"train_state": state_with(last_loss=float("inf"))}, r"last_loss'\] must be a finite"),
    ({"train_state": None}, r"unexpected \['train/order'\]"),
]


@pytest.mark.parametrize("changes, match", BAD_ENTRIES)
def test_every_optimizer_and_training_entry_is_checked_against_the_model(stopped, tmp_path,
                                                                        changes, match):
    bad = edited(stopped, tmp_path / "bad.npz", **changes)
    with pytest.raises(checkpoint.CheckpointError, match=match):
        checkpoint.load(bad)


def test_an_entry_larger_than_the_model_allows_is_refused_before_it_is_inflated(stopped, tmp_path):
    import tracemalloc
    import zipfile

    # 64 MB of zeros compress to 64 kB: a small file that would inflate to the size of 2,000
    # models (the case was 2 MB inflating to 2 GB)
    with np.load(stopped) as f:
        arrays = {k: f[k] for k in f.files}
    arrays[f"optim/m.{W}"] = np.zeros(8 << 20)
    np.savez_compressed(tmp_path / "bomb.npz", **arrays)
    assert (tmp_path / "bomb.npz").stat().st_size < 1 << 20
    assert zipfile.ZipFile(tmp_path / "bomb.npz").getinfo(f"optim/m.{W}.npy").file_size > 64e6
    tracemalloc.start()
    with pytest.raises(checkpoint.CheckpointError, match=r"entry 'optim/m.encoder.0.W' would take "
                                                         r"67,108,992 bytes .* at most 65,776"):
        checkpoint.load(tmp_path / "bomb.npz")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8e6, f"{peak:,} bytes were allocated for a refused entry"


def test_a_train_state_is_refused_by_save_as_load_would_refuse_it(stopped, tmp_path):
    c = checkpoint.load(stopped)
    state = {**c["train_state"], "epoch": -1}
    with pytest.raises(checkpoint.CheckpointError, match=r"train_state\['epoch'\]"):
        checkpoint.save(tmp_path / "m.npz", c["model"], c["optimizer_state"], state, c["train_arrays"])
    assert not (tmp_path / "m.npz").exists()


def test_save_refuses_a_model_that_is_not_a_vae(tmp_path):
    with pytest.raises(TypeError, match="model must be a minivae VAE, got str"):
        checkpoint.save(tmp_path / "m.npz", "str")
    assert list(tmp_path.iterdir()) == []


def test_a_checkpoint_gets_the_mode_of_ordinary_files(tmp_path):
    import os
    old = os.umask(0o022)
    try:
        checkpoint.save(tmp_path / "m.npz", VAE(4, 2, hidden=(3,)))
    finally:
        os.umask(old)
    assert (tmp_path / "m.npz").stat().st_mode & 0o777 == 0o644


def test_a_temporary_left_by_a_killed_save_is_removed_by_the_next_save(tmp_path):
    import os
    import time
    stale = tmp_path / ".tmp-k1ll3d.npz"                # what SIGKILL mid-save leaves behind
    stale.write_bytes(b"PK\x03\x04 half")
    old = time.time() - checkpoint.STALE_SECONDS - 60
    os.utime(stale, (old, old))
    fresh = tmp_path / ".tmp-another-save-in-progress.npz"
    fresh.write_bytes(b"PK")
    other = tmp_path / ".tmp-not-ours.txt"
    other.write_bytes(b"x")
    os.utime(other, (old, old))
    checkpoint.save(tmp_path / "m.npz", VAE(4, 2, hidden=(3,)))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([fresh.name, other.name, "m.npz"])


def test_a_config_too_large_for_memory_is_a_checkpoint_error_not_a_memory_error(tmp_path):
    model = VAE(4, 2, hidden=(3,))
    config = {**model.config(), "z_dim": 99999999999}
    write_entries(tmp_path / "big.npz", model, config=np.array(json.dumps(config)))
    with pytest.raises(checkpoint.CheckpointError, match=r"would need about .* GB of memory"):
        checkpoint.load(tmp_path / "big.npz")


# ---------------------------------------------------------------------------
# Property: an edited checkpoint is a CheckpointError or resumes exactly as the original
# ---------------------------------------------------------------------------

BAD_JSON = [None, -1, 2.5, "x", [], {}, float("nan"), float("inf"), True, -1e300]
BAD_SCALARS = [-1, 0, 1, 5, 2.7, np.nan, np.inf, 1e300]
DTYPES = [np.int64, np.int32, np.float32, np.float64, np.complex128, np.bool_, "U5"]


def json_paths(value, prefix=()):
    """Every path into a decoded JSON value (lists by index), the value itself first."""
    yield prefix
    items = value.items() if isinstance(value, dict) else (
        enumerate(value) if isinstance(value, list) else ())
    for key, child in items:
        yield from json_paths(child, prefix + (key,))


def set_path(value, path, new):
    if not path:
        return new
    value[path[0]] = set_path(value[path[0]], path[1:], new)
    return value


@st.composite
def edits(draw, entries):
    """(key, replacement) for one entry of ``entries``; a replacement of None removes it."""
    key = draw(st.sampled_from(sorted(entries) + ["<extra>"]))
    if key == "<extra>":
        name = draw(st.sampled_from(["extra", "param/extra", "optim/extra", "train/extra",
                                     "optim/m.extra", "train_state2"]))
        return name, np.zeros(draw(st.integers(0, 3)))
    original = entries[key]
    kind = draw(st.sampled_from(["remove", "shape", "dtype", "value", "json"]))
    if kind == "remove":
        return key, None
    if kind == "json" and key in ("config", "train_state"):
        decoded = json.loads(str(original))
        path = draw(st.sampled_from(list(json_paths(decoded))))
        return key, np.array(json.dumps(set_path(decoded, path, draw(st.sampled_from(BAD_JSON)))))
    if kind == "shape":
        shape = tuple(draw(st.lists(st.integers(0, 4), max_size=2)))
        if shape == original.shape:
            shape = shape + (1,)
        return key, np.zeros(shape, original.dtype)
    if kind == "dtype":
        dtype = np.dtype(draw(st.sampled_from(DTYPES)))
        try:
            return key, original.astype(dtype)
        except (ValueError, TypeError):
            return key, np.zeros(original.shape, dtype)
    # "value": a number outside what the entry may hold, at one element
    name = key.rpartition("/")[2]
    if original.dtype.kind == "U":              # a name or JSON text given as a number
        return key, np.array(draw(st.sampled_from(BAD_SCALARS)))
    bad_values = {"lr": [-1.0, 0.0, np.nan, np.inf], "beta1": [-1.0, 1.0, 5.0, np.nan],
                  "beta2": [-1.0, 1.0, 5.0, np.inf], "eps": [-1.0, np.nan, np.inf],
                  "format_version": [0, 2, -1]}.get(name)
    if name == "t":
        bad_values = [-1, 2.7, int(original) + 1, 1e300]
    if name == "order":
        bad_values = [-1, len(original), int(original[0])]
    if bad_values is None and name.startswith("v."):
        bad_values = [-1.0, np.nan, np.inf]
    if bad_values is None:                      # a parameter or first moment: any finite value
        bad_values = [np.nan, np.inf, -np.inf]  # is another valid state, so only these
    value = draw(st.sampled_from(bad_values))
    changed = original.astype(np.float64) if isinstance(value, float) else original.copy()
    flat = changed.reshape(-1)
    # the order's last element, so that setting it to the first one's makes a duplicate
    flat[len(flat) - 1 if name == "order" else draw(st.integers(0, flat.size - 1))] = value
    return key, changed


@pytest.fixture(scope="module")
def original_resume(stopped):
    return resume(checkpoint.load(stopped))


@given(data=st.data())
@settings(max_examples=60, deadline=None)
def test_an_edited_checkpoint_is_a_checkpoint_error_or_resumes_identically(stopped, original_resume,
                                                                         tmp_path_factory, data):
    with np.load(stopped) as f:
        entries = {k: f[k] for k in f.files}
    key, replacement = data.draw(edits(entries))
    bad = edited(stopped, tmp_path_factory.mktemp("edit") / "edited.npz", **{key: replacement})
    try:
        loaded = checkpoint.load(bad)
    except checkpoint.CheckpointError as error:
        assert str(bad) in str(error)
        return
    params = resume(loaded)
    assert all(np.array_equal(params[k], original_resume[k]) for k in original_resume), \
        f"{key} edited to {replacement!r} loaded and resumed differently"
