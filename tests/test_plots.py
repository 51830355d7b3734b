"""Tests of minivae.experiments.plots: the image tiling, the latent grid, and what each figure shows and writes."""
import subprocess
import sys

import matplotlib
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from matplotlib.figure import Figure
from scipy.stats import norm

from minivae.experiments import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SHAPE = (4, 3)           # small images keep the figures fast; H != W catches a swapped axis
P = SHAPE[0] * SHAPE[1]


def shown_image(ax):
    """The array an axes' (only) imshow displays."""
    assert len(ax.images) == 1
    return np.asarray(ax.images[0].get_array())


def assert_png(path):
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE), f"{path} is not a PNG file"
    assert len(data) > len(PNG_SIGNATURE)


def distinct_images(n, rng):
    """n images, no two alike and none equal to the padding value 1.0."""
    return rng.uniform(0.0, 0.9, size=(n, P))


# ---------------------------------------------------------------------------
# image_grid
# ---------------------------------------------------------------------------

@st.composite
def grid_layouts(draw):
    n_rows, n_cols = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    N = draw(st.integers(0, n_rows * n_cols))
    H, W = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    pad = draw(st.integers(0, 3))
    return n_rows, n_cols, N, (H, W), pad


@given(layout=grid_layouts(), pad_value=st.floats(-2, 2), seed=st.integers(0, 2**32 - 1))
def test_image_grid_places_image_k_at_row_k_div_cols_column_k_mod_cols(layout, pad_value, seed):
    n_rows, n_cols, N, (H, W), pad = layout
    images = np.random.default_rng(seed).standard_normal((N, H * W))
    grid = plots.image_grid(images, n_rows, n_cols, (H, W), pad=pad, pad_value=pad_value)

    # n tiles of size H with a gap of `pad` between neighbours, none around the outside
    assert grid.shape == (n_rows * H + (n_rows - 1) * pad, n_cols * W + (n_cols - 1) * pad)
    is_tile = np.zeros(grid.shape, dtype=bool)
    for r in range(n_rows):
        for c in range(n_cols):
            rows = slice(r * (H + pad), r * (H + pad) + H)
            cols = slice(c * (W + pad), c * (W + pad) + W)
            k = r * n_cols + c
            expected = images[k].reshape(H, W) if k < N else np.full((H, W), pad_value)
            np.testing.assert_array_equal(grid[rows, cols], expected, err_msg=f"tile (r={r}, c={c})")
            is_tile[rows, cols] = True
    # the gaps between tiles are pad_value
    np.testing.assert_array_equal(grid[~is_tile], pad_value)


def test_image_grid_accepts_images_as_h_by_w_arrays():
    images = np.arange(2 * P, dtype=float).reshape(2, *SHAPE)
    np.testing.assert_array_equal(plots.image_grid(images, 1, 2, SHAPE),
                                  plots.image_grid(images.reshape(2, P), 1, 2, SHAPE))


def test_image_grid_keeps_float32_and_makes_integers_float():
    assert plots.image_grid(np.zeros((1, P), np.float32), 1, 2, SHAPE).dtype == np.float32
    assert plots.image_grid(np.zeros((1, P), np.uint8), 1, 2, SHAPE).dtype == np.float64


@given(n_rows=st.integers(1, 4), n_cols=st.integers(1, 4), extra=st.integers(1, 3))
def test_image_grid_rejects_more_images_than_cells(n_rows, n_cols, extra):
    images = np.zeros((n_rows * n_cols + extra, P))
    with pytest.raises(ValueError, match=f"at most .* {n_rows * n_cols} images, got"):
        plots.image_grid(images, n_rows, n_cols, SHAPE)


@pytest.mark.parametrize("images, kwargs, message", [
    (np.zeros((2, P + 1)), {}, r"images must be an array of shape \(N, 12\) or \(N, 4, 3\) for image_shape=\(4, 3\), got an array of shape \(2, 13\)"),
    (np.zeros(P), {}, r"images must be an array of shape \(N, 12\)"),
    (np.zeros((2, P)), {"n_rows": 0}, "n_rows must be a positive integer, got 0"),
    (np.zeros((2, P)), {"pad": -1}, "pad must be an integer >= 0, got -1"),
    (np.zeros((2, P)), {"image_shape": (12,)}, r"image_shape \(H, W\) must be a sequence of 2 integers, got \(12,\)"),
])
def test_image_grid_rejects_bad_arguments_with_what_was_expected(images, kwargs, message):
    args = {"n_rows": 2, "n_cols": 2, "image_shape": SHAPE, **kwargs}
    with pytest.raises(ValueError, match=message):
        plots.image_grid(images, **args)


# ---------------------------------------------------------------------------
# latent_grid
# ---------------------------------------------------------------------------

@given(n=st.integers(2, 12), lo=st.floats(0.001, 0.4), hi=st.floats(0.6, 0.999))
def test_latent_grid_is_the_inverse_gaussian_cdf_of_a_linspace_in_picture_order(n, lo, hi):
    z = plots.latent_grid(n, lo, hi)
    assert z.shape == (n * n, 2)
    q = norm.ppf(np.linspace(lo, hi, n))       # Kingma & Welling (2013), Fig. 4
    picture = z.reshape(n, n, 2)                 # [row r, column c]
    for r in range(n):
        for c in range(n):
            # z1 grows to the right, z2 grows upwards: the top row (r = 0) has the largest z2
            np.testing.assert_array_equal(picture[r, c], [q[c], q[n - 1 - r]])


def test_latent_grid_default_is_symmetric_about_zero():
    # quantiles 0.05 ... 0.95 are symmetric about 0.5, so Phi^-1 of them is symmetric about 0
    z = plots.latent_grid(20)
    np.testing.assert_allclose(np.sort(z[:, 0]), -np.sort(z[:, 0])[::-1], atol=1e-12)
    np.testing.assert_allclose(np.sort(z[:, 1]), -np.sort(z[:, 1])[::-1], atol=1e-12)
    assert z[0, 0] == pytest.approx(norm.ppf(0.05))       # top left: (smallest z1, largest z2)
    assert z[0, 1] == pytest.approx(norm.ppf(0.95))


@pytest.mark.parametrize("lo, hi", [(0.0, 0.9), (0.1, 1.0), (0.6, 0.4), (0.5, 0.5)])
def test_latent_grid_rejects_quantiles_outside_the_open_unit_interval(lo, hi):
    with pytest.raises(ValueError, match="0 < quantile_lo < quantile_hi < 1"):
        plots.latent_grid(5, lo, hi)


def test_latent_grid_needs_at_least_two_points_per_axis():
    with pytest.raises(ValueError, match="n must be an integer >= 2, got 1"):
        plots.latent_grid(1)


# ---------------------------------------------------------------------------
# the figures
# ---------------------------------------------------------------------------

def test_plot_reconstructions_shows_inputs_above_reconstructions(tmp_path):
    rng = np.random.default_rng(0)
    x, x_rec = distinct_images(7, rng), distinct_images(7, rng)
    fig = plots.plot_reconstructions(x, x_rec, tmp_path / "rec.png", n=5, image_shape=SHAPE)
    assert isinstance(fig, Figure)
    assert_png(tmp_path / "rec.png")
    top, bottom = fig.axes
    assert top.get_title() == "input x" and bottom.get_title() == "reconstruction"
    np.testing.assert_array_equal(shown_image(top), plots.image_grid(x[:5], 1, 5, SHAPE))
    np.testing.assert_array_equal(shown_image(bottom), plots.image_grid(x_rec[:5], 1, 5, SHAPE))


def test_plot_reconstructions_shows_all_examples_when_n_exceeds_them():
    x = distinct_images(3, np.random.default_rng(1))
    fig = plots.plot_reconstructions(x, x, n=10, image_shape=SHAPE)
    np.testing.assert_array_equal(shown_image(fig.axes[0]), plots.image_grid(x, 1, 3, SHAPE))


def test_plot_reconstructions_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"x_rec must be an array of the shape of x, \(3, 12\), got an array of shape \(2, 12\)"):
        plots.plot_reconstructions(np.zeros((3, P)), np.zeros((2, P)), image_shape=SHAPE)


def test_plot_samples_shows_the_image_grid_of_the_samples(tmp_path):
    images = distinct_images(10, np.random.default_rng(2))
    fig = plots.plot_samples(images, tmp_path / "samples.png", n_rows=3, n_cols=4, image_shape=SHAPE)
    assert_png(tmp_path / "samples.png")
    assert len(fig.axes) == 1
    # 10 images in 12 cells: the last two are padding
    np.testing.assert_array_equal(shown_image(fig.axes[0]), plots.image_grid(images, 3, 4, SHAPE))


def test_plot_samples_rejects_more_images_than_cells():
    with pytest.raises(ValueError, match="at most .* 4 images, got 5"):
        plots.plot_samples(np.zeros((5, P)), n_rows=2, n_cols=2, image_shape=SHAPE)


def test_plot_elbo_curves_draws_train_and_test_against_epoch(tmp_path):
    history = {"epoch": [1, 2, 3, 4], "train_elbo": [-200.0, -150.0, -130.0, -120.0],
               "test_elbo": [-190.0, None, -135.0, -125.0]}
    fig = plots.plot_elbo_curves(history, tmp_path / "elbo.png")
    assert_png(tmp_path / "elbo.png")
    (ax,) = fig.axes
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == "ELBO (nats per image)"
    train, valid = ax.get_lines()
    np.testing.assert_array_equal(train.get_xdata(), [1, 2, 3, 4])
    np.testing.assert_array_equal(train.get_ydata(), history["train_elbo"])
    # the epoch without a validation value is skipped, not drawn as 0 or joined through
    np.testing.assert_array_equal(valid.get_xdata(), [1, 3, 4])
    np.testing.assert_array_equal(valid.get_ydata(), [-190.0, -135.0, -125.0])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "test"]


@pytest.mark.parametrize("valid", [None, [None, None]])
def test_plot_elbo_curves_without_validation_values_draws_only_train(valid):
    history = {"epoch": [1, 2], "train_elbo": [-200.0, -150.0]}
    if valid is not None:
        history["test_elbo"] = valid
    (ax,) = plots.plot_elbo_curves(history).axes
    assert len(ax.get_lines()) == 1
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train"]


def test_plot_elbo_curves_marks_kl_warmup_epochs():
    history = {"epoch": [1, 2, 3], "train_elbo": [-90.0, -110.0, -120.0], "beta": [0.0, 0.5, 1.0]}
    (ax,) = plots.plot_elbo_curves(history).axes
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("warm-up" in text for text in legend), legend


@pytest.mark.parametrize("history, message", [
    ({"train_elbo": [1.0]}, "history must be a dict with a key 'epoch'"),
    ({"epoch": [1, 2], "train_elbo": [1.0]}, r"history\['train_elbo'\] must be 2 values"),
    ({"epoch": [1], "train_elbo": [1.0], "test_elbo": [1.0, 2.0]}, r"'test_elbo'\] must be 1 values"),
])
def test_plot_elbo_curves_rejects_malformed_history(history, message):
    with pytest.raises(ValueError, match=message):
        plots.plot_elbo_curves(history)


class RecordingDecoder:
    """A fake decoder: records its calls; the image of z is a fixed, distinct function of z."""

    def __init__(self):
        self.calls = []

    def __call__(self, z):
        self.calls.append(np.array(z, copy=True))
        weights = np.linspace(0.1, 1.0, P)
        return 0.5 + 0.1 * np.tanh(z[:, :1] * weights + z[:, 1:] * weights[::-1])


def test_plot_latent_manifold_decodes_the_grid_once_and_shows_its_image_grid(tmp_path):
    n = 6
    decode = RecordingDecoder()
    fig = plots.plot_latent_manifold(decode, tmp_path / "manifold.png", n=n, image_shape=SHAPE)
    assert_png(tmp_path / "manifold.png")
    # one vectorised call with the whole grid, in latent_grid's order
    assert len(decode.calls) == 1
    (z,) = decode.calls
    assert z.shape == (n * n, 2)
    np.testing.assert_array_equal(z, plots.latent_grid(n))
    (ax,) = fig.axes
    np.testing.assert_array_equal(shown_image(ax), plots.image_grid(decode(z), n, n, SHAPE))
    assert ax.get_xlabel() == "$z_1$" and ax.get_ylabel() == "$z_2$"


@pytest.mark.parametrize("n", [2, 3, 5, 10, 19, 20])
def test_plot_latent_manifold_ticks_are_tile_z_values_symmetric_about_zero(n):
    (ax,) = plots.plot_latent_manifold(lambda z: np.zeros((len(z), P)), n=n, image_shape=SHAPE).axes
    axis = norm.ppf(np.linspace(0.05, 0.95, n))
    H, W = SHAPE
    for ticks, labels, size, values in [(ax.get_xticks(), ax.get_xticklabels(), W, axis),
                                        (ax.get_yticks(), ax.get_yticklabels(), H, axis[::-1])]:
        tile = (np.asarray(ticks) - (size - 1) / 2) / (size + 1)      # tick at a tile's centre
        np.testing.assert_allclose(tile, np.round(tile))
        shown = np.array([float(t.get_text().replace("\u2212", "-")) for t in labels])
        np.testing.assert_allclose(shown, values[np.round(tile).astype(int)], atol=0.005)
        np.testing.assert_allclose(np.sort(shown), -np.sort(shown)[::-1], atol=0.005)


def test_plot_latent_manifold_rejects_a_decoder_returning_the_wrong_shape():
    with pytest.raises(ValueError, match=r"decode must be a function returning .* \(16, 12\) .* got one returning \(16, 11\)"):
        plots.plot_latent_manifold(lambda z: np.zeros((len(z), P - 1)), n=4, image_shape=SHAPE)


def test_plot_latent_scatter_colours_each_point_by_its_label(tmp_path):
    rng = np.random.default_rng(3)
    z, labels = rng.standard_normal((50, 2)), rng.integers(0, 10, 50)
    fig = plots.plot_latent_scatter(z, labels, tmp_path / "scatter.png")
    assert_png(tmp_path / "scatter.png")
    assert len(fig.axes) == 2                     # the scatter and its colorbar
    (points,) = fig.axes[0].collections
    np.testing.assert_array_equal(points.get_offsets(), z)
    np.testing.assert_array_equal(points.get_array(), labels)
    # one tick per digit, at its value (Matplotlib 3.4 reports 6 as 6.000000000000001)
    np.testing.assert_allclose(fig.axes[1].get_yticks(), np.arange(10), rtol=0, atol=1e-9)


def test_plot_latent_scatter_labels_each_class_at_its_median():
    z = np.array([[0.0, 0.0], [2.0, 2.0], [4.0, 4.0], [-1.0, 5.0]])
    fig = plots.plot_latent_scatter(z, np.array([3, 3, 3, 8]))
    texts = {t.get_text(): t.get_position() for t in fig.axes[0].texts}
    assert texts == {"3": (2.0, 2.0), "8": (-1.0, 5.0)}


def test_plot_elbo_curves_names_the_held_out_curve_test_as_in_the_history():
    history = {"epoch": [1, 2], "train_elbo": [-200.0, -150.0], "test_elbo": [-190.0, -160.0]}
    (ax,) = plots.plot_elbo_curves(history).axes
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "test"]


@pytest.mark.parametrize("z, labels, message", [
    (np.zeros((5, 3)), np.zeros(5, int), r"z must be an array of shape \(N, 2\), got an array of shape \(5, 3\).*z\[:, :2\].*z_dim=2"),
    (np.zeros(5), np.zeros(5, int), r"z must be an array of shape \(N, 2\), got an array of shape \(5,\)"),
    (np.zeros((5, 2)), np.zeros(4, int), r"labels must be an array of shape \(5,\)"),
    (np.zeros((2, 2)), np.array([0, 10]), "labels must be integers in 0 ... 9"),
    (np.zeros((2, 2)), np.array([0.5, 1.0]), "labels must be integers in 0 ... 9"),
])
def test_plot_latent_scatter_rejects_bad_shapes_and_labels(z, labels, message):
    with pytest.raises(ValueError, match=message):
        plots.plot_latent_scatter(z, labels)


def test_importing_plots_leaves_the_backend_and_pyplot_alone():
    # a fresh interpreter, so the import really happens; "svg" is a backend nobody would switch to
    code = ("import sys, matplotlib; matplotlib.use('svg'); import minivae.experiments.plots; "
            "print(matplotlib.get_backend()); "
            "print('matplotlib.pyplot' in sys.modules, "
            "any(getattr(v, '__name__', '') == 'minivae.vae' for v in vars(minivae.experiments.plots).values()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    backend, loaded = out.stdout.split("\n")[:2]
    assert backend.lower() == "svg", f"importing minivae.experiments.plots switched the backend to {backend}"
    assert loaded == "False False", "minivae.experiments.plots should need neither pyplot nor the vae module (it draws arrays)"


def test_plotting_leaves_the_backend_alone(tmp_path):
    before = matplotlib.get_backend()
    plots.plot_samples(np.zeros((4, P)), tmp_path / "s.png", n_rows=2, n_cols=2, image_shape=SHAPE)
    assert matplotlib.get_backend() == before


@pytest.mark.parametrize("call, error, message", [
    (lambda: plots.latent_grid(3, "a"), TypeError, r"^quantile_lo must be a real number, got 'a'"),
    (lambda: plots.plot_elbo_curves(None), TypeError, r"^history must be a dict of per-epoch lists"),
    (lambda: plots.plot_elbo_curves({"epoch": [1], "train_elbo": ["a"]}), TypeError,
     r"^history\['train_elbo'\] must be an array of real numbers"),
    (lambda: plots.image_grid([[0.1, 0.2], [0.3]], 1, 2, (1, 2)), ValueError,
     r"^images must be an array of real numbers \(rows of equal length\), got a ragged list$"),
])
def test_plot_functions_name_a_bad_argument_instead_of_a_numpy_error(call, error, message):
    with pytest.raises(error, match=message):
        call()

