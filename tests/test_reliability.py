"""Reliability across processes: SIGTERM from outside, exact resume, bit-identical reruns.

Every training here runs in a real child process (``python -c CHILD ...``), started the
way a course machine or a job scheduler starts one.  The child trains a small float64
model on data it generates from a fixed seed, so parent and children need no shared files
except the checkpoint and the final parameters.

Also here: the test that keeps docs/reliability.md honest (every test it names exists).
"""
import ast
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

from minivae.runs import checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The child.  argv: mode ("run", "stop" or "resume"), checkpoint path ("-" for none),
# where to save the final parameters (.npz), seed, and for "stop" the step to stop at.
# In "stop" mode it prints "step K" once it has started step K and then waits, blocked on
# its stdin, until the parent has sent SIGTERM and closed the pipe: the signal arrives
# mid-step, mid-epoch, at a step known in advance, with no sleep or timing involved.
CHILD = """
import sys
import numpy as np
from minivae.runs import checkpoint
from minivae.training import train
from minivae.vae import VAE

mode, ckpt, out, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
x = np.random.default_rng(0).uniform(size=(120, 12))      # 12 batches of 10 per epoch
settings = dict(epochs=3, batch_size=10, lr=3e-3, seed=seed, verbose=False,
                checkpoint_path=None if ckpt == "-" else ckpt)
if mode == "resume":
    saved = checkpoint.load(ckpt)
    model = saved["model"]
    history = train(model, x, resume=saved, **settings)
else:
    model = VAE(12, 3, hidden=(16,), dtype=np.float64, seed=1)
    if mode == "stop":
        stop_at, calls, original = int(sys.argv[5]), [0], model.loss_and_grads

        def loss_and_grads(*args, **kwargs):
            calls[0] += 1
            if calls[0] == stop_at:
                print("step", stop_at, flush=True)
                sys.stdin.read()            # returns when the parent closes the pipe
            return original(*args, **kwargs)

        model.loss_and_grads = loss_and_grads
    history = train(model, x, **settings)
np.savez(out, train_elbo=np.array(history["train_elbo"]), **model.params)
print("interrupted" if history["interrupted"] else "finished", flush=True)
"""


def run_child(mode, ckpt, out, seed=2):
    result = subprocess.run([sys.executable, "-c", CHILD, mode, str(ckpt), str(out), str(seed)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "finished"
    with np.load(out) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The final parameters (and per-epoch train ELBOs) of a run that nothing interrupted."""
    return run_child("run", "-", tmp_path_factory.mktemp("straight") / "final.npz")


def test_sigterm_to_a_training_process_mid_epoch_then_resume_gives_bit_identical_parameters(
        uninterrupted, tmp_path):
    ckpt = tmp_path / "model.npz"
    stop_at = 17                                       # epoch 2, batch 5 of 12
    child = subprocess.Popen([sys.executable, "-c", CHILD, "stop", str(ckpt),
                              str(tmp_path / "unused.npz"), "2", str(stop_at)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == f"step {stop_at}"
        child.send_signal(signal.SIGTERM)
        out, err = child.communicate(timeout=30)       # closes the child's stdin first
    finally:
        if child.poll() is None:
            child.kill()
    # the process ended by itself, cleanly, after saving where it stood
    assert child.returncode == 0, err
    assert out.strip() == "interrupted"
    saved = checkpoint.load(ckpt)
    assert (saved["train_state"]["epoch"], saved["train_state"]["batch"]) == (1, 5)
    assert saved["train_state"]["history"]["epoch"] == [1]

    resumed = run_child("resume", ckpt, tmp_path / "resumed.npz")
    assert sorted(resumed) == sorted(uninterrupted)
    for name, value in uninterrupted.items():
        assert resumed[name].dtype == np.float64
        assert np.array_equal(resumed[name], value), f"{name} differs after resuming"


def test_the_same_seed_gives_bit_identical_parameters_in_two_processes(uninterrupted, tmp_path):
    again = run_child("run", "-", tmp_path / "again.npz")
    for name, value in uninterrupted.items():
        assert np.array_equal(again[name], value), f"{name} differs between two runs"
    # and the seed matters: another seed gives other parameters (a check that could fail)
    other = run_child("run", "-", tmp_path / "other.npz", seed=3)
    assert not np.array_equal(other["decoder.0.W"], uninterrupted["decoder.0.W"])


def test_sigterm_to_the_minivae_command_saves_a_checkpoint_and_exits_130(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen([sys.executable, "-m", "minivae", "train", "--epochs", "200",
                              "--hidden", "8", "--z-dim", "2", "--out", str(out)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        for line in child.stdout:                      # "training ..." comes just before train()
            if line.startswith("training"):
                break
        # the first epoch's progress on stderr shows train() has installed its handlers
        child.stderr.read(1)
        child.send_signal(signal.SIGTERM)
        stdout, stderr = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 130, stderr
    assert "resume with: minivae train --resume" in stdout and "Traceback" not in stderr
    assert checkpoint.load(out / "model.npz")["train_state"]["epoch"] < 200


# --- docs/reliability.md: every test it names exists and is not marked to fail ------------

def named_tests(markdown):
    """The (file, test name) pairs written as tests/test_x.py::test_name in the text."""
    return re.findall(r"(tests/test_\w+\.py)::(test_\w+)", markdown)


def defined_tests(path):
    """Names of the module-level test functions of a file, without xfail or skip marks."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
            marks = [ast.unparse(d) for d in node.decorator_list]
            if not any("xfail" in m or "skip" in m for m in marks):
                names.add(node.name)
    return names


def test_every_test_named_in_docs_reliability_exists():
    text = open(os.path.join(ROOT, "docs", "reliability.md"), encoding="utf-8").read()
    rows = [line for line in text.splitlines()       # table rows, minus rules and headers
            if line.startswith("|") and not set(line) <= set("|-: ")
            and not line.rstrip().endswith("| test |")]
    assert len(rows) >= 20, "the table lost its rows"
    for row in rows:
        assert named_tests(row), f"a row names no test: {row}"
    for path, name in named_tests(text):
        defined = defined_tests(os.path.join(ROOT, path))
        assert name in defined, f"docs/reliability.md names {path}::{name}, which does not exist"
