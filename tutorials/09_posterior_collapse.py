# %% [markdown]
# # 09 · Posterior collapse, KL warm-up and $\beta$: which latent dimensions a VAE uses
#
# Step 10 of the seed derivation ([docs/seed.md](../docs/seed.md)) trains the VAE by maximising
# the ELBO of Kingma & Welling 2013. Written per example, with estimator B,
#
# $$
# \mathcal{L}(x) = \underbrace{\mathbb{E}_{q_\phi(z \mid x)}\big[\log p_\theta(x \mid z)\big]}_{-\,\text{distortion } \mathrm{Dist}(x)}
# \;-\; \underbrace{\sum_{d=1}^{D} \mathrm{KL}\big(q_\phi(z_d \mid x) \,\|\, \mathcal{N}(0, 1)\big)}_{\text{rate } R(x)} ,
# $$
#
# two terms that pull in opposite directions: the reconstruction term wants $z$ to say as much
# about $x$ as possible, the KL term charges for every nat of it. The KL of a diagonal Gaussian
# against $\mathcal{N}(0, I)$ is a sum over latent dimensions, so each dimension $d$ has its
# own price, $\mathrm{KL}_d = \tfrac12(\mu_d^2 + \sigma_d^2 - 1 - \log \sigma_d^2)$. A dimension
# whose $q_\phi(z_d \mid x)$ equals the prior for every $x$ costs nothing and carries nothing:
# it has **collapsed** to the prior. Alemi et al. (2018) call $R$ the *rate* and $D$ the
# *distortion*; the ELBO is $-(\mathrm{Dist} + R)$.
#
# This tutorial measures
#
# 1. the KL per latent dimension, and the **active units** of Burda, Grosse & Salakhutdinov
#    (2016, Sec. 5.2): dimension $d$ is active if $A_d = \mathrm{Cov}_x\big(\mathbb{E}_{q(z \mid
#    x)}[z_d]\big) > 10^{-2}$ (for a Gaussian $q$, the variance of $\mu_d(x)$ over the data);
# 2. the rate/distortion trade-off as the KL weight $\beta$ of the $\beta$-VAE (Higgins et al.
#    2017), $\mathcal{L}_\beta = -D - \beta R$, varies;
# 3. KL warm-up (Bowman et al. 2016; Sønderby et al. 2016): $\beta$ rising from near 0 to 1
#    over the first epochs;
# 4. **sum versus mean**: minivae sums over pixels and latent dimensions and averages over the
#    batch; averaging the reconstruction over pixels instead, with the KL still summed, is
#    $\beta = 784$ in disguise.
#
# The reusable computations are in `minivae.topics.diagnostics` (`kl_per_dimension`, `active_units`).
# `python tutorials/09_posterior_collapse.py` trains eight small models, about 45 s of CPU time
# (about a minute on two idle cores); `MINIVAE_FAST=1` trains each on 1,000 images for 3
# epochs (about 5 s of CPU time; the numbers are then rougher, and only the claims that hold
# there are asserted). Figures go to `tutorials/figures/` or to `MINIVAE_FIGURES`.

# %%
# %matplotlib inline
import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

import minivae
from minivae.topics import diagnostics
from minivae.experiments import plots
from minivae import distributions as dist
from minivae.data.preprocessing import bernoulli_binarize, fixed_binarization

FAST = os.environ.get("MINIVAE_FAST", "") not in ("", "0")
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
FIGURES = Path(os.environ.get("MINIVAE_FIGURES", HERE / "figures"))
FIGURES.mkdir(parents=True, exist_ok=True)

Z_DIM = 32               # more than MNIST needs, so that some dimensions are left unused
HIDDEN = (200,)
BATCH_SIZE = 100
LR = 1e-3
EPOCHS = 3 if FAST else 10
N_TRAIN = 1000 if FAST else 6000
SEED = 0
BETAS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)

data = minivae.load_mnist()
x_train = data.train.x[:N_TRAIN].astype(np.float32)
x_test = fixed_binarization(data.test.x.astype(np.float32), SEED)     # binary, fixed once

# %% [markdown]
# ## 1. The training step, with $\beta$ as a knob
#
# `minivae.train` runs the epochs (shuffle, minibatches, history); here $\beta$ is the
# experiment, so the step it takes on each minibatch is written out and handed to it as
# `step`: binarise the minibatch afresh (each pixel is 1 with probability equal to its grey
# level), `loss_and_grads(x, beta=...)`, an Adam step. `loss_and_grads` returns
# $-\frac{1}{B}\sum_b \mathcal{L}_{\beta}(x_b)$; `grad_scale` lets section 5 train on a
# rescaled loss. The `beta` that `train` passes to the step is its KL warm-up factor (1 without
# warm-up, section 4), so the step uses $\beta$ times it. After every epoch (`on_epoch`) we
# record the test rate and the number of active units.
#
# `measure(model)` returns, on the 1,000 binarised test images: the rate $R$ (the analytic KL,
# nats per image), the distortion $\mathrm{Dist}$ ($-\mathbb{E}_q \log p_\theta(x \mid z)$ from 10 samples
# per image), the KL per dimension (averaged over images) and the activity $A_d$.

# %%
def measure(model, n_samples=10):
    mu, logvar = model.encode(x_test)
    kl_d = diagnostics.kl_per_dimension(mu, logvar)                  # (N, D)
    activity, active = diagnostics.active_units(mu)
    rate = kl_d.sum(axis=1).mean()
    elbo = model.elbo(x_test, n_samples=n_samples, rng=np.random.default_rng(1)).astype(np.float64)
    distortion = -(elbo.mean() + rate)                               # ELBO = -Dist - R
    return {"rate": rate, "distortion": distortion, "elbo": elbo.mean(),
            "kl_d": kl_d.mean(axis=0), "activity": activity, "active": int(active.sum())}


def fit(kl_weight, warmup_epochs=0, grad_scale=1.0, epochs=EPOCHS):
    """A VAE trained by minivae.train on -D - kl_weight R; returns it and (beta, rate, active) per epoch."""
    model = minivae.VAE(784, Z_DIM, hidden=HIDDEN, dtype=np.float32, seed=SEED)
    curve = []

    def step(model, opt, xb, rng, beta):                 # beta: train's warm-up, 1/W, 2/W, ..., 1
        xb = bernoulli_binarize(xb, rng, check=False)    # fresh binary draws every step
        loss, grads = model.loss_and_grads(xb, beta=kl_weight * beta, rng=rng, check=False)
        if grad_scale != 1.0:
            grads = {k: g * np.float32(grad_scale) for k, g in grads.items()}
        opt.step(grads)                                  # Adam
        return loss

    def record(epoch, history):                          # after every epoch
        m = measure(model, n_samples=1)
        curve.append((kl_weight * history["beta"][-1], m["rate"], m["active"]))

    minivae.train(model, x_train, epochs=epochs, batch_size=BATCH_SIZE, optimizer="adam", lr=LR,
                  warmup_epochs=warmup_epochs, seed=SEED, verbose=False, step=step, on_epoch=record)
    return model, np.array(curve)


models, results, curves = {}, {}, {}
for beta in BETAS:
    models[beta], curves[beta] = fit(beta)
    results[beta] = measure(models[beta])
    r = results[beta]
    print(f"beta {beta:>4}: rate {r['rate']:6.2f}  distortion {r['distortion']:7.2f}  "
          f"ELBO {r['elbo']:8.2f}  active units {r['active']:2d} of {Z_DIM}")

# %% [markdown]
# ## 2. The KL per latent dimension, and active units
#
# The KL per dimension must add up to the KL of estimator B (a check of
# `topics.diagnostics.kl_per_dimension` against `distributions.kl_standard_normal`, to float32
# rounding). Then the two views of "is dimension $d$ used": its average price
# $\overline{\mathrm{KL}}_d$ and its activity $A_d$. A collapsed dimension has $\mu_d(x)
# \approx 0$ and $\sigma_d(x) \approx 1$ for every $x$, so both are near 0. They are not the
# same measure: a $\mu_d$ that is constant but not 0 costs KL and carries nothing (activity
# 0), which is why Burda et al. count activity, not KL.
#
# Collapse is a slow process. An untrained encoder's $\mu_d(x)$ already varies with $x$ (its
# activity is about 0.06 in every dimension, above the threshold), and a dimension the decoder
# does not use is pushed to the prior only as fast as the optimiser shrinks its weights.
# After the ten epochs of this tutorial a $\beta = 1$ model still uses every one of its 32
# dimensions, each for a fraction of a nat or more; Burda et al. report about 20 active of 50
# after 3,280 epochs. A larger $\beta$ speeds it up, and $\beta = 784$ (section 5) shows it
# complete.
#
# **Figure `09_kl_per_dimension.png`**: left, $\overline{\mathrm{KL}}_d$ of each dimension,
# sorted, for three values of $\beta$; right, the activity $A_d$ in the same order, on a log
# scale, with Burda et al.'s threshold $10^{-2}$ (dashed). What to see: with $\beta = 0.25$ and
# 1 the KL is spread over all dimensions (at $\beta = 1$ between about 0.5 and 1.4 nats each in
# the full run); with $\beta = 8$ most dimensions cost a small fraction of a nat and the ones
# with the least KL fall below the threshold: the onset of posterior collapse.

# %%
mu, logvar = models[1.0].encode(x_test)
np.testing.assert_allclose(diagnostics.kl_per_dimension(mu, logvar).sum(axis=1),
                           dist.kl_standard_normal(mu, logvar)[0], rtol=1e-5)
for beta in (1.0, 8.0):
    r = results[beta]
    inactive = r["activity"] <= 1e-2
    print(f"beta = {beta:g}: {r['active']} active units of {Z_DIM}; KL per dimension from "
          f"{r['kl_d'].min():.3f} to {r['kl_d'].max():.2f} nats"
          + (f"; the inactive ones cost at most {r['kl_d'][inactive].max():.3f}" if inactive.any() else ""))
if not FAST:      # an untrained encoder's mu varies with x in every dimension (A_d near 0.06)
    assert results[8.0]["active"] < Z_DIM, "a large beta collapses some dimensions"
    inactive = results[8.0]["activity"] <= 1e-2
    assert results[8.0]["kl_d"][inactive].max() < 0.1, "a collapsed dimension costs (almost) nothing"

# %%
fig = Figure(figsize=(10, 3.8))
ax_kl, ax_act = fig.subplots(1, 2)
for beta in (0.25, 1.0, 8.0):
    r = results[beta]
    order = np.argsort(r["kl_d"])[::-1]
    ax_kl.plot(np.arange(Z_DIM), r["kl_d"][order], marker="o", label=f"$\\beta = {beta:g}$")
    ax_act.plot(np.arange(Z_DIM), np.maximum(r["activity"][order], 1e-6), marker="o",
                label=f"$\\beta = {beta:g}$: {r['active']} active")
ax_kl.set(xlabel="latent dimension (sorted by KL)", ylabel="mean KL$_d$ (nats)",
          title="KL per latent dimension (test set)")
ax_act.axhline(1e-2, color="k", ls="--", lw=1, label="threshold $10^{-2}$")
ax_act.set(yscale="log", xlabel="latent dimension (same order)", ylabel="$A_d = $ Var$_x(\\mu_d(x))$",
           title="activity (Burda et al. 2016)")
for ax in (ax_kl, ax_act):
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
fig.tight_layout()
fig.savefig(FIGURES / "09_kl_per_dimension.png", dpi=90)
fig

# %% [markdown]
# ## 3. Rate and distortion as $\beta$ varies
#
# For every $\beta$ the trained model is a point $(R, \mathrm{Dist})$ (the distortion is not
# written $D$, which is the latent dimension: docs/notation.md). Maximising
# $-\mathrm{Dist} - \beta R$ means that a model trained with a larger $\beta$ ends at a lower
# rate and a higher distortion: a fact of the optimum (for two optima,
# $\mathrm{Dist}_1 + \beta_1 R_1 \le \mathrm{Dist}_2 + \beta_1 R_2$ and
# $\mathrm{Dist}_2 + \beta_2 R_2 \le \mathrm{Dist}_1 + \beta_2 R_1$; adding gives $(\beta_2 - \beta_1)(R_2 - R_1) \le 0$), so
# here it holds to the extent that training finds the optimum. The ELBO ($\beta = 1$) of
# every model is $-(\mathrm{Dist} + R)$, the same for all points on a line of slope $-1$.
#
# **Figure `09_rate_distortion.png`**: distortion against rate for the six values of $\beta$,
# with dotted lines of constant ELBO through the $\beta = 1$ model. What to see: the points
# run from the top left (large $\beta$: few nats of rate, poor reconstructions) to the bottom
# right (small $\beta$); $\beta = 1$ is the point the ELBO favours. A model with $\beta \ne 1$
# is not a better model of $p(x)$ by the ELBO; it chooses another point of the trade-off.

# %%
rates = np.array([results[b]["rate"] for b in BETAS])
distortions = np.array([results[b]["distortion"] for b in BETAS])
print("rate:      ", np.round(rates, 1))
print("distortion:", np.round(distortions, 1))
assert np.all(np.diff(rates) < 0), "a larger beta must give a lower rate"
assert np.all(np.diff(distortions) > 0), "a larger beta must give a higher distortion"
if not FAST:
    best = max(BETAS, key=lambda b: results[b]["elbo"])
    print(f"highest test ELBO: beta = {best}")
    assert best in (0.5, 1.0, 2.0), "the ELBO should favour a beta near 1"
    assert results[8.0]["active"] < results[0.25]["active"]

# %%
fig = Figure(figsize=(5.5, 4.2))
ax = fig.subplots()
ax.plot(rates, distortions, marker="o")
for b, r, d in zip(BETAS, rates, distortions):
    ax.annotate(f"$\\beta = {b:g}$", (r, d), textcoords="offset points", xytext=(6, 4), fontsize=8)
elbo_1 = results[1.0]["rate"] + results[1.0]["distortion"]
r_line = np.linspace(0, rates.max() * 1.05, 2)
for offset in (-10, 0, 10):
    ax.plot(r_line, elbo_1 + offset - r_line, ls=":", color="0.5", lw=1)
ax.set(xlabel="rate $R$ = KL (nats per image)", ylabel="distortion $\\mathrm{Dist}$ (nats per image)",
       title="rate/distortion as $\\beta$ varies (test set)",
       ylim=(distortions.min() - 10, distortions.max() + 10))
ax.grid(alpha=0.3)
fig.tight_layout()
fig.savefig(FIGURES / "09_rate_distortion.png", dpi=90)
fig

# %% [markdown]
# ## 4. KL warm-up
#
# Early in training the decoder is poor, so information in $z$ buys little reconstruction,
# while the KL charges for it from the first step; a dimension that collapses early may never
# recover. KL warm-up trains with $\beta_t$ rising linearly from $1/W$ to 1 over the first $W$
# epochs (here $W$ = half the epochs, at least 2) and with the ELBO afterwards: `train`'s
# `warmup_epochs=W` (`minivae.training.beta_schedule`), the `beta` it passes to the step. We
# train two $\beta = 1$ models, with and without warm-up, and record the test rate and the
# active units after every epoch.
#
# **Figure `09_warmup.png`**: the rate (left) and the number of active units (right) per epoch.
# What to see: during warm-up the rate is higher (information is cheap); after it, the
# warmed-up model's rate falls towards the other's. How many units stay active at the end is
# measured and printed, not promised: with this small model and short training the two runs
# end close together (Sønderby et al. 2016 report the gains of warm-up for deeper models).

# %%
WARMUP = max(2, EPOCHS // 2)                # epochs; beta = 1/W, 2/W, ... 1
curve_plain = curves[1.0]                   # the beta = 1 model of section 1
model_warm, curve_warm = fit(1.0, warmup_epochs=WARMUP)
print(f"after epoch 1: rate {curve_warm[0, 1]:.1f} with warm-up (beta {curve_warm[0, 0]:.2f}), "
      f"{curve_plain[0, 1]:.1f} without")
print(f"at the end: active units {int(curve_warm[-1, 2])} with warm-up, {int(curve_plain[-1, 2])} without")
assert curve_warm[0, 1] > curve_plain[0, 1], "a smaller beta makes information cheaper"

# %%
fig = Figure(figsize=(10, 3.6))
ax_r, ax_a = fig.subplots(1, 2)
epochs = np.arange(1, EPOCHS + 1)
for curve, label in ((curve_plain, "no warm-up"), (curve_warm, f"warm-up over {WARMUP} epochs")):
    ax_r.plot(epochs, curve[:, 1], marker="o", label=label)
    ax_a.plot(epochs, curve[:, 2], marker="o", label=label)
ax_r.set(xlabel="epoch", ylabel="rate (nats per image)", title="test rate per epoch")
ax_a.set(xlabel="epoch", ylabel="active units", title=f"active units (of {Z_DIM})")
for ax in (ax_r, ax_a):
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
fig.tight_layout()
fig.savefig(FIGURES / "09_warmup.png", dpi=90)
fig

# %% [markdown]
# ## 5. Sum versus mean: a per-pixel mean is $\beta = 784$ in disguise
#
# minivae's loss for a minibatch of $B$ images is
#
# $$
# J = -\frac{1}{B} \sum_{b=1}^{B} \Big[ \sum_{i=1}^{P} \log p_\theta(x_{bi} \mid z_b)
# - \sum_{d=1}^{D} \mathrm{KL}_{bd} \Big] :
# $$
#
# a **sum** over the $P = 784$ pixels and the $D$ latent dimensions (that is what makes it the
# ELBO of an image, in nats per image) and a **mean** over the batch (which only rescales the
# step; `docs/derivations.md`, "Sum versus mean"). The first cell checks each of the three on
# a batch: the reconstruction term is the sum of the per-pixel terms $x_i l_i -
# \mathrm{softplus}(l_i)$, the KL the sum of `kl_per_dimension`, the loss the batch mean.
#
# A common slip, for example with a deep learning library's default "mean" reduction of a
# per-pixel loss, is to average the reconstruction over pixels and keep the KL summed:
#
# $$
# \begin{aligned}
# J_\text{mean} &= -\frac{1}{B} \sum_b \Big[ \frac{1}{P} \sum_i \log p_\theta(x_{bi} \mid z_b) - \mathrm{KL}_b \Big] \\
# &= \frac{1}{P} \cdot \Big( -\frac{1}{B} \sum_b \big[ \log p_\theta(x_b \mid z_b) - P\, \mathrm{KL}_b \big] \Big)
# = \frac{1}{P}\, J_{\beta = P} .
# \end{aligned}
# $$
#
# A constant factor does not move the optimum, so this trains a $\beta$-VAE with $\beta = 784$.
# The second cell checks the identity on the loss and on every gradient (same $\epsilon$; to
# float32 rounding), then trains with $J_\text{mean}$ literally (the $\beta = 784$ gradients
# times $1/784$).

# %%
model = models[1.0]
xb = x_test[:8]
eps = np.random.default_rng(2).standard_normal((1, 8, Z_DIM)).astype(np.float32)
loss, grads, cache = model.loss_and_grads(xb, eps=eps, return_cache=True)
logits = cache["out"][0].astype(np.float64)                              # (B, P)
per_pixel = xb * logits - np.logaddexp(0, logits)                        # log p(x_i | z), (B, P)
kl_d = diagnostics.kl_per_dimension(cache["mu"], cache["logvar"])        # (B, D)
np.testing.assert_allclose(cache["log_px_z"][0], per_pixel.sum(axis=1), rtol=1e-5)   # sum over pixels
np.testing.assert_allclose(cache["kl_qp"], kl_d.sum(axis=1), rtol=1e-5)              # sum over dimensions
np.testing.assert_allclose(loss, -np.mean(per_pixel.sum(axis=1) - kl_d.sum(axis=1)), rtol=1e-5)  # batch mean
print(f"loss {loss:.2f} = -mean_b [sum_i log p(x_bi|z_b) - sum_d KL_bd]: checked")

P = 784
loss_mean = -np.mean(per_pixel.mean(axis=1) - kl_d.sum(axis=1))          # the per-pixel mean
loss_784, grads_784 = model.loss_and_grads(xb, eps=eps, beta=P)
np.testing.assert_allclose(loss_mean, loss_784 / P, rtol=1e-5)
# J_mean = recon / P + KL is linear in its two parts: its gradient from beta = 0 and beta = 1
_, grads_0 = model.loss_and_grads(xb, eps=eps, beta=0.0)
scale = max(np.abs(g).max() for g in grads_784.values()) / P
for k in grads:
    grad_mean = grads_0[k] / P + (grads[k] - grads_0[k])                 # d(recon)/P + d(KL)
    assert np.abs(grad_mean - grads_784[k] / P).max() <= 1e-4 * scale, k
print(f"J_mean = J(beta = {P}) / {P}: loss and all {len(grads)} gradients agree")

# %% [markdown]
# What the disguised $\beta$ does, measured: the model trained on $J_\text{mean}$ against the
# ELBO-trained model of section 1 (same architecture, data, seed and epochs). At $\beta = 784$
# one nat of KL costs as much as 784 nats of reconstruction, so the encoder sends (almost)
# nothing: the rate is near zero, no unit is active, the decoder learns the one image that is
# best on average, and samples from the prior all look alike. Sample quality is measured by
# the **diversity** of 100 samples (the standard deviation over samples of each pixel's mean,
# averaged over pixels): 0 if every $z$ decodes to the same image.
#
# **Figure `09_sum_vs_mean.png`**: 32 samples from each model. What to see: left, varied
# digits (blurry after a short training); right, one blurred "average digit" repeated, the
# face of posterior collapse.

# %%
model_mean, _ = fit(float(P), grad_scale=1.0 / P)
r_mean, r_sum = measure(model_mean), results[1.0]
samples_sum = models[1.0].sample(100, rng=np.random.default_rng(3))
samples_mean = model_mean.sample(100, rng=np.random.default_rng(3))
diversity_sum, diversity_mean = samples_sum.std(axis=0).mean(), samples_mean.std(axis=0).mean()
print(f"sum (ELBO):  rate {r_sum['rate']:6.2f} nats, active {r_sum['active']:2d}, "
      f"test ELBO {r_sum['elbo']:7.1f}, sample diversity {diversity_sum:.3f}")
print(f"mean/pixel:  rate {r_mean['rate']:6.2f} nats, active {r_mean['active']:2d}, "
      f"test ELBO {r_mean['elbo']:7.1f}, sample diversity {diversity_mean:.3f}")
assert r_mean["rate"] < 1.0, "beta = 784 sends (almost) no information through z"
if not FAST:      # after 3 epochs (fast mode) the ELBO model's samples are still alike too
    assert r_mean["active"] == 0, "beta = 784 collapses every dimension"
    assert diversity_mean < 0.2 * diversity_sum, "collapsed samples barely vary"
assert r_mean["elbo"] < r_sum["elbo"], "and it is a worse model by the ELBO"

# %%
fig = Figure(figsize=(9, 4.6))
for ax, images, title in zip(fig.subplots(1, 2), (samples_sum, samples_mean),
                             ("sum over pixels (the ELBO)", f"mean over pixels ($\\beta = {P}$)")):
    ax.imshow(plots.image_grid(images[:32], 4, 8), cmap="gray", vmin=0, vmax=1)
    ax.set(title=title, xticks=[], yticks=[])
fig.tight_layout()
fig.savefig(FIGURES / "09_sum_vs_mean.png", dpi=90)
fig

# %% [markdown]
# ## Summary
#
# * The KL term is a sum over latent dimensions; a dimension left at the prior costs nothing
#   and carries nothing (posterior collapse of that dimension).
#   `topics.diagnostics.kl_per_dimension` and `topics.diagnostics.active_units` (Burda et al.'s
#   $\mathrm{Var}_x(\mu_d) > 10^{-2}$) find such dimensions. Collapse is slow at $\beta = 1$
#   (none after ten epochs here) and quick at large $\beta$.
# * $\beta$ moves the model along the rate/distortion trade-off: larger $\beta$, lower rate,
#   higher distortion, fewer active units; the ELBO is $-(\mathrm{Dist} + R)$ and favours $\beta$ near 1.
# * KL warm-up makes information cheap early in training; whether more units survive is
#   something to measure for each model.
# * minivae sums over pixels and latent dimensions and averages over the batch. A per-pixel
#   mean of the reconstruction with a summed KL is $\beta = 784$, and it collapses the posterior.
#
# Tutorial 10 replaces the Bernoulli decoder by a Gaussian one on real-valued data, where the
# same balance between the two terms depends on the decoder's variance; tutorial 11 asks how
# much of the gap between the ELBO and $\log p(x)$ is the encoder's fault.
