"""minivae: the Variational Autoencoder (Kingma & Welling, 2013) from scratch in NumPy.

The names a reader needs first are importable from the package itself::

    import minivae
    data = minivae.load_mnist()                       # the embedded MNIST subset
    model = minivae.VAE(784, 20, hidden=(400,), dtype="float32")
    history = minivae.train(model, data.train.x, data.test.x, epochs=5)
    log_px = minivae.log_likelihood(model, data.test.x[:100] > 0.5, k=5000)   # nats, per image

Each lives in its own module (``minivae.vae``, ``minivae.training``,
``minivae.data.datasets``, ``minivae.evaluate``); the modules are the place to read
the code.  ``import minivae`` itself loads none of them: each name is imported
from its module the first time it is used (a module-level ``__getattr__``,
PEP 562), so ``import minivae.vae``, the student's path, stays light.
"""
import importlib

__version__ = "0.1.0"

# name -> the module that defines it
EXPORTS = {
    "VAE": "minivae.vae",
    "train": "minivae.training",
    "load_mnist": "minivae.data.datasets",
    "load_fashion_mnist": "minivae.data.datasets",
    "log_likelihood": "minivae.evaluate",
    "iwae_bound": "minivae.evaluate",
}

__all__ = [*EXPORTS, "__version__"]


def __getattr__(name):
    if name in EXPORTS:
        return getattr(importlib.import_module(EXPORTS[name]), name)
    raise AttributeError(f"module 'minivae' has no attribute {name!r}")
