# %% [markdown]
# # 06 · Training a VAE on MNIST
#
# Step 10 of the seed derivation ([docs/seed.md](../docs/seed.md); beyond the seed text, from
# the paper): the VAE is trained by maximising the ELBO jointly over the decoder's $\theta$
# and the encoder's $\phi$ with minibatch stochastic gradient ascent (Kingma & Welling 2013,
# Algorithm 1). For a minibatch $X^M$ of $M$ images drawn from the $N$ training images the
# objective is their Eq. (8),
#
# $$
# \mathcal{L}(\theta, \phi; X) \simeq \tilde{\mathcal{L}}^M(\theta, \phi; X^M)
# = \frac{N}{M} \sum_{i=1}^{M} \tilde{\mathcal{L}}(\theta, \phi; x^{(i)}),
# $$
#
# with $\tilde{\mathcal{L}}$ the estimator B of tutorial 05 (analytic KL, $L = 1$ sample per
# image). minivae minimises the loss $-\frac{1}{M}\sum_i \tilde{\mathcal{L}}(\theta, \phi;
# x^{(i)})$, the same objective per image (the constant $N$ only rescales the step size), so
# every number below is in **nats per image**.
#
# `minivae.train` is that loop: shuffle, cut into minibatches, binarise each minibatch afresh
# (each pixel becomes 1 with probability equal to its grey level; "dynamic binarisation"),
# `loss_and_grads`, an optimiser step; after each epoch, the ELBO on the test set (binarised
# once, with a fixed seed, so that epochs are comparable).
#
# We train two models on the MNIST subset that ships with minivae (9,000 training and 1,000
# test images, no download): one with $D = 20$ latent dimensions for the ELBO, reconstructions
# and samples, and one with $D = 2$ whose latent space we can draw (the paper's Fig. 4).
#
# `python tutorials/06_training_mnist.py` takes about 45 s on two cores;
# `MINIVAE_FAST=1` trains on 1,000 images for 5 epochs (the figures are then blurry but
# complete). Figures go to `tutorials/figures/` or to `MINIVAE_FIGURES`.

# %%
# %matplotlib inline
import os
from pathlib import Path

import numpy as np

import minivae
from minivae.experiments import plots
from minivae.data.preprocessing import fixed_binarization
from minivae.evaluate import evaluate_elbo

FAST = os.environ.get("MINIVAE_FAST", "") not in ("", "0")
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
FIGURES = Path(os.environ.get("MINIVAE_FIGURES", HERE / "figures"))
FIGURES.mkdir(parents=True, exist_ok=True)

# configuration (the defaults of `minivae train`, with fewer epochs)
HIDDEN = (400,)          # one hidden layer in the encoder and in the decoder
BATCH_SIZE = 100         # M, as in the paper
LR = 1e-3                # Adam's step size
EPOCHS = 5 if FAST else 20
N_TRAIN = 1000 if FAST else 9000
SEED = 0

# %% [markdown]
# ## 1. The data
#
# `load_mnist()` returns grey levels in $[0, 1]$ as rows of $784 = 28 \times 28$ pixels, and
# the digit labels (the VAE never sees the labels; we only use them to colour a figure at the
# end). The Bernoulli likelihood $\log p_\theta(x \mid z) = \sum_i [x_i \log \lambda_i + (1 -
# x_i)\log(1 - \lambda_i)]$ with $\lambda = \mathrm{sigmoid}(\text{logits})$ is a proper
# log-probability for binary $x$, which is why the images are binarised.

# %%
data = minivae.load_mnist()
x_train = data.train.x[:N_TRAIN]
print(data.source)
print(f"x_train {x_train.shape} {x_train.dtype}, values in [{x_train.min()}, {x_train.max()}]; "
      f"x_test {data.test.x.shape}")

# %% [markdown]
# ## 2. Training, $D = 20$
#
# The architecture follows the paper's MNIST models (one hidden layer each; Appendix C.1) with
# the choices `minivae train` makes by default: 400 ReLU units instead of 500 tanh units, and
# Adam (Kingma & Ba 2015) instead of Adagrad. (`minivae train --hidden 500 --activation tanh
# --optimizer adagrad --lr 0.01` is closer to the paper; it learns more slowly.) float32 is
# enough for training; the gradients were checked in float64 (tutorials 04, 05).
#
# Before training, every pixel is roughly a coin flip: with logits exactly 0, $\log
# p_\theta(x \mid z) = 784 \log \tfrac12 = -543$ nats. The untrained model scores clearly
# less, about $-634$ nats (full settings), for two reasons the cell below measures. (1) Its
# logits are random numbers of order 1, not 0, and uncorrelated with $x$; since softplus is
# convex, $\mathbb{E}[\mathrm{softplus}(l)] \ge \mathrm{softplus}(\mathbb{E}\,l) = \log 2$
# (Jensen), so random zero-mean logits do *worse* than a coin flip on average: the
# reconstruction term is about $-630$. (2) The KL term, about 4 nats, is subtracted. Every nat
# gained above this is learned structure.

# %%
model = minivae.VAE(784, 20, hidden=HIDDEN, dtype=np.float32, seed=SEED)
x_test = fixed_binarization(model.check_data(data.test.x), SEED)     # the test set, binarised once
elbo_untrained = evaluate_elbo(model, x_test)
print(f"untrained: test ELBO {elbo_untrained:.1f} nats per image (784 log 1/2 = {784 * np.log(0.5):.1f})")
_, _, cache0 = model.loss_and_grads(x_test, rng=np.random.default_rng(SEED), return_cache=True)
reconstruction0, kl0 = cache0["log_px_z"].mean(), cache0["kl_qp"].mean()
print(f"  of which reconstruction {reconstruction0:.1f} and -KL {-kl0:.1f}; logits' sd {cache0['out'].std():.2f}")
assert reconstruction0 < 784 * np.log(0.5) < 0 < kl0, "random logits do worse than a coin flip"

history = minivae.train(model, x_train, data.test.x, epochs=EPOCHS, batch_size=BATCH_SIZE,
                        lr=LR, seed=SEED, verbose=True)
test_elbo = evaluate_elbo(model, x_test, n_samples=10)
print(f"trained: test ELBO {test_elbo:.1f} nats per image (L = 10 samples per image)")
assert history["test_elbo"][-1] > history["test_elbo"][0], "the test ELBO must improve"
assert test_elbo > elbo_untrained + 200, "training must gain hundreds of nats"

# %% [markdown]
# **Figure `06_elbo.png`**: the ELBO per epoch on the training minibatches (the mean of the
# estimates seen during the epoch, while the parameters were still changing) and on the test
# set (after the epoch; the line labelled "test"). What to see: a steep rise in the first epochs, then slow gains. The
# test curve starts *above* the training one because it is measured after the epoch, the
# training value during it; later the training curve overtakes it, as the model begins to fit
# its training images better than new ones. With the full settings the test ELBO ends near
# $-110$ nats per image; `minivae train` (30 epochs) reaches about $-107$. The paper's Fig. 2
# plots the same quantity for its MNIST runs, over many more training samples.

# %%
plots.plot_elbo_curves(history, FIGURES / "06_elbo.png")

# %% [markdown]
# ## 3. Reconstructions
#
# `model.reconstruct(x)` encodes $x$, takes the posterior mean $z = \mu_\phi(x)$ and decodes
# it to the Bernoulli means $\lambda = \mathrm{sigmoid}(\text{logits})$, the expected image.
# It is the "auto-encoder" in the name: $x \to z \to \hat{x}$ through a 20-number bottleneck.
#
# **Figure `06_reconstructions.png`**: ten test digits (top) and their reconstructions
# (bottom). What to see: mostly, the digit identity and its slant and thickness survive; the
# reconstructions are smoother than the inputs (they are probabilities, and the decoder
# averages over the posterior's uncertainty).
#
# A number for the same claim: the cross-entropy between a binarised test image and its
# reconstruction must beat the best *constant* guess, the average training image.

# %%
x_show = data.test.x[:10]
plots.plot_reconstructions(x_show, model.reconstruct(x_show), FIGURES / "06_reconstructions.png")

# %%
def cross_entropy(x, probs):
    """Mean over images of -sum_i [x_i log p_i + (1 - x_i) log(1 - p_i)], in nats."""
    probs = np.clip(probs, 1e-6, 1 - 1e-6)
    return -np.mean(np.sum(x * np.log(probs) + (1 - x) * np.log(1 - probs), axis=1))


ce_model = cross_entropy(x_test, model.reconstruct(x_test))
ce_mean = cross_entropy(x_test, np.broadcast_to(x_train.mean(axis=0), x_test.shape))
print(f"reconstruction cross-entropy: {ce_model:.1f} nats (average-image baseline: {ce_mean:.1f})")
assert ce_model < ce_mean

# %% [markdown]
# ## 4. Samples
#
# The generative model on its own: $z \sim p(z) = \mathcal{N}(0, I)$, then the decoder mean.
# No encoder and no data are involved. (`model.sample(n, rng)`.)
#
# **Figure `06_samples.png`**: 64 samples. What to see: many are recognisable digits, many
# others are blends of two digits or broken strokes, and all are blurrier than the
# reconstructions. A random $z$ can land between the regions the encoder uses for real
# digits, where the decoder has learned nothing clean; samples from the prior are the weak
# point of a VAE, and of a small one trained briefly on 9,000 images in particular (the
# paper's Fig. 5 shows samples of models trained far longer).

# %%
samples = model.sample(64, rng=np.random.default_rng(SEED))
plots.plot_samples(samples, FIGURES / "06_samples.png")

# %% [markdown]
# ## 5. A two-dimensional latent space
#
# With $D = 2$ the whole latent space can be drawn, as in the paper's Fig. 4. We train a
# second model with the same settings and `z_dim=2`; its ELBO is lower (two numbers per image
# carry less than twenty), but its latent space is a picture.
#
# **Figure `06_manifold.png`** (`experiments.plots.plot_latent_manifold`): the decoder mean at a $20
# \times 20$ grid of $z$, evenly spaced in *probability* under the prior (the inverse Gaussian
# CDF of an even grid, as in Fig. 4). The paper gives no range for that grid (its text speaks of
# the unit square, whose edges map to infinity); `plots.latent_grid`'s default, $[0.05, 0.95]^2$,
# a common choice rather than the paper's, reaches only $|z_j| \le 1.64$, and the scatter below has its 1s, 6s and 7s beyond that; so the grid here is
# $[0.001, 0.999]^2$, $|z_j| \le 3.09$, which holds nearly all codes (the last cell checks that,
# with the full settings, at least 95% of the test codes lie inside it; 96.3% in our run).
# What to see: digits that change smoothly from tile to tile; each digit class occupies a region, and between regions the
# images morph from one class into its neighbour (a 7 into a 9, a 0 into a 6). This is the
# continuity the KL term buys: $q_\phi$ must stay close to $\mathcal{N}(0, I)$, so codes
# cannot be scattered arbitrarily. Some tiles, where hardly any training image has its code
# (compare the scatter), are smeared blends that look like no digit.
#
# **Figure `06_latent_scatter.png`** (`experiments.plots.plot_latent_scatter`): the posterior means
# $\mu_\phi(x)$ of the 1,000 test images, coloured by their label (5 in black, so that 3, 5
# and 8 can be told apart), each class also marked by its digit at the median of its codes
# (where medians nearly coincide, one label can hide another). What to see: codes
# grouped by digit, learned without labels, within a few units of the origin (the prior's
# scale). Distinctive digits, the 1s above all, get a region of their own far from the
# centre; digits that share strokes (3, 5, 8; 4, 9) crowd together near the centre and
# overlap, because two numbers per image cannot separate everything.
#
# A number for the grouping: classify each test image by the nearest class centroid of the
# training images' codes. Chance is 10%; with the full settings this gets about 55%.

# %%
model2 = minivae.VAE(784, 2, hidden=HIDDEN, dtype=np.float32, seed=SEED)
history2 = minivae.train(model2, x_train, data.test.x, epochs=EPOCHS, batch_size=BATCH_SIZE,
                         lr=LR, seed=SEED, verbose=True)
test_elbo2 = evaluate_elbo(model2, x_test, n_samples=10)
print(f"z_dim = 2: test ELBO {test_elbo2:.1f} nats per image (z_dim = 20: {test_elbo:.1f})")

# %%
plots.plot_latent_manifold(model2.decode, FIGURES / "06_manifold.png", quantile_lo=0.001, quantile_hi=0.999)

# %%
mu_test, _ = model2.encode(data.test.x)
plots.plot_latent_scatter(mu_test, data.test.y, FIGURES / "06_latent_scatter.png")

# %%
mu_train, _ = model2.encode(x_train)
centroids = np.stack([mu_train[data.train.y[:N_TRAIN] == c].mean(axis=0) for c in range(10)])
distance = ((mu_test[:, None, :] - centroids[None]) ** 2).sum(axis=-1)    # (N_test, 10)
accuracy = np.mean(distance.argmin(axis=1) == data.test.y)
print(f"nearest-centroid accuracy in the 2-D latent space: {accuracy:.0%} (chance: 10%)")
assert accuracy > 0.25, "the digits should form clusters in the latent space"
z_edge = -plots.latent_grid(2, 0.001, 0.999)[0, 0]        # 3.09, the manifold grid's outer point
inside = np.mean(np.all(np.abs(mu_test) <= z_edge, axis=1))
print(f"{inside:.1%} of the test codes lie inside the manifold's grid, |z_j| <= {z_edge:.2f}")
if not FAST:      # after 5 epochs on 1,000 images (fast mode) the codes can spread wider
    assert inside >= 0.95, "the manifold figure should cover where the codes are"
if not FAST:
    assert test_elbo > test_elbo2, "20 latent dimensions should explain the data better than 2"
    assert accuracy > 0.5

# %% [markdown]
# ## Summary
#
# * `minivae.train(model, x_train, x_test, ...)` maximises the ELBO by minibatch stochastic
#   gradient ascent with dynamic binarisation; the returned history holds the per-epoch ELBOs.
# * A trained VAE reconstructs digits through a 20-number code, and generates new ones from
#   $z \sim \mathcal{N}(0, I)$.
# * With a 2-D code, the decoder's manifold and the encoder's codes can be drawn: a smooth,
#   clustered latent space, learned without labels.
#
# The ELBO is only a lower bound on $\log p_\theta(x)$; how far below is the subject of
# tutorial 07 (importance sampling and the IWAE bound). Tutorial 08 steps through one
# gradient of this model in a debugger.
