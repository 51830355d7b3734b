# %% [markdown]
# # 10 · A Gaussian decoder on real-valued data
#
# Step 10 of the seed derivation ([docs/seed.md](../docs/seed.md)): the decoder outputs the
# parameters of $p_\theta(x \mid z)$, Bernoulli logits for binary data, and for real-valued data
# (the paper's Frey Face experiments; Kingma & Welling 2013, Appendix C.2) a Gaussian,
#
# $$
# \log p_\theta(x \mid z) = \log \mathcal{N}\big(x;\, m_\theta(z),\, \operatorname{diag}\sigma^2\big)
# = -\frac12 \sum_{i=1}^{P} \Big[\log 2\pi + \log\sigma_i^2 + \frac{(x_i - m_i)^2}{\sigma_i^2}\Big],
# $$
#
# with the mean $m_\theta(z)$ from the decoder MLP and the variance either **fixed** or
# **learned** (in minivae one log-variance per pixel, `params["decoder.logvar"]`; the paper's
# decoder outputs it per example). This tutorial trains both on the embedded MNIST digits as
# real-valued data and shows
#
# 1. how the data are made continuous (**dequantisation**) and what a log-*density* in nats per
#    dimension means, and how to turn it into bits per dimension of the 8-bit images;
# 2. that a fixed variance is a $\beta$ in disguise: $\sigma^2$ weighs the squared error against
#    the KL, and $\sigma^2 = 1$ on data in $[0, 1]$ leaves the latent code with few nats;
# 3. why a learned variance can **run away**: on data with pixels that never change, the
#    likelihood has no maximum, and dequantisation is what gives it one;
# 4. the Bernoulli model of tutorial 06 beside it, and why their likelihoods are not comparable.
#
# `python tutorials/10_gaussian_decoder.py` trains four small models, about 25 s of CPU time
# (under a minute on two idle cores); `MINIVAE_FAST=1` trains each on 1,000 images for 3 epochs (a few seconds; only the
# claims that hold after so little training are asserted there). Figures go to
# `tutorials/figures/` or to `MINIVAE_FIGURES`.

# %%
# %matplotlib inline
import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

import minivae
from minivae import optim
from minivae.topics import diagnostics
from minivae.experiments import plots
from minivae.data.preprocessing import fixed_binarization

FAST = os.environ.get("MINIVAE_FAST", "") not in ("", "0")
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
FIGURES = Path(os.environ.get("MINIVAE_FIGURES", HERE / "figures"))
FIGURES.mkdir(parents=True, exist_ok=True)

Z_DIM = 16
HIDDEN = (200,)
BATCH_SIZE = 100
LR = 1e-3
EPOCHS = 3 if FAST else 10
N_TRAIN = 1000 if FAST else 6000
SEED = 0
P = 784
LOG_256 = np.log(256.0)

# %% [markdown]
# ## 1. Dequantised digits, and nats per dimension
#
# `load_mnist()` gives grey levels $k/255$, $k \in \{0, \dots, 255\}$: a discrete variable. A
# density model put on discrete values can make its density arbitrarily large at them
# (section 4). **Uniform dequantisation** (Theis, van den Oord & Bethge 2016) adds noise that
# fills each quantisation bin: $y = (k + u)/256$ with $u \sim \mathcal{U}(0, 1)$ per pixel, so
# $y \in (0, 1)$ and bin $k$ is the interval $[k/256, (k+1)/256)$. Fresh $u$ for every
# training minibatch; one fixed draw for the test set.
#
# A model density $p(y)$ on $(0, 1)^P$ gives each 8-bit image the probability of its bin, a
# cube of volume $256^{-P}$; by Jensen's inequality
#
# $$
# \log P(k) = \log \int_{\text{bin}} p(y)\, dy \;\ge\; \mathbb{E}_u\big[\log p\big((k + u)/256\big)\big] - P \log 256 ,
# $$
#
# so a log-density (or an ELBO of one) $\ell$ in nats per image converts to an upper bound on
# the code length of the 8-bit image in **bits per dimension**, $b = (P \log 256 - \ell) / (P
# \log 2) = 8 - \ell / (P \log 2)$. The log-density itself, in nats per dimension $\ell / P$,
# can be positive (a density is not a probability: a Gaussian with $\sigma = 0.01$ has
# density 40 at its mean), and it depends on the units: the same model for $255\,y$ has
# $\log 255 = 5.5$ nats per dimension less. Bits per dimension of the discrete data do not
# depend on such choices, which is why papers report them.

# %%
data = minivae.load_mnist()
levels_train = np.round(data.train.x[:N_TRAIN] * 255)          # k in 0 ... 255
levels_test = np.round(data.test.x * 255)
assert np.allclose(levels_train / 255, data.train.x[:N_TRAIN])  # the data really are k / 255


def dequantise(levels, rng):
    return ((levels + rng.uniform(size=levels.shape)) / 256).astype(np.float32)


y_test = dequantise(levels_test, np.random.default_rng(SEED + 1))   # fixed once
ALWAYS_0 = levels_train.max(axis=0) == 0           # pixels that are 0 in every training image
print(f"y_test in [{y_test.min():.5f}, {y_test.max():.5f}]; "
      f"{np.sum(levels_train.max(axis=0) == 0)} pixels are 0 in every training image")


def bits_per_dim(elbo_nats_per_image):
    return (P * LOG_256 - elbo_nats_per_image) / (P * np.log(2))


# %% [markdown]
# ## 2. Fixed and learned variance
#
# Three Gaussian models, identical but for $\sigma^2$: fixed at 1 (the "squared error" VAE on
# data in $[0, 1]$), fixed at $0.1^2$, and learned per pixel. `minivae.train` trains them with
# a `step` of this tutorial, as in tutorial 09: dequantisation in place of binarisation, and
# the learned $\log\sigma^2$ with an Adam of its own. A Bernoulli model on binarised data
# (tutorial 06's model, with this tutorial's sizes; `train`'s own step) is trained beside
# them for section 5.
#
# With a fixed $\sigma^2$ the reconstruction term is $-\frac{1}{2\sigma^2}\sum_i (x_i - m_i)^2$
# plus a constant, so the ELBO is, up to that constant, $-\frac{1}{2\sigma^2}$ times the
# squared error plus $2\sigma^2\,\mathrm{KL}$:
# $\mathcal{L} = -\frac{1}{2\sigma^2}\big[\sum_i (x_i - m_i)^2 + 2\sigma^2\,\mathrm{KL}\big] + \text{const}$
# (with the squared error averaged over $q$). **$\sigma^2$ plays the part of $\beta$ (times 2)**. On
# data in $[0, 1]$ the squared error of a whole image is a few tens at most, so with $\sigma^2 =
# 1$ a nat of KL buys little reconstruction and the encoder sends few nats: a low **rate**
# (tutorial 09), here compared with the $\sigma = 0.1$ model, whose KL is 100 times cheaper
# relative to its squared error.

# %%
def dequantised_step(model):
    """A step for minivae.train: fresh dequantisation noise, then two Adams, one for log sigma^2."""
    # Adam moves every parameter by about lr per step; log sigma^2 has several units to
    # travel (from 0 to about -5 on the strokes' scale), so it gets its own Adam, 20 times faster
    logvar = {k: p for k, p in model.params.items() if k == "decoder.logvar"}
    networks = {k: p for k, p in model.params.items() if k not in logvar}
    optimisers = [optim.Adam(networks, lr=LR)] + ([optim.Adam(logvar, lr=20 * LR)] if logvar else [])

    def step(model, opt, xb, rng, beta):            # opt, train's one Adam, is not used
        yb = dequantise(np.round(xb * 255), rng)    # xb = k / 255; fresh noise every time
        loss, grads = model.loss_and_grads(yb, beta=beta, rng=rng, check=False)
        for optimiser in optimisers:
            optimiser.step({k: grads[k] for k in optimiser.params})
        return loss
    return step


def fit(likelihood, obs_logvar="learned", epochs=EPOCHS):
    model = minivae.VAE(P, Z_DIM, hidden=HIDDEN, likelihood=likelihood, dtype=np.float32,
                        seed=SEED, obs_logvar=obs_logvar)
    # Bernoulli: train's own step (binarised afresh, one Adam); Gaussian: dequantised
    step = dequantised_step(model) if likelihood == "gaussian" else None
    minivae.train(model, data.train.x[:N_TRAIN], epochs=epochs, batch_size=BATCH_SIZE,
                  optimizer="adam", lr=LR, seed=SEED, verbose=False, step=step)
    return model


def summary(model, x, n_samples=10):
    mu, logvar = model.encode(x)
    elbo = float(model.elbo(x, n_samples=n_samples, rng=np.random.default_rng(1)).astype(np.float64).mean())
    mse = float(np.mean((model.reconstruct(x) - data.test.x) ** 2))       # against the grey levels
    rate = float(diagnostics.kl_per_dimension(mu, logvar).sum(axis=1).mean())
    return {"elbo": elbo, "rate": rate, "mse": mse}


gaussians = {"sigma^2 = 1": fit("gaussian", 0.0),
             "sigma = 0.1": fit("gaussian", float(np.log(0.01))),
             "learned": fit("gaussian", "learned")}
bernoulli = fit("bernoulli")

results = {name: summary(m, y_test) for name, m in gaussians.items()}
for name, r in results.items():
    print(f"{name:>12}: ELBO {r['elbo']:8.1f} nats/image = {r['elbo'] / P:+.3f} nats/dim "
          f"= {bits_per_dim(r['elbo']):.2f} bits/dim;  rate {r['rate']:5.1f} nats;  "
          f"reconstruction MSE {r['mse']:.4f}")
assert results["sigma^2 = 1"]["rate"] < results["sigma = 0.1"]["rate"], \
    "a large fixed variance is a large beta: a lower rate"
assert results["sigma = 0.1"]["mse"] < results["sigma^2 = 1"]["mse"]
assert results["learned"]["elbo"] > max(results["sigma^2 = 1"]["elbo"], results["sigma = 0.1"]["elbo"]), \
    "a learned variance can only fit the data better than either fixed one"

# %% [markdown]
# The learned model has the highest ELBO by far: it is free to choose, pixel by pixel, how
# much a squared error costs. Its positive nats per dimension are a density above 1 on
# average, not a probability above 1. The bits per dimension put the fixed variances in their
# place: a uniform density on $(0, 1)^P$ scores exactly 8 bits per dimension, and $\sigma^2 =
# 1$ does worse than that (in the full run 9.4); $\sigma = 0.1$ is about level with it, and
# only the learned variance beats it clearly (about 6; small, briefly trained models with one
# variance per pixel are far from the 1-2 bits per dimension of good MNIST density models).
#
# **Figure `10_reconstructions.png`**: test digits (top row) and their reconstructions, the
# decoder mean at $z = \mu_\phi(x)$, by the three Gaussian models. What to see: with $\sigma^2 =
# 1$, blurred digits that keep less of the input's shape (a low rate); with $\sigma = 0.1$ and
# with the learned variance, more of the digit's shape.

# %%
x_show = y_test[:8]
rows = [x_show] + [gaussians[name].reconstruct(x_show) for name in gaussians]
fig = Figure(figsize=(8, 4.6))
ax = fig.subplots()
ax.imshow(plots.image_grid(np.clip(np.concatenate(rows), 0, 1), len(rows), 8), cmap="gray", vmin=0, vmax=1)
ax.set_yticks([14 + 29 * i for i in range(len(rows))])
ax.set_yticklabels(["data"] + list(gaussians))
ax.set_xticks([])
ax.set_title("test digits and reconstructions, Gaussian decoders")
fig.tight_layout()
fig.savefig(FIGURES / "10_reconstructions.png", dpi=90)
fig

# %% [markdown]
# ## 3. What the learned variance learns
#
# For a fixed decoder mean, the ELBO is maximised over $\log\sigma_i^2$ where its derivative
# vanishes, $\frac{\partial}{\partial \log\sigma_i^2} = -\frac12 \big(1 - \mathbb{E}[(x_i -
# m_i)^2] / \sigma_i^2\big) = 0$: the best $\sigma_i^2$ is the mean squared residual of pixel
# $i$. So the model learns a small variance where it predicts well (the background) and a
# large one on the strokes. The left panel of the next figure shows it.

# %%
learned = gaussians["learned"]
sigma = np.exp(0.5 * learned.params["decoder.logvar"].astype(np.float64))
background = ALWAYS_0
print(f"learned sigma: median {np.median(sigma[background]):.4f} on the {background.sum()} "
      f"always-0 pixels, {np.median(sigma[~background]):.4f} on the others")
assert np.median(sigma[background]) < np.median(sigma[~background])

# %% [markdown]
# ## 4. Why a learned variance can run away
#
# Take a pixel that is 0 in every training image, and a decoder whose mean there is exactly
# 0 (a zero column of the last weight matrix and a zero bias do it). Its term of the ELBO is
# $-\frac12(\log 2\pi + \log\sigma_i^2)$ per image, which grows without bound as $\sigma_i^2 \to
# 0$: the derivative with respect to $\log \sigma_i^2$ is $-\frac12$ per image whatever its
# value, so gradient ascent lowers $\log\sigma_i^2$ at every step and never stops. The
# likelihood of such data has **no maximum**; its supremum is $+\infty$. The MNIST digits have
# over a hundred such pixels, and a decoder mean that is merely close to the data does the same
# more slowly (floating point ends it with an overflow of $e^{-\log\sigma^2}$).
#
# Dequantised, the same pixel is $y_i = u_i/256$, never constant: its residual variance about
# the best mean $1/512$ is $1/(12 \cdot 256^2)$, so the ELBO term has a maximum at
# $\log\sigma_i^2 = -\log(12 \cdot 256^2) = -13.57$ and falls on both sides.
#
# The cell below builds exactly that decoder from the trained one (the always-0 pixels get a
# constant mean, 0 for the raw data and $1/512$ for the dequantised data), sets their
# $\log\sigma^2$ to a range of values, and measures the ELBO on the test images with
# `VAE.elbo`, and its gradient with `VAE.loss_and_grads`.
#
# **Figure `10_variance_runaway.png`**: left, the learned $\sigma_i$ of every pixel as an
# image (section 3): small on the border, where every image is 0, and largest in the middle,
# where the strokes vary; right, the ELBO gain per always-0 pixel against its $\log\sigma^2$
# (relative to $\log\sigma^2 = 0$), on the raw and on the dequantised test images.
# What to see: the raw-data line rises for ever with slope $\frac12$ per unit of $-\log\sigma^2$ (10
# nats at $-20$); the dequantised curve peaks at $-13.57$ (dotted) and plunges beyond it.

# %%
import copy

last = f"decoder.{learned.n_layers - 1}"
x_raw = data.test.x.astype(np.float32)
test_background = background & (levels_test.max(axis=0) == 0)        # 0 in the test images too
log_vars = np.linspace(-20, 0, 21 if FAST else 41)
eps = np.random.default_rng(2).standard_normal((1, len(x_raw), Z_DIM)).astype(np.float32)
gain = {}
for label, x, mean in (("raw k/255", x_raw, 0.0), ("dequantised", y_test, 1 / 512)):
    model = copy.deepcopy(learned)
    model.params[f"{last}.W"][:, test_background] = 0
    model.params[f"{last}.b"][test_background] = mean
    elbos, slopes = [], []
    for s in log_vars:
        model.params["decoder.logvar"][test_background] = s
        elbos.append(float(model.elbo(x, eps=eps).astype(np.float64).mean()))
        _, grads = model.loss_and_grads(x, eps=eps)
        slopes.append(float(-grads["decoder.logvar"][test_background].mean()))   # d ELBO / d logvar_i
    gain[label] = (np.array(elbos) - elbos[-1]) / test_background.sum()
    if mean == 0.0:
        # -1/2 per pixel at every value: there is no stationary point
        np.testing.assert_allclose(slopes, -0.5, rtol=1e-4)
        np.testing.assert_allclose(np.diff(gain[label]), -0.5 * np.diff(log_vars), rtol=1e-3)
s_best = log_vars[np.argmax(gain["dequantised"])]
print(f"{test_background.sum()} always-0 pixels; dequantised optimum at log sigma^2 = {s_best:.1f} "
      f"(theory {-np.log(12 * 256**2):.2f}); raw data: gain {gain['raw k/255'][0]:.1f} nats per pixel "
      f"at -20 and still rising")
assert abs(s_best - (-np.log(12 * 256**2))) <= log_vars[1] - log_vars[0]

# %%
fig = Figure(figsize=(10, 4))
ax_img, ax_gain = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.5]})
im = ax_img.imshow(sigma.reshape(28, 28), cmap="magma")
fig.colorbar(im, ax=ax_img, label="learned $\\sigma_i$")
ax_img.set(title="learned $\\sigma_i$ per pixel", xticks=[], yticks=[])
for label, g in gain.items():
    ax_gain.plot(log_vars, g, marker=".", label=label)
ax_gain.axvline(-np.log(12 * 256**2), color="k", ls=":", lw=1, label="$-\\log(12 \\cdot 256^2)$")
ax_gain.set(xlabel="$\\log\\sigma_i^2$ of the always-0 pixels", ylabel="ELBO gain per pixel (nats)",
            title="no maximum without dequantisation", ylim=(-10, None))
ax_gain.legend(fontsize=8)
ax_gain.grid(alpha=0.3)
fig.tight_layout()
fig.savefig(FIGURES / "10_variance_runaway.png", dpi=90)
fig

# %% [markdown]
# ## 5. Beside the Bernoulli model
#
# The Bernoulli model of tutorial 06 is trained on *binarised* digits: its ELBO bounds the log-
# *probability* of a binary image, while the Gaussian's bounds the log-*density* of a
# dequantised 8-bit image, which converts to bits per 8-bit pixel. Stored as they are, the data
# take 1 bit per binary pixel and 8 bits per 8-bit pixel; a model's code length has no such
# ceiling (the $\sigma^2 = 1$ model above scores more than 8 bits per dimension, 9.4 in the
# full run), and a good model comes in well below it. The two numbers describe different data
# and cannot rank the models; a model of binarised images
# is no model of grey levels at all. What they can be compared on is a task both do: here the
# squared error of the reconstruction (decoder mean at $\mu_\phi(x)$) against the grey levels.
# The Bernoulli decoder's mean $\mathrm{sigmoid}(\text{logits})$ estimates the probability of
# a pixel being on, which is the grey level on average, since $\mathbb{E}[x_\text{bin}] = x$.

# %%
x_binary = fixed_binarization(data.test.x.astype(np.float32), SEED)
r_bern = summary(bernoulli, x_binary)
print(f"Bernoulli on binarised digits: ELBO {r_bern['elbo']:.1f} nats/image = "
      f"{-r_bern['elbo'] / (P * np.log(2)):.3f} bits per binary pixel; reconstruction MSE against "
      f"the grey levels {r_bern['mse']:.4f}")
print(f"Gaussian, learned variance: {bits_per_dim(results['learned']['elbo']):.2f} bits per 8-bit pixel; "
      f"MSE {results['learned']['mse']:.4f}")
assert r_bern["mse"] < results["sigma^2 = 1"]["mse"]
assert 0 < -r_bern["elbo"] / (P * np.log(2)) < 1 < bits_per_dim(results["learned"]["elbo"])
if not FAST:      # after three epochs (fast mode) no model beats the uniform density yet
    assert bits_per_dim(results["learned"]["elbo"]) < 8, "better than a uniform density"

# %% [markdown]
# ## Summary
#
# * A Gaussian decoder models real-valued data; discrete data (8-bit pixels) are made
#   continuous by uniform dequantisation, and a log-density converts to bits per dimension of
#   the discrete data, $8 - \ell/(P \log 2)$, which is what is comparable across papers.
# * A fixed variance weighs squared error against KL like a $\beta$: $\sigma^2 = 1$ on $[0, 1]$
#   data gives a low rate and blurred reconstructions.
# * A learned variance fits a small $\sigma$ where the decoder is accurate; on data with
#   constant pixels the likelihood has no maximum and the variance runs off to 0;
#   dequantisation bounds it at the noise's variance.
# * Bernoulli and Gaussian likelihoods are probabilities of different data; compare the models
#   on a common task, not on their ELBOs.
#
# Tutorial 11 measures how much of the gap between the ELBO and $\log p(x)$ comes from the
# encoder being shared across all images.
