"""Figures of a trained VAE: reconstructions, samples, ELBO curves, the latent manifold and scatter.

Every function here takes plain arrays (and, for the manifold, a plain callable),
never a model object, so it can be read and tested without the VAE.

Figures are built with matplotlib's object API, ``Figure()`` plus the Agg canvas,
not with ``pyplot``.  So importing this module never changes the user's backend,
nothing needs a display, and figures are not kept alive by pyplot's figure
manager.  Each ``plot_*`` function returns its ``Figure`` and, when ``path`` is
given, also writes it there (PNG for a ``.png`` path).  In a notebook, show a
returned figure by making it the last expression of a cell.

Images are rows of pixels, ``(N, P)`` with ``P = H * W`` as the VAE sees them
(``(N, H, W)`` is accepted too), grey levels in [0, 1]: 0 black, 1 white.
"""
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib import patheffects
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from scipy.stats import norm

from minivae.utils.validation import (check_count, check_counts, check_number, check_numeric_array,
                                      check_type)
from minivae.data.datasets import IMAGE_SHAPE   # (28, 28), MNIST

N_CLASSES = 10           # digits 0-9 (and the ten Fashion-MNIST classes)
# matplotlib's "tab10" with 5 in black: in tab10, 3 (red), 5 (brown) and 8 (olive) are hard to
# tell apart in a dense scatter, and those three digits crowd together in a 2-D latent space
CLASS_COLOURS = ListedColormap(["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                "#000000", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"], name="digits")


# ---------------------------------------------------------------------------
# input checks (the public boundary: say what was expected and what was given)
# ---------------------------------------------------------------------------

def _check_image_shape(image_shape):
    return check_counts(image_shape, "image_shape (H, W)", length=2)


def _as_images(name, images, image_shape):
    """Return ``images`` as an (N, H*W) array; (N, H*W) and (N, H, W) are accepted."""
    H, W = _check_image_shape(image_shape)
    images = check_numeric_array(images, name)
    if images.ndim == 3 and images.shape[1:] == (H, W):
        images = images.reshape(len(images), H * W)
    if images.ndim != 2 or images.shape[1] != H * W:
        raise ValueError(f"{name} must be an array of shape (N, {H * W}) or (N, {H}, {W}) for "
                         f"image_shape={(H, W)}, got an array of shape {images.shape}")
    return images


def _save(fig, path):
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig


def _new_figure(figsize):
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)          # attach a non-interactive canvas: savefig works, no display needed
    return fig


def _show_grid(ax, grid, title=None):
    # vmin/vmax fixed so 0 is black and 1 white whatever the images' range
    ax.imshow(grid, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title)


# ---------------------------------------------------------------------------
# tiling images (pure NumPy)
# ---------------------------------------------------------------------------

def image_grid(images, n_rows, n_cols, image_shape=IMAGE_SHAPE, pad=1, pad_value=1.0):
    """Tile images row-major into one 2-D array: image k goes to row k // n_cols, column k % n_cols.

    Neighbouring tiles are separated by ``pad`` pixels of ``pad_value`` (no
    border around the outside).  With H, W = image_shape the result has shape ::

        (n_rows * H + (n_rows - 1) * pad,   n_cols * W + (n_cols - 1) * pad)

    and the tile at (r, c) is ``out[r*(H+pad) : r*(H+pad)+H, c*(W+pad) : c*(W+pad)+W]``.

    Parameters
    ----------
    images : array (N, H*W) or (N, H, W)
        N <= n_rows * n_cols; the cells after the last image are filled with ``pad_value``.
    n_rows, n_cols : int >= 1
    image_shape : (H, W)
    pad : int >= 0
    pad_value : float

    Returns
    -------
    grid : array (n_rows*H + (n_rows-1)*pad, n_cols*W + (n_cols-1)*pad)
        The images' dtype if it is floating, float64 otherwise.
    """
    H, W = _check_image_shape(image_shape)
    n_rows = check_count(n_rows, "n_rows")
    n_cols = check_count(n_cols, "n_cols")
    pad = check_count(pad, "pad", low=0)
    images = _as_images("images", images, image_shape)
    N = len(images)
    if N > n_rows * n_cols:
        raise ValueError(f"images must be at most n_rows * n_cols = {n_rows} * {n_cols} = "
                         f"{n_rows * n_cols} images, got {N}")
    dtype = images.dtype if np.issubdtype(images.dtype, np.floating) else np.float64

    # one cell = an image plus `pad` pixels below and to its right, all cells pre-filled with pad_value
    cells = np.full((n_rows * n_cols, H + pad, W + pad), pad_value, dtype=dtype)
    cells[:N, :H, :W] = images.reshape(N, H, W)
    # (r, c, i, j) -> (r, i, c, j): pixel (i, j) of cell (r, c) lands on row r*(H+pad)+i, column c*(W+pad)+j
    cells = cells.reshape(n_rows, n_cols, H + pad, W + pad).transpose(0, 2, 1, 3)
    grid = cells.reshape(n_rows * (H + pad), n_cols * (W + pad))
    # the last row and column of cells need no padding after them
    return grid[:n_rows * (H + pad) - pad, :n_cols * (W + pad) - pad]


# ---------------------------------------------------------------------------
# reconstructions and samples
# ---------------------------------------------------------------------------

def plot_reconstructions(x, x_rec, path=None, n=10, image_shape=IMAGE_SHAPE):
    """Inputs x (top row) above their reconstructions (bottom row), one column per example.

    Parameters
    ----------
    x, x_rec : arrays (N, H*W) or (N, H, W), the same shape
        Inputs and their reconstructions, typically the decoder mean at z = mu(x).
    path : str or path-like, optional
        Where to write the figure.
    n : int >= 1
        How many examples to show: the first min(n, N).
    image_shape : (H, W)

    Returns
    -------
    fig : matplotlib.figure.Figure
        Two axes, each with one image (a 1 x min(n, N) strip from :func:`image_grid`).
    """
    x = _as_images("x", x, image_shape)
    x_rec = _as_images("x_rec", x_rec, image_shape)
    if x.shape != x_rec.shape:
        raise ValueError(f"x_rec must be an array of the shape of x, {x.shape}, got an array of "
                         f"shape {x_rec.shape}")
    n = min(check_count(n, "n"), len(x))
    if n == 0:
        raise ValueError("x must be at least one image, got 0")

    fig = _new_figure(figsize=(max(0.8 * n, 3.0), 2.2))
    top, bottom = fig.subplots(2, 1)
    _show_grid(top, image_grid(x[:n], 1, n, image_shape), "input x")
    _show_grid(bottom, image_grid(x_rec[:n], 1, n, image_shape), "reconstruction")
    fig.tight_layout()
    return _save(fig, path)


def plot_samples(images, path=None, n_rows=8, n_cols=8, image_shape=IMAGE_SHAPE,
                 title="samples: decoder mean of z ~ p(z) = N(0, I)"):
    """A grid of generated images: decoded z drawn from the prior.

    The caller draws z ~ N(0, I) and passes the decoder means; showing the mean
    rather than a Bernoulli sample of it is the usual (smoother) choice.

    Parameters
    ----------
    images : array (N, H*W) or (N, H, W), N <= n_rows * n_cols
        Filled row-major; the cells after the last image are left white.
    path : str or path-like, optional
    n_rows, n_cols : int >= 1
    image_shape : (H, W)
    title : str or None

    Returns
    -------
    fig : matplotlib.figure.Figure
        One axes with one image, the :func:`image_grid` of ``images``.
    """
    grid = image_grid(images, n_rows, n_cols, image_shape)
    fig = _new_figure(figsize=(max(0.6 * n_cols, 3.0), max(0.6 * n_rows, 1.0) + 0.5))
    ax = fig.subplots()
    _show_grid(ax, grid, title)
    fig.tight_layout()
    return _save(fig, path)


# ---------------------------------------------------------------------------
# training curves
# ---------------------------------------------------------------------------

def plot_elbo_curves(history, path=None):
    """The ELBO per epoch, on the training set and (when present) the test set.

    Parameters
    ----------
    history : dict of lists
        ``"epoch"`` and ``"train_elbo"`` (same length); optionally ``"test_elbo"``
        (same length, None for an epoch without a test value) and ``"beta"``
        (the KL weight; epochs with beta < 1 are shaded, because their training
        value is the KL-annealed objective, not the ELBO).  This is the dict
        that :func:`minivae.train` returns.
    path : str or path-like, optional

    Returns
    -------
    fig : matplotlib.figure.Figure
        One axes with the line "train" and, if any test value is present, the
        line "test" (those epochs only).
    """
    check_type(history, "history", dict, "a dict of per-epoch lists (what train returns)")
    for key in ("epoch", "train_elbo"):
        if key not in history:
            raise ValueError(f"history must be a dict with a key {key!r}, got keys {sorted(history)}")
    epoch = check_numeric_array(history["epoch"], "history['epoch']").astype(float)
    n_epochs = len(epoch)
    for key in ("train_elbo", "test_elbo", "beta"):
        if key in history and len(history[key]) != n_epochs:
            raise ValueError(f"history[{key!r}] must be {n_epochs} values (one per epoch), "
                             f"got {len(history[key])}")

    fig = _new_figure(figsize=(5.0, 3.5))
    ax = fig.subplots()
    beta = np.asarray(history.get("beta", np.ones(n_epochs)), dtype=float)
    if np.any(beta < 1):
        last_warmup = epoch[beta < 1].max()
        ax.axvspan(epoch.min() - 0.5, last_warmup + 0.5, color="0.9",
                   label="KL warm-up (train: beta < 1)")
    train_elbo = check_numeric_array(history["train_elbo"], "history['train_elbo']").astype(float)
    ax.plot(epoch, train_elbo, marker=".", label="train")
    test = history.get("test_elbo", [None] * n_epochs)
    has_test = np.array([v is not None for v in test], dtype=bool)
    if has_test.any():
        test = np.array([v for v in test if v is not None], dtype=float)
        ax.plot(epoch[has_test], test, marker=".", label="test")
    ax.set_xlabel("epoch")
    ax.set_ylabel("ELBO (nats per image)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if n_epochs:
        ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


# ---------------------------------------------------------------------------
# a 2-D latent space
# ---------------------------------------------------------------------------

def _latent_axis(n, quantile_lo, quantile_hi):
    """The n coordinates of one latent axis: Phi^-1(linspace(lo, hi, n)), increasing."""
    return norm.ppf(np.linspace(quantile_lo, quantile_hi, n))


def latent_grid(n=20, quantile_lo=0.05, quantile_hi=0.95):
    """An n x n grid of 2-D latent points, evenly spaced in probability under p(z) = N(0, I).

    As in Kingma & Welling (2013), Fig. 4: "linearly spaced coordinates on the
    unit square were transformed through the inverse CDF of the Gaussian", so
    on each axis ::

        q = linspace(quantile_lo, quantile_hi, n),   z = Phi^-1(q) = norm.ppf(q).

    The grid is laid out like a picture of the (z1, z2) plane: point
    ``k = r * n + c`` belongs to row r (top to bottom) and column c (left to right), with ::

        z[k, 0] = z1 = Phi^-1(q[c])            increasing to the right,
        z[k, 1] = z2 = Phi^-1(q[n - 1 - r])    largest in the top row.

    The paper gives no range for q (the unit square's edges map to infinity); the default
    [0.05, 0.95] is a common choice, not the paper's.

    So ``image_grid(decode(latent_grid(n)), n, n)`` is the manifold with z2 pointing up.

    Parameters
    ----------
    n : int >= 2
    quantile_lo, quantile_hi : float, 0 < quantile_lo < quantile_hi < 1
        Avoid 0 and 1: Phi^-1 is infinite there.

    Returns
    -------
    z : array (n * n, 2), float64
    """
    n = check_count(n, "n", low=2)     # linspace(lo, hi, 1) would be just [lo]
    quantile_lo = check_number(quantile_lo, "quantile_lo", low=0, high=1)
    quantile_hi = check_number(quantile_hi, "quantile_hi", low=0, high=1)
    if not 0 < quantile_lo < quantile_hi < 1:
        raise ValueError("quantile_lo and quantile_hi must be numbers with 0 < quantile_lo < "
                         f"quantile_hi < 1, got {quantile_lo!r} and {quantile_hi!r}")
    axis = _latent_axis(n, quantile_lo, quantile_hi)
    z1, z2 = np.meshgrid(axis, axis[::-1])      # (n, n) each, indexed [row r, column c]
    return np.stack([z1.ravel(), z2.ravel()], axis=1)


def _tick_positions(n, size, pad):
    """Indices of a few tiles out of n, symmetric about the middle, and each tile's centre pixel."""
    # an odd count only when n is odd, so a middle tick lands on the middle tile
    spots = np.linspace(0, n - 1, min(n, 5 if n % 2 else 4))
    mid = (n - 1) / 2
    # round halves towards the middle on both sides, so the ticks mirror each other
    index = np.where(spots <= mid, np.floor(spots + 0.5), (n - 1) - np.floor((n - 1 - spots) + 0.5))
    index = np.unique(index.astype(int))
    # tile i spans pixels i*(size+pad) ... i*(size+pad)+size-1; imshow puts pixel j at coordinate j
    return index, index * (size + pad) + (size - 1) / 2


def plot_latent_manifold(decode, path=None, n=20, image_shape=IMAGE_SHAPE,
                         quantile_lo=0.05, quantile_hi=0.95):
    """The learned 2-D manifold: decoder means on the :func:`latent_grid` (Kingma & Welling 2013, Fig. 4).

    Parameters
    ----------
    decode : callable, (M, 2) array -> (M, H*W) array
        The decoder mean as a function of z.  Called exactly once, with the
        whole grid (M = n * n), so it runs as one vectorised batch.
    path : str or path-like, optional
    n : int >= 2
        Grid points per axis.
    image_shape : (H, W)
    quantile_lo, quantile_hi : float
        See :func:`latent_grid`.

    Returns
    -------
    fig : matplotlib.figure.Figure
        One axes with one image, ``image_grid(decode(latent_grid(n)), n, n)``,
        with ticks at tile centres labelled by their z1 (x-axis) and z2 (y-axis).
    """
    H, W = _check_image_shape(image_shape)
    z = latent_grid(n, quantile_lo, quantile_hi)
    images = np.asarray(decode(z))
    if images.shape != (n * n, H * W):
        raise ValueError(f"decode must be a function returning shape (n*n, H*W) = ({n * n}, "
                         f"{H * W}) for a grid of {n * n} points, got one returning {images.shape}")
    pad = 1
    grid = image_grid(images, n, n, image_shape, pad=pad)

    fig = _new_figure(figsize=(6.0, 6.0))
    ax = fig.subplots()
    _show_grid(ax, grid, f"decoder mean on a {n} x {n} grid of Gaussian quantiles")
    axis = _latent_axis(n, quantile_lo, quantile_hi)
    cols, x_ticks = _tick_positions(n, W, pad)
    rows, y_ticks = _tick_positions(n, H, pad)
    ax.set_xticks(x_ticks)
    ax.set_xticklabels([f"{v:.2f}" for v in axis[cols]])
    ax.set_yticks(y_ticks)
    ax.set_yticklabels([f"{v:.2f}" for v in axis[::-1][rows]])   # row r shows z2 = axis[n-1-r]
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    fig.tight_layout()
    return _save(fig, path)


def plot_latent_scatter(z, labels, path=None):
    """Latent codes of labelled data (usually the posterior means mu(x)), coloured by class.

    Only a 2-D latent space is plotted: for z_dim > 2 a ValueError asks for
    two coordinates explicitly (``z[:, :2]``), because the first two of many
    latent dimensions are not a faithful picture of the space and a figure
    should not suggest otherwise.

    Parameters
    ----------
    z : array (N, 2)
    labels : array (N,) of integers in 0 ... 9
        Class of each point (the digit, for MNIST).
    path : str or path-like, optional

    Returns
    -------
    fig : matplotlib.figure.Figure
        Two axes: the scatter plot and its colorbar, one colour per class 0-9.
        Colours are ``CLASS_COLOURS`` (tab10 with 5 in black), and each class
        present is also labelled by its digit, drawn at the median of its
        points: colour alone does not tell every pair of neighbouring classes
        apart.
    """
    z = check_numeric_array(z, "z")
    labels = check_numeric_array(labels, "labels")
    if z.ndim != 2 or z.shape[1] != 2:
        hint = ""
        if z.ndim == 2 and z.shape[1] > 2:
            hint = (f"; this latent space has {z.shape[1]} dimensions: pass z[:, :2] to see "
                    "the first two, or train with z_dim=2")
        raise ValueError(f"z must be an array of shape (N, 2), got an array of shape {z.shape}{hint}")
    if labels.shape != (len(z),):
        raise ValueError(f"labels must be an array of shape ({len(z)},), one per row of z, got an "
                         f"array of shape {labels.shape}")
    if labels.size and (not np.all(labels == np.round(labels))
                        or labels.min() < 0 or labels.max() >= N_CLASSES):
        raise ValueError(f"labels must be integers in 0 ... {N_CLASSES - 1}, "
                         f"got values from {labels.min()} to {labels.max()}")

    fig = _new_figure(figsize=(6.0, 5.0))
    ax = fig.subplots()
    # one colour bin per class, centred on the integer, so the colorbar reads as a legend
    norm_ = BoundaryNorm(np.arange(N_CLASSES + 1) - 0.5, N_CLASSES)
    points = ax.scatter(z[:, 0], z[:, 1], c=labels, cmap=CLASS_COLOURS, norm=norm_, s=5, alpha=0.8,
                        linewidths=0)
    outline = [patheffects.withStroke(linewidth=3, foreground="white")]
    for c in np.unique(labels).astype(int):
        centre = np.median(z[labels == c], axis=0)
        ax.text(centre[0], centre[1], str(c), color=points.cmap(points.norm(c)), fontsize=14,
                fontweight="bold", ha="center", va="center", path_effects=outline)
    colorbar = fig.colorbar(points, ax=ax, ticks=np.arange(N_CLASSES))
    colorbar.set_label("label")
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.set_title("latent codes, coloured by label")
    ax.set_aspect("equal", adjustable="datalim")
    fig.tight_layout()
    return _save(fig, path)
