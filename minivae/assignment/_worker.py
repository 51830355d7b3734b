"""The untrusted side of `minivae assignment grade` (run by minivae.assignment.grader; not imported).

Run as ``python -I _worker.py TREE`` in a scratch folder holding this file and
``_minivae_probes.py`` (a copy of minivae/assignment/probes.py).  Reads the
request from stdin (JSON: a list of [case id, probe, seed, keyword arguments]),
imports the submission's modules from TREE only when a probe first needs them,
runs every case and writes one .npz of the outputs (numeric arrays only) to the
stdout it was started with; the submission's own prints go to stderr.  Nothing
written here decides a score: the grader's process compares these arrays with
the reference's, so a patched NumPy, an atexit hook or an early exit only lose
outputs.
"""
import importlib
import io
import json
import os
import sys
import traceback

MODULES = {"nn": "minivae.nn", "dist": "minivae.distributions", "vae": "minivae.vae",
           "evaluate": "minivae.evaluate", "optim": "minivae.optim"}


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


def main():
    tree, here = os.path.abspath(sys.argv[1]), os.path.dirname(os.path.abspath(__file__))
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)                                  # the submission's prints go to stderr
    sys.path[:] = [tree, here] + [p for p in sys.path[1:] if p and not p.startswith((tree, here))]
    import numpy as np
    import _minivae_probes as probes
    request = json.loads(sys.stdin.read())
    modules, arrays = Modules(tree), {}
    for case_id, probe, seed, kwargs in request:
        try:
            result = probes.PROBES[probe](modules, seed, **kwargs)
            for key, value in result.items():
                value = np.asarray(value)
                if value.dtype.kind not in "biuf":
                    raise TypeError(f"{key} is not a numeric array (dtype {value.dtype})")
                arrays[f"{case_id}/{key}"] = value
        except BaseException:                        # noqa: B036 -- SystemExit too: one case lost
            message = traceback.format_exc(limit=-3)[-2000:]
            arrays[f"{case_id}/!error"] = np.frombuffer(message.encode("utf-8", "replace"), np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    out.write(buffer.getvalue())
    out.flush()


if __name__ == "__main__":
    main()
