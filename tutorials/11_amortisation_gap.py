# %% [markdown]
# # 11 · The amortisation gap: how much the shared encoder costs
#
# Steps 3, 6 and 10 of the seed derivation ([docs/seed.md](../docs/seed.md)): variational
# inference picks, for each $x$, the $q(z \mid x)$ closest to the posterior, and the ELBO falls
# short of $\log p_\theta(x)$ by exactly that KL. The VAE does not optimise one $q$ per
# example: its encoder maps every $x$ to $(\mu_\phi(x), \log\sigma_\phi^2(x))$ with one set of
# weights $\phi$ (**amortised** inference; Kingma & Welling 2013, Sec. 2.1, the "recognition
# model"). So its $q_\phi(z \mid x)$ can fall short twice. Cremer, Li & Duvenaud (2018) split
# the gap of a fixed decoder $\theta$, with $q^*(z \mid x)$ the best diagonal Gaussian for this
# one $x$:
#
# $$
# \log p_\theta(x) - \mathcal{L}[q_\phi]
# = \underbrace{\log p_\theta(x) - \mathcal{L}[q^*]}_{\text{approximation gap}}
# + \underbrace{\mathcal{L}[q^*] - \mathcal{L}[q_\phi]}_{\text{amortisation gap}} ,
# \qquad
# q^* = \arg\max_{q \,\in\, \text{diagonal Gaussians}} \mathcal{L}[q] .
# $$
#
# The approximation gap, $\mathrm{KL}(q^* \,\|\, p(z \mid x))$, is what the *family* costs: no
# diagonal Gaussian is the true posterior. The amortisation gap is what *sharing* costs: the
# encoder is one function for all $x$, trained on the training images, and is not the best
# $q$ for a given test image. Both are $\ge 0$.
#
# To measure them we need three numbers per test image:
#
# * $\mathcal{L}[q_\phi]$: estimator B with the encoder's $q$ (`VAE.elbo`);
# * $\mathcal{L}[q^*]$: the same estimator with free parameters $(\mu, \log\sigma^2)$ per
#   image, maximised by stochastic gradient ascent (Adam) with the decoder fixed.
#   `topics.diagnostics.local_elbo(model, x, mu, logvar, eps)` gives the estimate and its gradient
#   with respect to $\mu$ and $\log\sigma^2$ (the backward of `VAE.backward` stopped at $z$;
#   checked against finite differences in `tests/test_diagnostics.py`);
# * $\log p_\theta(x)$: importance sampling with $k$ samples (tutorial 07), with $q^*$ as the
#   proposal (`topics.diagnostics.local_log_weights`), which is closer to the posterior than the
#   encoder's $q$ and so gives the tighter estimate.
#
# `python tutorials/11_amortisation_gap.py` takes about 35 s of CPU time (under a minute on
# two idle cores);
# `MINIVAE_FAST=1` trains less, on fewer test images and samples. Figures go to
# `tutorials/figures/` or to `MINIVAE_FIGURES`.

# %%
# %matplotlib inline
import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from scipy.special import logsumexp

import minivae
from minivae import evaluate, optim
from minivae.topics import diagnostics
from minivae.data.preprocessing import fixed_binarization

FAST = os.environ.get("MINIVAE_FAST", "") not in ("", "0")
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
FIGURES = Path(os.environ.get("MINIVAE_FIGURES", HERE / "figures"))
FIGURES.mkdir(parents=True, exist_ok=True)

SEED = 0
Z_DIM = 16
HIDDEN = (200,)
EPOCHS = 3 if FAST else 10
N_TRAIN = 1000 if FAST else 9000
N_EVAL = 20 if FAST else 100          # test images whose gaps we measure
STEPS = 300 if FAST else 600          # Adam steps of the per-example optimisation
K_ELBO = 200 if FAST else 1000        # samples per image for each ELBO estimate
K_IWAE = 1000 if FAST else 3000       # importance samples per image for log p(x)
CHUNK = 100                           # samples per pass, so memory stays bounded

# %% [markdown]
# ## 1. A trained decoder, and the amortised ELBO
#
# A standard Bernoulli VAE, trained with `minivae.train` on the embedded MNIST subset. Then
# the decoder is fixed for the rest of the tutorial; only $q$ changes.
#
# Every ELBO below is estimated from $K$ samples per image with *the same* $\epsilon$ for every
# $q$ (common random numbers): $z = \mu + \sigma \odot \epsilon$ with shared $\epsilon$ makes
# the estimates of two nearby $q$ move together, so their *difference* has a much smaller
# standard error than each of them. The standard error of a mean over images is the standard
# deviation over images divided by $\sqrt{N}$ (it includes both the Monte Carlo noise and the
# spread between images).

# %%
data = minivae.load_mnist()
model = minivae.VAE(784, Z_DIM, hidden=HIDDEN, dtype=np.float32, seed=SEED)
minivae.train(model, data.train.x[:N_TRAIN], epochs=EPOCHS, seed=SEED, verbose=False)
x = fixed_binarization(data.test.x[:N_EVAL], SEED)                      # binary, fixed once
eps_elbo = np.random.default_rng(1).standard_normal((K_ELBO, N_EVAL, Z_DIM)).astype(np.float32)


def elbo_of(mu, logvar):
    """Per-image estimator B with K_ELBO samples (the shared eps_elbo), in chunks: (N,)."""
    parts = [diagnostics.local_elbo(model, x, mu, logvar, eps_elbo[i:i + CHUNK], grad=False)
             * len(eps_elbo[i:i + CHUNK]) for i in range(0, K_ELBO, CHUNK)]
    return np.sum(parts, axis=0, dtype=np.float64) / K_ELBO


def mean_se(values):
    return values.mean(), values.std(ddof=1) / np.sqrt(len(values))


mu_enc, logvar_enc = model.encode(x)
elbo_amortised = elbo_of(mu_enc, logvar_enc)
# the same number as VAE.elbo with the same noise: local_elbo at the encoder's q is estimator B
np.testing.assert_allclose(elbo_amortised[:5], model.elbo(x[:5], eps=eps_elbo[:, :5]), rtol=1e-5)
print(f"amortised ELBO: {mean_se(elbo_amortised)[0]:.2f} +- {mean_se(elbo_amortised)[1]:.2f} nats per image")

# %% [markdown]
# ## 2. The best $q$ for each image
#
# Gradient ascent on $\sum_b \mathcal{L}(\mu_b, \log\sigma_b^2)$: each image's parameters
# appear only in its own term, so this optimises every $q_b$ separately, all at once. Adam on
# the dict `{"mu": ..., "logvar": ...}` (it minimises, so it gets the negated gradient), 10
# fresh samples per step, started at the encoder's output, with a step size that drops tenfold
# for the last third of the steps so that the noise of the gradient does not keep $q$ jittering
# around its optimum.
#
# **Figure `11_local_optimisation.png`**: the mean ELBO estimate over the images during the
# ascent (noisy: 10 samples per step), against the amortised ELBO and the estimate of $\log
# p_\theta(x)$ (section 3). What to see: a quick rise in the first hundred steps, then a
# plateau: the per-image $q$ closes most of the distance from the amortised ELBO to $\log
# p(x)$ (that distance closed is the amortisation gap), and what it cannot close is the
# approximation gap.

# %%
q = {"mu": mu_enc.copy(), "logvar": logvar_enc.copy()}
adam = optim.Adam(q, lr=1e-2)
rng = np.random.default_rng(2)
trace = np.empty(STEPS)
for t in range(STEPS):
    if t == 2 * STEPS // 3:
        adam.lr = 1e-3
    eps = rng.standard_normal((10, N_EVAL, Z_DIM)).astype(np.float32)
    elbo, dmu, dlogvar = diagnostics.local_elbo(model, x, q["mu"], q["logvar"], eps)
    adam.step({"mu": -dmu, "logvar": -dlogvar})
    trace[t] = elbo.mean()
elbo_local = elbo_of(q["mu"], q["logvar"])
print(f"optimised ELBO: {mean_se(elbo_local)[0]:.2f} +- {mean_se(elbo_local)[1]:.2f} nats per image")

# %% [markdown]
# ## 3. $\log p_\theta(x)$, and the two gaps
#
# The importance-sampled estimate $\log \frac1k \sum_i w_i$ with $z_i \sim q^*$ (tutorial 07:
# its expectation is the IWAE bound $\mathcal{L}_k \le \log p(x)$, which approaches $\log p(x)$
# as $k$ grows). For comparison, the same with the encoder's $q$ as the proposal
# (`evaluate.log_likelihood`): the better proposal should give the larger (tighter) estimate.
#
# This $\log p(x)$ is an *estimate* from $k$ samples, and like every such estimate it is
# itself a stochastic lower bound: on average below the true $\log p_\theta(x)$, by about
# $\mathrm{Var}(w)/(2k\,\mathbb{E}[w]^2)$ (tutorial 07). So the measured approximation gap,
# (estimate) $- \mathcal{L}[q^*]$, is itself a lower bound on the true one (on average), and the
# amortisation gap's *share* of the total, amortisation gap / (estimate $- \mathcal{L}[q_\phi]$),
# is an upper bound on the true share: the total it is divided by is too small by the same
# bias. With $k$ large and $q^*$ close to the posterior the bias is small, but it has one sign.
#
# Then the gaps, per image, and their means with standard errors. Both gaps are $\ge 0$ in
# exact arithmetic (given that $q^*$ is at least as good as the encoder's $q$, which the
# ascent from it ensures up to noise); the assertions check that each mean exceeds zero by
# more than four standard errors (fixed seeds; for a gap that were truly zero this would fail
# with probability below $10^{-4}$).

# %%
rng_iwae = np.random.default_rng(3)
log_w = np.concatenate([
    diagnostics.local_log_weights(model, x, q["mu"], q["logvar"],
                                  rng_iwae.standard_normal((CHUNK, N_EVAL, Z_DIM)).astype(np.float32))
    for _ in range(K_IWAE // CHUNK)])                                   # (K_IWAE, N)
log_px = logsumexp(log_w, axis=0) - np.log(K_IWAE)
log_px_encoder = evaluate.log_likelihood(model, x, k=K_IWAE, rng=np.random.default_rng(4))

approximation_gap = log_px - elbo_local
amortisation_gap = elbo_local - elbo_amortised
for name, values in (("log p(x), proposal q*", log_px), ("log p(x), proposal q_phi", log_px_encoder),
                     ("ELBO, q*", elbo_local), ("ELBO, q_phi", elbo_amortised),
                     ("approximation gap", approximation_gap), ("amortisation gap", amortisation_gap)):
    m, se = mean_se(values)
    print(f"{name:>26}: {m:9.2f} +- {se:.2f}")
share = amortisation_gap.mean() / (log_px - elbo_amortised).mean()
print(f"the amortisation gap is {share:.0%} of the measured total gap log p(x) - ELBO "
      "(an upper bound on its true share: the estimate of log p(x) is biased low)")

for gap in (approximation_gap, amortisation_gap):
    m, se = mean_se(gap)
    assert m > 4 * se, "both gaps are positive"
# the tighter proposal: never much below the encoder's estimate (4 s.e. of the difference)
m, se = mean_se(log_px - log_px_encoder)
assert m > -4 * se

# %% [markdown]
# **Figure `11_gaps.png`**: for each test image, sorted by the total gap, the approximation gap
# (bottom) and the amortisation gap stacked on it; together they are $\log p(x) -
# \mathcal{L}[q_\phi]$. What to see: both parts are present for every image; the approximation
# gap is small and similar from image to image (a diagonal Gaussian fits these posteriors
# fairly well), while the amortisation gap is the larger part (in the full run about three
# quarters of the measured total, an upper bound on its true share, as section 3 explains) and
# varies a lot between images. Cremer et al. (2018) also find the
# amortisation gap to be a large part of the total on MNIST. A more flexible $q$ family
# shrinks the first part; a better encoder (larger, trained longer, or refined per example
# as here) the second.

# %%
fig = Figure(figsize=(6.5, 3.8))
ax = fig.subplots()
ax.plot(trace, lw=0.8, label="mean ELBO estimate during the ascent (10 samples)")
ax.axhline(elbo_amortised.mean(), color="C1", ls="--", label="amortised ELBO $\\mathcal{L}[q_\\phi]$")
ax.axhline(elbo_local.mean(), color="C2", ls="--", label="optimised ELBO $\\mathcal{L}[q^*]$")
ax.axhline(log_px.mean(), color="k", ls="-", lw=1, label="$\\log p_\\theta(x)$, importance sampled")
ax.set(xlabel="Adam step", ylabel="nats per image (mean over images)",
       title=f"per-example optimisation of q, {N_EVAL} test images",
       ylim=(elbo_amortised.mean() - 0.5 * (log_px.mean() - elbo_amortised.mean()),
             log_px.mean() + 0.5 * (log_px.mean() - elbo_amortised.mean())))
ax.legend(fontsize=7, loc="lower right")
ax.grid(alpha=0.3)
fig.tight_layout()
fig.savefig(FIGURES / "11_local_optimisation.png", dpi=90)
fig

# %%
order = np.argsort(approximation_gap + amortisation_gap)
fig = Figure(figsize=(6.5, 3.8))
ax = fig.subplots()
index = np.arange(N_EVAL)
ax.bar(index, approximation_gap[order], width=0.9, label="approximation gap $\\log p(x) - \\mathcal{L}[q^*]$")
ax.bar(index, amortisation_gap[order], width=0.9, bottom=approximation_gap[order],
       label="amortisation gap $\\mathcal{L}[q^*] - \\mathcal{L}[q_\\phi]$")
ax.set(xlabel="test image (sorted by total gap)", ylabel="nats",
       title="log p(x) - ELBO, split (Cremer et al. 2018)")
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(FIGURES / "11_gaps.png", dpi=90)
fig

# %% [markdown]
# ## Summary
#
# * The ELBO of a VAE falls short of $\log p_\theta(x)$ for two reasons: the family of $q$
#   (approximation gap) and the sharing of one encoder across all $x$ (amortisation gap).
# * Optimising $(\mu, \log\sigma^2)$ per example with the decoder fixed measures the second;
#   `topics.diagnostics.local_elbo` gives the gradient, `minivae.optim.Adam` does the ascent.
# * An importance-sampled $\log p(x)$ with the optimised $q$ as the proposal measures the
#   first.
#
# The same per-example refinement can be used at test time to report a tighter ELBO, or
# during training (semi-amortised VAEs; Kim et al. 2018).
