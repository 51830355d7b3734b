"""minivae: the Variational Autoencoder (Kingma & Welling, 2013) from scratch in NumPy.

The names a reader needs first are importable from the package itself::

    import minivae
    data = minivae.load_mnist()                       # the embedded MNIST subset
    model = minivae.VAE(784, 20, hidden=(400,), dtype="float32")
    history = minivae.train(model, data.train.x, data.test.x, epochs=5)
    log_px = minivae.log_likelihood(model, data.test.x[:100] > 0.5, k=5000)   # nats, per image

Each lives in its own module (``minivae.vae``, ``minivae.training``,
``minivae.datasets``, ``minivae.evaluate``); the modules are the place to read the code.
"""
from minivae.datasets import load_fashion_mnist, load_mnist
from minivae.evaluate import iwae_bound, log_likelihood
from minivae.training import train
from minivae.vae import VAE

__version__ = "0.1.0"

__all__ = ["VAE", "train", "load_mnist", "load_fashion_mnist", "log_likelihood", "iwae_bound",
           "__version__"]
