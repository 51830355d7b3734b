"""The untrusted side of `minivae assignment grade` and `check` (started by minivae.assignment.launch).

Run as ``python -I -B _worker.py TREE TASKS [UID]`` in a scratch folder holding this file,
``_minivae_probes.py`` (a copy of minivae/assignment/probes.py) and, for a
student's local check, ``_minivae_selfchecks.py`` (minivae/assignment/selfchecks.py).
Reads the request from stdin (JSON: a list of [case id, probe, seed, keyword
arguments]), becomes UID if given (a user id of its own: the grader's root
without a sandbox starts it), limits itself unless TASKS is "-" (no file can grow, at most TASKS
processes and threads for its user, bounded memory: the limits hold for
everything the submission does here; "0" leaves the tasks unlimited), imports the
submission's modules from TREE only when a probe first needs them, runs every
case and writes one .npz of the outputs (numeric arrays only) to the stdout it
was started with; the submission's own prints go to stderr.  Nothing written
here decides a score: the grader's process compares these arrays with the
reference's, so a patched NumPy, an atexit hook or an early exit only lose outputs.
"""
import importlib
import io
import json
import os
import sys
import traceback

MODULES = {"nn": "minivae.nn", "dist": "minivae.distributions", "vae": "minivae.vae",
           "elbo": "minivae.elbo", "evaluate": "minivae.evaluate", "optim": "minivae.optim"}
MEMORY_BYTES = 4 << 30            # address space allowed, once NumPy is loaded


class Modules:
    """The submission's modules, imported on first use (a broken optim.py costs only adam)."""

    def __init__(self, tree):
        self.tree = tree

    def __getattr__(self, name):
        module = importlib.import_module(MODULES[name])
        if not os.path.abspath(module.__file__).startswith(self.tree + os.sep):
            raise ImportError(f"{MODULES[name]} was imported from {module.__file__}, not from the submission")
        setattr(self, name, module)
        return module


def limit(tasks):
    """No file may grow (writes fail with EFBIG), at most ``tasks`` processes, memory bounded."""
    try:
        import resource
    except ImportError:                              # pragma: no cover - Windows
        return
    for name, value in (("RLIMIT_FSIZE", 0), ("RLIMIT_NPROC", tasks), ("RLIMIT_CORE", 0),
                        ("RLIMIT_AS", MEMORY_BYTES)):
        which = getattr(resource, name, None)
        if which is None or (name == "RLIMIT_NPROC" and not tasks):
            continue
        soft, hard = resource.getrlimit(which)
        if hard == resource.RLIM_INFINITY or hard > value:
            try:
                resource.setrlimit(which, (value, value))
            except (ValueError, OSError):
                pass


def drop_privileges(uid):
    """Become ``uid`` (its own group, no other groups) for good, before any submitted code runs.

    The grader starts the worker as root only when it has no sandbox; the worker
    then reads its request and loads NumPy and the probes, and drops here.
    """
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)                                  # real, effective and saved: no way back
    if os.getuid() != uid or os.geteuid() != uid:
        raise SystemExit("the worker could not drop its privileges")


def search_path(tree, here, path):
    """The tree and the probes' folder first, then ``path`` (Python's own) less other spellings of them.

    A folder inside the tree stays: a student's virtualenv made in their checkout holds NumPy.
    """
    own = (os.path.realpath(tree), os.path.realpath(here))
    return [tree, here] + [p for p in path if p and os.path.realpath(p) not in own]


def main():
    tree, here = os.path.abspath(sys.argv[1]), os.path.dirname(os.path.abspath(__file__))
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)                                  # the submission's prints go to stderr
    sys.path[:] = search_path(tree, here, sys.path[1:])
    import numpy as np
    import _minivae_probes as probes
    table = dict(probes.PROBES)
    if os.path.isfile(os.path.join(here, "_minivae_selfchecks.py")):     # a student's local check
        import _minivae_selfchecks as selfchecks
        selfchecks.GRADER_PROBES.update(probes.PROBES)
        table.update(selfchecks.PROBES)
    request = json.loads(sys.stdin.read())
    sys.stdin.close()
    if len(sys.argv) > 3 and int(sys.argv[3]) > 0:
        import zipfile, numpy.lib.format, numpy.linalg, numpy.random   # noqa: E401,F401 -- loaded
        np.savez(io.BytesIO(), x=np.zeros(1))      # while Python's folders are readable: the new uid
        drop_privileges(int(sys.argv[3]))          # may not read them (e.g. a Python under /root)
    if sys.argv[2] != "-":
        limit(int(sys.argv[2]))
    modules, arrays = Modules(tree), {}
    for case_id, probe, seed, kwargs in request:
        try:
            result = table[probe](modules, seed, **kwargs)
            for key, value in result.items():
                value = np.asarray(value)
                if value.dtype.kind not in "biuf":
                    raise TypeError(f"{key} is not a numeric array (dtype {value.dtype})")
                arrays[f"{case_id}/{key}"] = value
        except BaseException:                        # noqa: B036 -- SystemExit too: one case lost
            message = traceback.format_exc(limit=-3).encode("utf-8", "replace")[-2000:]
            arrays[f"{case_id}/!error"] = np.frombuffer(message, np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    out.write(buffer.getvalue())
    out.flush()


if __name__ == "__main__":
    main()
