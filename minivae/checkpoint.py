"""Checkpoints: a model, its optimiser state and the training position in one ``.npz`` file.

The file is a plain NumPy archive read with ``allow_pickle=False``, so
loading one can never run code.  Its entries:

    format_version         int, FORMAT_VERSION
    config                 JSON text: the VAE constructor arguments (VAE.config())
    param/<name>           every array of model.params
    optim/<key>            the optimiser's state_dict(), if given
    train_state            JSON text: where training stands (epoch, batch, history, ...)
    train/<key>            arrays of the training position (e.g. the epoch's shuffle order)

Writing is atomic: the archive goes to a temporary file in the same folder
and is then renamed over the target (``os.replace``), so a crash or Ctrl-C
during a save leaves the previous checkpoint intact, never half a file.
Parameters that are not finite are refused, so a diverged model never
replaces a good file.

Reading trusts nothing in the file: anything that is not a complete,
consistent checkpoint of this format version (a truncated or corrupted file,
another program's archive, parameters of the wrong shape, dtype or
finiteness for the architecture in the config) raises :class:`CheckpointError`
with the path and the reason; no zipfile, pickle or NumPy exception escapes.
"""
import json
import os
import tempfile

import numpy as np

from minivae.vae import VAE

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A file that is not a readable minivae checkpoint (truncated, corrupted, wrong version)."""


def save(path, model, optimizer_state=None, train_state=None, train_arrays=None):
    """Write ``model`` (and optionally optimiser and training state) to ``path`` atomically.

    Parameters
    ----------
    path : path
        The ``.npz`` file; its folder is created if missing.
    model : VAE
        Its ``config()`` and every array of ``params`` (all must be finite).
    optimizer_state : dict of arrays, optional
        An optimiser's ``state_dict()``.
    train_state : dict, optional
        JSON-serialisable training position (see minivae.training).
    train_arrays : dict of arrays, optional
        Arrays of the training position.
    """
    if not isinstance(model, VAE):
        raise TypeError(f"model must be a minivae VAE, got {type(model).__name__}")
    bad = [name for name, value in model.params.items() if not np.isfinite(value).all()]
    if bad:
        raise ValueError(f"refusing to save {os.fspath(path)}: parameters {bad} contain NaN or "
                         "inf (a diverged model); the file on disk, if any, is left unchanged")
    arrays = {"format_version": np.array(FORMAT_VERSION),
              "config": np.array(json.dumps(model.config()))}
    arrays.update({f"param/{name}": value for name, value in model.params.items()})
    for key, value in (optimizer_state or {}).items():
        arrays[f"optim/{key}"] = np.asarray(value)
    if train_state is not None:
        arrays["train_state"] = np.array(json.dumps(train_state))
    for key, value in (train_arrays or {}).items():
        arrays[f"train/{key}"] = np.asarray(value)

    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_folder(folder)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _fsync_folder(folder):
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _read_entries(path):
    """Every array of the ``.npz`` archive at ``path``, or CheckpointError saying why not."""
    if not os.path.isfile(path):
        raise CheckpointError(f"{path} is not a file (a checkpoint is a single .npz file)")
    try:
        with open(path, "rb") as f:
            archive = np.load(f, allow_pickle=False)       # no pickle: loading runs no code
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise CheckpointError(f"{path} holds a single {type(archive).__name__}, not an "
                                      ".npz archive of named arrays")
            with archive:
                entries = {key: archive[key] for key in archive.files}
    except CheckpointError:
        raise
    # A damaged zip can fail in many ways inside zipfile and NumPy (BadZipFile, EOFError,
    # ValueError, struct.error, NotImplementedError for a flipped compression field,
    # RuntimeError for a flipped encryption flag, MemoryError for an absurd array header,
    # ...).  Each means the same thing to the reader: not a readable checkpoint.
    except Exception as error:
        raise CheckpointError(f"{path} is not a readable minivae checkpoint (truncated or "
                              f"corrupted?): {type(error).__name__}: {error}") from None
    # NpzFile hands back members that are not .npy files as raw bytes
    raw = [key for key, value in entries.items() if not isinstance(value, np.ndarray)]
    if raw:
        raise CheckpointError(f"{path} is a zip archive but not a minivae checkpoint: members "
                              f"{raw} are not .npy arrays")
    return entries


def _json_entry(entries, key, path):
    """The JSON text stored under ``key``, decoded; CheckpointError if it is not JSON."""
    value = entries[key]
    if value.shape != () or value.dtype.kind != "U":
        raise CheckpointError(f"{path}: entry {key!r} should be JSON text, got an array of "
                              f"shape {value.shape} and dtype {value.dtype}")
    try:
        return json.loads(str(value))
    except ValueError as error:
        raise CheckpointError(f"{path}: entry {key!r} is not valid JSON: {error}") from None


def load(path):
    """Read a checkpoint; return a dict with keys model, optimizer_state, train_state, train_arrays.

    optimizer_state and train_arrays are dicts of arrays (empty if not saved);
    train_state is a dict or None.  Raises FileNotFoundError for a missing
    file and CheckpointError (a ValueError) for anything unreadable.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path}")
    entries = _read_entries(path)

    if "format_version" not in entries or "config" not in entries:
        raise CheckpointError(f"{path} is an .npz file but not a minivae checkpoint "
                              "(no format_version/config entries)")
    version = entries["format_version"]
    if version.shape != () or version.dtype.kind not in "iu":
        raise CheckpointError(f"{path}: format_version should be one integer, got an array of "
                              f"shape {version.shape} and dtype {version.dtype}")
    if int(version) != FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format version {int(version)}; this "
                              f"minivae reads version {FORMAT_VERSION}")
    config = _json_entry(entries, "config", path)
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: config should be a JSON object of VAE arguments, "
                              f"got {type(config).__name__}")
    try:
        model = VAE(**config)
    except (ValueError, TypeError, OverflowError, MemoryError) as error:
        raise CheckpointError(f"{path} holds an invalid model config {config}: "
                              f"{type(error).__name__}: {error}") from None

    params = {key[len("param/"):]: value for key, value in entries.items() if key.startswith("param/")}
    if sorted(params) != sorted(model.params):
        raise CheckpointError(f"{path}: parameters {sorted(params)} do not match the architecture "
                              f"in its config, which has {sorted(model.params)}")
    for name, value in params.items():
        if value.shape != model.params[name].shape or value.dtype != model.dtype:
            raise CheckpointError(f"{path}: parameter {name} has shape {value.shape} and dtype "
                                  f"{value.dtype}; the config needs {model.params[name].shape}, "
                                  f"{model.dtype}")
        if not np.isfinite(value).all():
            raise CheckpointError(f"{path}: parameter {name} contains NaN or inf")
        model.params[name][...] = value      # in place: the model keeps its own arrays

    train_state = None
    if "train_state" in entries:
        train_state = _json_entry(entries, "train_state", path)
        if not isinstance(train_state, dict):
            raise CheckpointError(f"{path}: train_state should be a JSON object, "
                                  f"got {type(train_state).__name__}")
    return {
        "model": model,
        "optimizer_state": {k[len("optim/"):]: v for k, v in entries.items() if k.startswith("optim/")},
        "train_state": train_state,
        "train_arrays": {k[len("train/"):]: v for k, v in entries.items() if k.startswith("train/")},
    }


def load_model(path):
    """Read only the model of a checkpoint (one written by :func:`save` or by training)."""
    return load(path)["model"]
