"""Tests of minivae.checkpoint: exact round trips and clear errors for damaged files."""
import json

import numpy as np
import pytest

from minivae import checkpoint, optim
from minivae.vae import VAE


def test_save_and_load_restore_identical_parameters_and_config(tmp_path):
    model = VAE(6, 2, hidden=(5, 4), likelihood="gaussian", activation="tanh", dtype=np.float32, seed=3)
    model.params["decoder.logvar"][:] = np.linspace(-1, 1, 6)
    model.save(tmp_path / "m.npz")
    loaded = VAE.load(tmp_path / "m.npz")
    assert loaded.config() == model.config()
    assert sorted(loaded.params) == sorted(model.params)
    for k in model.params:
        assert loaded.params[k].dtype == np.float32
        assert np.array_equal(loaded.params[k], model.params[k])


def test_optimizer_and_training_state_round_trip(tmp_path):
    model = VAE(4, 2, hidden=(3,))
    opt = optim.Adam(model.params)
    opt.step({k: np.ones_like(v) for k, v in model.params.items()})
    checkpoint.save(tmp_path / "c.npz", model, opt.state_dict(), {"epoch": 2, "note": "x"},
                    {"order": np.arange(5)})
    c = checkpoint.load(tmp_path / "c.npz")
    assert c["train_state"] == {"epoch": 2, "note": "x"}
    assert np.array_equal(c["train_arrays"]["order"], np.arange(5))
    assert all(np.array_equal(c["optimizer_state"][k], v) for k, v in opt.state_dict().items())


def test_a_truncated_checkpoint_is_a_clear_error_at_every_offset(tmp_path):
    model = VAE(20, 2, hidden=(10,))
    model.save(tmp_path / "m.npz")
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
    model.save(tmp_path / "m.npz")
    model.params["encoder.0.b"][:] = 1.0
    model.save(tmp_path / "m.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]
    assert (VAE.load(tmp_path / "m.npz").params["encoder.0.b"] == 1.0).all()
