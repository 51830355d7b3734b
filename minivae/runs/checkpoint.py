"""Checkpoints: a model, its optimiser state and the training position in one ``.npz`` file.

The file is a plain NumPy archive read with ``allow_pickle=False``, so
loading one can never run code.  Its entries::

    format_version         int, FORMAT_VERSION
    config                 JSON text: the VAE constructor arguments (VAE.config())
    param/<name>           every array of model.params
    optim/<key>            the optimiser's state_dict(), if given
    train_state            JSON text: where training stands (epoch, batch, history, ...)
    train/order            mid-epoch: the epoch's shuffle order

Writing is atomic: the archive goes to a temporary file ``.tmp-*.npz`` in the
same folder and is then renamed over the target (``os.replace``), so a crash
or Ctrl-C during a save leaves the previous checkpoint intact, never half a
file; a temporary file left by a process killed mid-save (SIGKILL) is removed
by the next save into that folder.  Parameters that are not finite are
refused, so a diverged model never replaces a good file.

Reading trusts nothing in the file: anything that is not a complete,
consistent checkpoint of this format version (a truncated or corrupted file,
another program's archive, an unknown entry, an entry larger than the model
allows, parameters, optimiser buffers, settings or a training position that
do not fit the model in the config; see minivae.runs.checkpoint_checks) raises
:class:`CheckpointError` with the path, the entry and the reason; no zipfile,
pickle or NumPy exception escapes.
"""
import contextlib
import glob
import json
import os
import tempfile
import time

import numpy as np

from minivae import optim
from minivae.utils.validation import check_choice
from minivae.runs.checkpoint_checks import (TEXT_BYTES, CheckpointError,
                                       check_optimizer_against, check_train_arrays,
                                       check_train_state, entry_limits)
from minivae.utils.memory import check_fits, parameter_count
from minivae.vae import VAE

FORMAT_VERSION = 1
# a temporary file of a save that is this old belongs to no save in progress but to a process
# killed mid-save (SIGKILL, power loss); the next save into the folder removes it
STALE_SECONDS = 600
TMP_PREFIX, TMP_SUFFIX = ".tmp-", ".npz"


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
        The training position, as minivae.train writes it (epoch, batch,
        total, rng, history, settings, n_train; minivae.runs.checkpoint_checks).
    train_arrays : dict of arrays, optional
        Mid-epoch, ``{"order": the epoch's shuffle order}``.

    Raises
    ------
    TypeError
        ``model`` is not a VAE.
    ValueError
        Non-finite parameters, or (a CheckpointError) an optimiser or
        training state that :func:`load` would refuse; nothing is written.
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
        train_state = json.loads(str(arrays["train_state"]))      # checked as load will see it
    for key, value in (train_arrays or {}).items():
        arrays[f"train/{key}"] = np.asarray(value)
    # what load would refuse is not written: the same checks, before the file is touched
    _check_contents(os.fspath(path), model,
                    {k[len("optim/"):]: v for k, v in arrays.items() if k.startswith("optim/")},
                    train_state,
                    {k[len("train/"):]: v for k, v in arrays.items() if k.startswith("train/")})

    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    remove_stale_temporaries(folder)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=TMP_PREFIX, suffix=TMP_SUFFIX)
    try:
        # mkstemp makes the file private (0600); a checkpoint gets the mode of the run's other
        # files, the usual 0666 less the umask
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_folder(folder)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _umask():
    mask = os.umask(0o022)      # the only way to read it is to set it, and set it back
    os.umask(mask)
    return mask


def remove_stale_temporaries(folder, pattern=TMP_PREFIX + "*" + TMP_SUFFIX, age=STALE_SECONDS):
    """Remove files of minivae's temporary naming in ``folder`` older than ``age`` seconds.

    Such a file is left only by a process killed mid-write (SIGKILL, power
    loss); a younger one may be another process's save in progress and is kept.
    """
    now = time.time()
    for leftover in glob.glob(os.path.join(glob.escape(folder), pattern)):
        try:
            if now - os.path.getmtime(leftover) > age:
                os.remove(leftover)
        except OSError:          # removed meanwhile, or not ours to remove
            pass


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


@contextlib.contextmanager
def _archive(path):
    """The open .npz archive at ``path``; CheckpointError for anything that is not one."""
    if not os.path.isfile(path):
        raise CheckpointError(f"{path} is not a file (a checkpoint is a single .npz file)")
    try:
        with open(path, "rb") as f:
            archive = np.load(f, allow_pickle=False)       # no pickle: loading runs no code
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise CheckpointError(f"{path} holds a single {type(archive).__name__}, not an "
                                      ".npz archive of named arrays")
            with archive:
                yield archive
    except CheckpointError:
        raise
    # A damaged zip can fail in many ways inside zipfile and NumPy (BadZipFile, EOFError,
    # ValueError, struct.error, NotImplementedError for a flipped compression field,
    # RuntimeError for a flipped encryption flag, MemoryError for an absurd array header,
    # ...).  Each means the same thing to the reader: not a readable checkpoint.
    except Exception as error:
        raise CheckpointError(f"{path} is not a readable minivae checkpoint (truncated or "
                              f"corrupted?): {type(error).__name__}: {error}") from None


def _sizes(archive, path):
    """Entry name -> uncompressed bytes, from the zip's directory (nothing is inflated)."""
    raw = [info.filename for info in archive.zip.infolist() if not info.filename.endswith(".npy")]
    if raw:
        raise CheckpointError(f"{path} is a zip archive but not a minivae checkpoint: members "
                              f"{raw} are not .npy arrays")
    return {info.filename[:-len(".npy")]: info.file_size for info in archive.zip.infolist()}


def _entry(archive, sizes, key, limit, path):
    """Read entry ``key``, but only if its uncompressed size is at most ``limit`` bytes."""
    if sizes[key] > limit:
        raise CheckpointError(f"{path}: entry {key!r} would take {sizes[key]:,} bytes when "
                              f"uncompressed; for this model it can take at most {limit:,} (a "
                              "damaged file, or one built to exhaust memory); nothing was read")
    try:
        return archive[key]
    except Exception as error:    # as in _archive: a damaged member
        raise CheckpointError(f"{path}: entry {key!r} is not readable (truncated or corrupted?): "
                              f"{type(error).__name__}: {error}") from None


def _json_entry(value, key, path):
    """The JSON text of entry ``key``, decoded; CheckpointError if it is not JSON."""
    if value.shape != () or value.dtype.kind != "U":
        raise CheckpointError(f"{path}: entry {key!r} should be JSON text, got an array of "
                              f"shape {value.shape} and dtype {value.dtype}")
    try:
        return json.loads(str(value))
    except ValueError as error:
        raise CheckpointError(f"{path}: entry {key!r} is not valid JSON: {error}") from None


def _model(config, path):
    """The VAE of ``config``, once its parameters are known to fit in memory."""
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: config should be a JSON object of VAE arguments, "
                              f"got {type(config).__name__}")
    try:
        count = parameter_count(config.get("x_dim"), config.get("z_dim"), config.get("hidden", ()))
        # the parameters, their copies being read, the optimiser's buffers and scratch
        check_fits(f"the model in {path}", 5 * 8 * count)
        return VAE(**config)
    except (ValueError, TypeError, OverflowError, MemoryError) as error:
        raise CheckpointError(f"{path} holds an invalid model config {config}: "
                              f"{type(error).__name__}: {error}"[:2000]) from None


def _checked(path, entry, check, *args):
    """Run ``check(*args)``; its TypeError or ValueError becomes a CheckpointError naming ``entry``."""
    try:
        return check(*args)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: {entry}: {error}") from None


def _check_contents(path, model, optimizer_state, train_state, train_arrays):
    """CheckpointError naming the entry unless optimiser and training state fit ``model``."""
    if optimizer_state:
        _checked(path, "optim", optim.check_state_dict, optimizer_state, model.params)
    if train_state is not None:
        steps = _checked(path, "train_state", check_train_state, train_state, model)
        if not optimizer_state:
            raise CheckpointError(f"{path}: a training state but no optimizer state (optim/*)")
        _checked(path, "optim", check_optimizer_against, optimizer_state, train_state, steps)
        _checked(path, "train/order", check_train_arrays, train_arrays, train_state)
    elif train_arrays:
        raise CheckpointError(f"{path}: train/* entries but no train_state")


def load(path):
    """Read a checkpoint; return a dict with keys model, optimizer_state, train_state, train_arrays.

    optimizer_state and train_arrays are dicts of arrays (empty if not saved);
    train_state is a dict or None.  Everything returned has been checked
    against the model (see the module docstring).  Raises FileNotFoundError
    for a missing file and CheckpointError (a ValueError) for anything else.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path}")
    with _archive(path) as archive:
        sizes = _sizes(archive, path)
        unknown = sorted(k for k in sizes if k not in TEXT_BYTES
                         and not k.startswith(("param/", "optim/")) and k != "train/order")
        if unknown:
            raise CheckpointError(f"{path} is not a minivae checkpoint: unknown entries {unknown} "
                                  "(it holds format_version, config, param/*, optim/*, "
                                  "train_state, train/order)")
        if "format_version" not in sizes or "config" not in sizes:
            raise CheckpointError(f"{path} is an .npz file but not a minivae checkpoint "
                                  "(no format_version/config entries)")
        read = lambda key, limit: _entry(archive, sizes, key, limit, path)     # noqa: E731
        version = read("format_version", TEXT_BYTES["format_version"])
        if version.shape != () or version.dtype.kind not in "iu":
            raise CheckpointError(f"{path}: format_version should be one integer, got an array "
                                  f"of shape {version.shape} and dtype {version.dtype}")
        if int(version) != FORMAT_VERSION:
            raise CheckpointError(f"{path} has checkpoint format version {int(version)}; this "
                                  f"minivae reads version {FORMAT_VERSION}")
        model = _model(_json_entry(read("config", TEXT_BYTES["config"]), "config", path), path)

        optimizer = None
        if any(k.startswith("optim/") for k in sizes):
            if "optim/name" not in sizes:
                raise CheckpointError(f"{path}: optim/* entries but no optim/name")
            name = read("optim/name", TEXT_BYTES["optim/name"])
            optimizer = _checked(path, "optim/name", check_choice,
                                 name.item() if name.shape == () else name, "optimizer",
                                 optim.OPTIMIZERS)
        train_state = None
        if "train_state" in sizes:
            train_state = _json_entry(read("train_state", TEXT_BYTES["train_state"]),
                                      "train_state", path)
            _checked(path, "train_state", check_train_state, train_state, model)
        limits = entry_limits(model, optimizer, train_state and train_state["n_train"])
        expected = [k for k in limits if k.startswith("param/") or k.startswith("optim/")]
        missing = [k for k in expected if k not in sizes]
        extra = sorted(k for k in sizes if k not in limits and k not in TEXT_BYTES)
        if missing or extra:
            raise CheckpointError(f"{path}: the entries do not match the architecture in its "
                                  f"config and its optimizer; missing {missing}, unexpected {extra}")
        arrays = {key: read(key, limit) for key, limit in limits.items() if key in sizes}

    for name, value in model.params.items():
        saved = arrays[f"param/{name}"]
        if saved.shape != value.shape or saved.dtype != model.dtype:
            raise CheckpointError(f"{path}: parameter {name} has shape {saved.shape} and dtype "
                                  f"{saved.dtype}; the config needs {value.shape}, {model.dtype}")
        if not np.isfinite(saved).all():
            raise CheckpointError(f"{path}: parameter {name} contains NaN or inf")
        value[...] = saved      # in place: the model keeps its own arrays
    optimizer_state = {k[len("optim/"):]: v for k, v in arrays.items() if k.startswith("optim/")}
    train_arrays = {k[len("train/"):]: v for k, v in arrays.items() if k.startswith("train/")}
    _check_contents(path, model, optimizer_state, train_state, train_arrays)
    return {"model": model, "optimizer_state": optimizer_state, "train_state": train_state,
            "train_arrays": train_arrays}


def load_model(path):
    """Read only the model of a checkpoint (one written by :func:`save` or by training)."""
    return load(path)["model"]
