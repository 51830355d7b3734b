"""minivae: the Variational Autoencoder (Kingma & Welling, 2013) from scratch in NumPy."""

__version__ = "0.1.0"
