"""Real checkpoints for the checkpoint tests: a small run stopped mid-epoch by SIGTERM, in-process.

Not a test module: test_checkpoint.py and test_fuzz.py build their edited
checkpoints from these.
"""
import os
import signal

import numpy as np

from minivae.training import train
from minivae.vae import VAE

X = np.random.default_rng(0).uniform(size=(40, 6))           # 4 batches of 10 per epoch
SETTINGS = dict(epochs=2, batch_size=10, lr=3e-3, seed=1, verbose=False)


def small_model(likelihood="bernoulli"):
    return VAE(6, 2, hidden=(5,), likelihood=likelihood, dtype=np.float64, seed=0)


def stopped_run(path, stop_at=6, optimizer="adam"):
    """Train until SIGTERM arrives during step ``stop_at`` (epoch 2, batch 2), saving to ``path``."""
    model, calls = small_model(), [0]
    original = model.loss_and_grads

    def loss_and_grads(*args, **kwargs):
        calls[0] += 1
        if calls[0] == stop_at:
            os.kill(os.getpid(), signal.SIGTERM)     # train() turns it into a checkpoint
        return original(*args, **kwargs)

    model.loss_and_grads = loss_and_grads
    history = train(model, X, checkpoint_path=path, optimizer=optimizer, **SETTINGS)
    assert history["interrupted"]
    return path


def resume(loaded):
    """The final parameters of training on from ``loaded`` (a checkpoint.load result)."""
    train(loaded["model"], X, resume=loaded, **SETTINGS)
    return loaded["model"].params
