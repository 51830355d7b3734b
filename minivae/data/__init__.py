"""Data: MNIST as arrays, from the embedded subset or the official IDX files.

What is inside::

    datasets.py       the Dataset/Split containers, load_mnist, load_fashion_mnist
    idx.py            the IDX file format MNIST comes in, read and checked byte by byte
    download.py       checked downloads from mirrors (checksums, deadlines, no half-written files)
    deadline.py       one overall deadline per HTTP download, headers and body together
    preprocessing.py  bytes to grey levels; dynamic, fixed and threshold binarisation
    mnist_subset.npz  the embedded 10,000-image subset (README.md beside it: provenance)

A student needs only ``load_mnist`` (tutorials 03, 05-07, 09-12) and, for the
binarisation of Algorithm 1, preprocessing.py (tutorial 06).  The study modules
(nn, distributions, elbo, vae, gradcheck) know nothing of this folder.
"""
