# %% [markdown]
# # 05 · The VAE: two estimators of the ELBO, the analytic KL, and their variance
#
# Steps 8-10 of the seed derivation ([docs/seed.md](../docs/seed.md)); the seed text
# stops mid-sentence at the start of step 8, as it introduces the Monte Carlo samples, so everything here
# completes it from Kingma & Welling 2013 rather than follows it. The ELBO of tutorial 02,
#
# $$
# \mathcal{L}(\theta, \phi; x) = \mathbb{E}_{q_\phi(z \mid x)}\big[\log p_\theta(x \mid z) + \log p(z)
# - \log q_\phi(z \mid x)\big] \;\le\; \log p_\theta(x),
# $$
#
# is an expectation, so it is estimated by Monte Carlo. The VAE (Kingma & Welling 2013, Sec. 3)
# makes three choices:
#
# * **encoder** (the "recognition model"): an MLP maps $x$ to the mean and log-variance of a
#   diagonal Gaussian, $q_\phi(z \mid x) = \mathcal{N}(\mu, \operatorname{diag} \sigma^2)$,
#   $(\mu, \log\sigma^2) = \mathrm{MLP}_\phi(x)$ (their Eq. 9);
# * **reparameterisation**: $z^{(l)} = \mu + \sigma \odot \epsilon^{(l)}$, $\epsilon^{(l)} \sim
#   \mathcal{N}(0, I)$ (Sec. 2.4), so the noise does not depend on $\phi$;
# * **decoder**: an MLP maps $z$ to the logits of a Bernoulli $p_\theta(x \mid z)$ per pixel
#   (Appendix C.1), for binary images.
#
# With $L$ samples per example there are two estimators (Eq. 6 and 7; seed, step 8):
#
# $$
# \begin{aligned}
# \tilde{\mathcal{L}}^A &= \frac{1}{L} \sum_{l=1}^{L} \Big[\log p_\theta(x \mid z^{(l)}) + \log p(z^{(l)})
# - \log q_\phi(z^{(l)} \mid x)\Big] , \\
# \tilde{\mathcal{L}}^B &= -\mathrm{KL}\big(q_\phi(z \mid x) \,\|\, p(z)\big)
# + \frac{1}{L} \sum_{l=1}^{L} \log p_\theta(x \mid z^{(l)}) ,
# \end{aligned}
# $$
#
# where for $q = \mathcal{N}(\mu, \operatorname{diag}\sigma^2)$ and $p(z) = \mathcal{N}(0, I)$
# the KL has a closed form (Appendix B; with it, $\tilde{\mathcal{L}}^B$ is their Eq. 10):
#
# $$
# -\mathrm{KL}\big(q_\phi(z \mid x) \,\|\, p(z)\big) = \frac12 \sum_{j=1}^{D} \big(1 + \log\sigma_j^2 - \mu_j^2 - \sigma_j^2\big).
# $$
#
# In minivae, `VAE.forward(x, eps, estimator="A")` is estimator A and `estimator="B"` is estimator B.
# This tutorial checks that both estimate the same number, that the closed-form KL is what the
# Monte Carlo average converges to, how the noise shrinks with $L$, and compares the variance
# of the two estimators, of their values and of their gradients, which is what training
# actually uses.
#
# `python tutorials/05_vae.py` takes about 25 s on two cores and 2 GB of memory at its peak;
# `MINIVAE_FAST=1` trains less and draws fewer samples. Figures go to `tutorials/figures/` or to `MINIVAE_FIGURES`.

# %%
# %matplotlib inline
import copy
import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

import minivae
from minivae import distributions as dist
from minivae import gradcheck
from minivae.data.preprocessing import fixed_binarization

FAST = os.environ.get("MINIVAE_FAST", "") not in ("", "0")
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
FIGURES = Path(os.environ.get("MINIVAE_FIGURES", HERE / "figures"))
FIGURES.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. The model, and one forward pass
#
# A VAE for MNIST: $P = 784$ pixels, $D = 20$ latent dimensions, one hidden layer of 200 units
# in each network (ReLU), float64 so that the statistics below are not blurred by rounding.
# The parameters are a plain dict of named arrays. The encoder's last layer outputs $2D$
# numbers: the first $D$ are $\mu$, the last $D$ are $\log\sigma^2$.

# %%
data = minivae.load_mnist()                       # embedded subset: 9,000 train, 1,000 test
x_test = fixed_binarization(data.test.x.astype(np.float64), seed=0)   # binary, fixed once

model = minivae.VAE(784, 20, hidden=(200,), dtype=np.float64, seed=0)
for name, p in model.params.items():
    print(f"{name:>12}: {p.shape}")

# %% [markdown]
# `VAE.forward` returns the per-example estimate and a `cache` holding every named
# intermediate (tutorial 08 walks through them in a debugger). Shapes with $B = 4$ examples and
# $L = 3$ samples: `eps` and `z` are $(L, B, D)$, the decoder output is $(L, B, P)$, and the
# reconstruction term $\log p_\theta(x \mid z^{(l)})$ is $(L, B)$, one number per sample and
# example.

# %%
B, L, D = 4, 3, model.z_dim
eps = rng.standard_normal((L, B, D))
elbo, cache = model.forward(x_test[:B], eps, estimator="B")
for key in ("x", "mu", "logvar", "eps", "z", "out", "log_px_z", "kl_qp"):
    print(f"{key:>9}: {cache[key].shape}")
print("ELBO estimates (B,):", np.round(elbo, 1))

# %% [markdown]
# **An untrained and a trained model.** How the two estimators compare depends on how far
# $q_\phi$ is from the prior, so we keep a copy of the untrained model and train the other
# for a few epochs with `minivae.train` (tutorial 06 is about training).

# %%
untrained = copy.deepcopy(model)
trained = model
n_train, epochs = (2000, 2) if FAST else (9000, 5)
history = minivae.train(trained, data.train.x[:n_train], data.test.x, epochs=epochs, seed=0)
print(f"test ELBO after {epochs} epochs: {history['test_elbo'][-1]:.1f} nats per image")
models = {"untrained": untrained, "trained": trained}

# %% [markdown]
# ## 2. Estimators A and B estimate the same ELBO
#
# Take one test image $x$ and draw $K$ independent single-sample estimates ($L = 1$) of each
# kind, using the **same** $\epsilon$ for both (a paired comparison). A neat way to do this in
# one vectorised call: repeat $x$ $K$ times as a batch; each row then gets its own $\epsilon$.
#
# Both estimators are unbiased for the same $\mathcal{L}$, so the mean of the differences
# $\tilde{\mathcal{L}}^A_k - \tilde{\mathcal{L}}^B_k$ must be zero up to Monte Carlo error. The
# check allows four standard errors, $4\, \mathrm{sd}(A - B)/\sqrt{K}$ (a fixed seed makes it
# deterministic; a correct implementation fails it with probability below $10^{-4}$).
#
# **Figure `05_estimators.png`**: histograms of the $K$ single-sample estimates of each
# estimator, for the untrained model (left) and the trained model (right), with their means.
# What to see: in each panel the two histograms are centred on the same value (the ELBO of that
# image); training moves the ELBO up by hundreds of nats and makes both estimators much less
# noisy. Which of the two is narrower is *not* the same in both panels, see below.

# %%
K = 500 if FAST else 2000
x_one = x_test[3:4]                                # one image (a 0)
spread = {}
fig = Figure(figsize=(10, 3.6))
for ax, (label, m) in zip(fig.subplots(1, 2), models.items()):
    x_rep = np.repeat(x_one, K, axis=0)            # (K, P): K copies, each with its own eps
    eps = rng.standard_normal((1, K, m.z_dim))
    est_a = m.elbo(x_rep, eps=eps, estimator="A")        # (K,) single-sample estimator A
    est_b = m.elbo(x_rep, eps=eps, estimator="B")  # (K,) single-sample estimator B
    diff = est_a - est_b
    se = diff.std() / np.sqrt(K)
    print(f"{label:>9}: mean A {est_a.mean():8.2f}, mean B {est_b.mean():8.2f}, "
          f"difference {diff.mean():+.3f} +- {se:.3f} (1 s.e.); sd A {est_a.std():.2f}, sd B {est_b.std():.2f}")
    assert abs(diff.mean()) < 4 * se, "A and B must agree in expectation"
    spread[label] = (est_a.std(), est_b.std())
    bins = np.linspace(min(est_a.min(), est_b.min()), max(est_a.max(), est_b.max()), 50)
    for est, name, color, style in ((est_a, "A (all Monte Carlo)", "C0", "-"),
                                    (est_b, "B (analytic KL)", "C1", "--")):
        ax.hist(est, bins=bins, alpha=0.5, color=color, label=f"{name}, sd {est.std():.1f}")
        ax.axvline(est.mean(), color=color, lw=2, ls=style)
    ax.set(title=f"{label} model: $K = {K}$ single-sample estimates", xlabel="ELBO estimate (nats)",
           ylabel="count")
    ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(FIGURES / "05_estimators.png", dpi=90)
fig

# %% [markdown]
# ## 3. The analytic KL is what the Monte Carlo average converges to
#
# Estimator A contains, inside its average, the single-sample KL estimate
# $\log q_\phi(z^{(l)} \mid x) - \log p(z^{(l)})$. Its mean is the closed form above. Writing
# $z_j = \mu_j + \sigma_j \epsilon_j$ gives, per dimension,
#
# $$
# \log q_\phi(z \mid x) - \log p(z) = \sum_j \Big[ -\tfrac12 \log \sigma_j^2 + \tfrac12 \mu_j^2
# + \mu_j \sigma_j \epsilon_j + \tfrac12 (\sigma_j^2 - 1)\, \epsilon_j^2 \Big],
# $$
#
# and with $\mathbb{E}[\epsilon^2] = 1$, $\operatorname{Var}[\epsilon^2] = 2$,
# $\operatorname{Cov}[\epsilon, \epsilon^2] = 0$ its mean and variance are
#
# $$
# \mathbb{E} = \mathrm{KL}(q \,\|\, p), \qquad
# \operatorname{Var} = \sum_j \Big[ \mu_j^2 \sigma_j^2 + \tfrac12 (\sigma_j^2 - 1)^2 \Big].
# $$
#
# The variance is zero only when $q = p(z)$: as soon as the encoder says anything about $x$,
# estimating the KL by sampling adds noise, which estimator B avoids. We draw samples from the
# trained model's $q_\phi(z \mid x)$ with `gaussian_sample`, evaluate both log-densities, and
# compare the mean and the variance with the formulas (each within four standard errors).
#
# **Figure `05_kl_monte_carlo.png`**: the running average of $n$ single-sample KL estimates
# against the closed form (dashed), with the band of $\pm 2$ standard errors (from the variance
# formula) around it. What to see: the band narrows like $1/\sqrt{n}$ and the average closes in
# on the dashed line; the closed form is the limit of the Monte Carlo average, obtained without
# any noise. The average does *not* stay inside the band everywhere, and need not: the band is
# a 95% interval at each $n$ *separately*, but the running average is one path whose values at
# neighbouring $n$ share almost all their samples, so once it leaves the band it stays out for a
# stretch (in the full run, at a few $n$ below 10 and again for a stretch near $n = 2000$, 14%
# of all $n$; the cell after the figure prints where). It is inside at most $n$, and the
# assertions above test the final average, with its own standard error.

# %%
mu, logvar = trained.encode(x_one)                 # (1, D) each
n_kl = 2000 if FAST else 20000
z, _ = dist.gaussian_sample(mu, logvar, rng.standard_normal((n_kl, 1, D)))   # (n, 1, D)
log_q, _ = dist.gaussian_log_density(z, mu, logvar)                          # (n, 1)
log_p, _ = dist.standard_normal_log_density(z)                               # (n, 1)
kl_samples = (log_q - log_p)[:, 0]
kl_exact = dist.kl_standard_normal(mu, logvar)[0][0]
var_sigma = np.exp(logvar[0])
var_exact = np.sum(mu[0] ** 2 * var_sigma + 0.5 * (var_sigma - 1) ** 2)

kl_se = kl_samples.std() / np.sqrt(n_kl)
centred = kl_samples - kl_samples.mean()
var_se = np.sqrt((np.mean(centred**4) - np.mean(centred**2) ** 2) / n_kl)   # s.e. of a sample variance
print(f"KL: closed form {kl_exact:.3f}, Monte Carlo {kl_samples.mean():.3f} +- {kl_se:.3f}")
print(f"variance of one KL sample: formula {var_exact:.3f}, Monte Carlo {kl_samples.var():.3f} +- {var_se:.3f}")
assert abs(kl_samples.mean() - kl_exact) < 4 * kl_se
assert abs(kl_samples.var() - var_exact) < 4 * var_se

n = np.arange(1, n_kl + 1)
running = np.cumsum(kl_samples) / n
band = 2 * np.sqrt(var_exact / n)
fig = Figure(figsize=(6, 3.8))
ax = fig.subplots()
ax.fill_between(n, kl_exact - band, kl_exact + band, alpha=0.25, label="closed form $\\pm 2$ standard errors")
ax.plot(n, running, lw=1, label="running Monte Carlo average")
ax.axhline(kl_exact, color="k", ls="--", label=f"closed form, {kl_exact:.2f} nats")
ax.set(xscale="log", xlabel="number of samples $n$", ylabel="KL$(q_\\phi(z|x)\\,\\|\\,p(z))$ (nats)",
       title="Monte Carlo KL vs its closed form (Appendix B)",
       ylim=(kl_exact - 4 * np.sqrt(var_exact), kl_exact + 4 * np.sqrt(var_exact)))
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(FIGURES / "05_kl_monte_carlo.png", dpi=90)
fig

# %%
outside = np.abs(running - kl_exact) > band
print(f"running average outside the 2-SE band at {outside.sum()} of {n_kl} values of n "
      f"({outside.mean():.1%}); first ones: {n[outside][:8].tolist()}")
assert outside.mean() < 0.5, "inside the band at most n"

# %% [markdown]
# ## 4. More samples: the standard deviation falls like $1/\sqrt{L}$
#
# Averaging $L$ independent samples divides the variance by $L$. Below, for $L = 1, 2, 4,
# \dots$, the standard deviation of each estimator over $R$ repetitions, on log-log axes.
#
# **Figure `05_std_vs_L.png`.** What to see: two parallel lines of slope $-\tfrac12$ (the
# dotted guide): ten times fewer nats of noise costs a hundred times more samples. (Which of
# the two lines is lower is the subject of section 5.) The paper
# uses $L = 1$ with minibatches of $M = 100$ (Sec. 5): averaging over the minibatch
# already reduces the noise of the gradient, more cheaply.

# %%
R = 100 if FAST else 300
L_values = 2 ** np.arange(0, 6 if FAST else 7)
x_rep = np.repeat(x_one, R, axis=0)
sd = {"A": [], "B": []}
for L_ in L_values:
    eps = rng.standard_normal((L_, R, D))
    for estimator in sd:
        sd[estimator].append(trained.elbo(x_rep, eps=eps, estimator=estimator).std())
slopes = {estimator: np.polyfit(np.log(L_values), np.log(s), 1)[0] for estimator, s in sd.items()}
print("log-log slope of sd against L:", {k: round(float(v), 3) for k, v in slopes.items()}, "(theory: -0.5)")
# each sd has a relative s.e. of about 1/sqrt(2R); over this range of L that allows +-0.1
assert all(abs(s + 0.5) < 0.1 for s in slopes.values())

fig = Figure(figsize=(5.5, 3.8))
ax = fig.subplots()
ax.loglog(L_values, sd["A"], "o-", label="estimator A (estimator='A')")
ax.loglog(L_values, sd["B"], "s-", label="estimator B (estimator='B')")
ax.loglog(L_values, sd["B"][0] / np.sqrt(L_values) * 0.7, "k:", label="slope $-1/2$")
ax.set_yticks([0.5, 1, 2, 4, 8])
ax.set_yticklabels(["0.5", "1", "2", "4", "8"])
ax.minorticks_off()
ax.set(xlabel="samples per example $L$", ylabel="sd of the ELBO estimate (nats)",
       title="trained model, one image")
ax.legend(fontsize=8)
ax.grid(alpha=0.3, which="both")
fig.tight_layout()
fig.savefig(FIGURES / "05_std_vs_L.png", dpi=90)
fig

# %% [markdown]
# ## 5. Which estimator is less noisy?
#
# Kingma & Welling (Sec. 2.3) prefer B: when the KL can be integrated analytically, only the
# reconstruction term is left to sampling, and the estimator "typically" has less variance.
# Sections 2 and 3 refine that:
#
# * **The value.** For the untrained model B is narrower. For the trained model A is
#   narrower, although it samples *more*. The reason is a correlation: a large $|\epsilon|$
#   puts $z$ far from $\mu$, which lowers $\log p_\theta(x \mid z)$, but for $\sigma_j < 1$ it
#   also *raises* the sampled $\log p(z) - \log q_\phi(z \mid x)$ by $\tfrac12 (1 -
#   \sigma_j^2)\epsilon_j^2 + \dots$ (section 3). The two errors partly cancel, like a control
#   variate. Here are the standard deviations of the two single-sample estimates, averaged over
#   100 test images:

# %%
K_img = 100 if FAST else 300
x_hundred = x_test[:100]
for label, m in models.items():
    eps = rng.standard_normal((K_img, 100, D))
    _, cache_a = m.forward(x_hundred, eps, estimator="A")
    _, cache_b = m.forward(x_hundred, eps, estimator="B")
    est_a = cache_a["log_px_z"] + cache_a["log_pz"] - cache_a["log_qz"]     # (K, 100): A, L = 1
    est_b = cache_b["log_px_z"] - cache_b["kl_qp"]                          # (K, 100): B, L = 1
    var_a, var_b = est_a.var(axis=0), est_b.var(axis=0)
    print(f"{label:>9}: mean sd A {np.sqrt(var_a.mean()):.2f}, B {np.sqrt(var_b.mean()):.2f}; "
          f"A is narrower for {np.mean(var_a < var_b):.0%} of the images")
    spread[label] = (var_a.mean(), var_b.mean())
assert spread["untrained"][0] > spread["untrained"][1], "untrained: B's value is less noisy"
assert spread["trained"][0] < spread["trained"][1], "trained: A's value is less noisy"

# %% [markdown]
# * **The gradient.** Training uses the gradient, not the value, and there the paper's
#   preference holds. With the same $\epsilon$, the gradient with respect to the **decoder**
#   parameters $\theta$ is *identical* for A and B: the KL part does not depend on $\theta$, and
#   the reconstruction term is computed from the same samples. The gradient with respect to the
#   **encoder** parameters $\phi$ differs: A adds the sampled gradient of
#   $\log p(z) - \log q_\phi(z \mid x)$ through $\mu$, $\sigma$ and $z$, B the exact gradient
#   of the closed form. We draw $R$ minibatch gradients ($M = 100$ images, $L = 1$) of each and
#   compare their variance, summed over the entries of each parameter array.
#
# **Figure `05_gradient_variance.png`**: the ratio
# $\sum \operatorname{Var}[\nabla^A] / \sum \operatorname{Var}[\nabla^B]$ per parameter array,
# for both models. What to see: exactly 1 for every decoder array, above 1 for every encoder
# array: estimator B gives the encoder less noisy gradients, more so for the untrained model.
#
# First, though, the gradients themselves must be right. With $\epsilon$ fixed, both estimates
# are deterministic, differentiable functions of $(\theta, \phi)$ (seed, step 9), so finite
# differences can check them; `gradcheck.check_vae` does that on a small float64 VAE.

# %%
small = minivae.VAE(6, 2, hidden=(5,), activation="tanh", seed=1)
x_small = (rng.uniform(size=(3, 6)) < 0.5).astype(float)
for estimator in ("A", "B"):
    report = gradcheck.check_vae(small, x_small, n_samples=2, estimator=estimator)
    worst = max(r["rel_error"] for r in report.values())
    print(f"estimator={estimator!r}: worst relative error over all parameters {worst:.1e}")
    assert worst < 1e-6

# %%
R_grad = 30 if FAST else 100
x_batch = x_test[:100]
ratios = {}
for label, m in models.items():
    grads = {"A": {k: [] for k in m.params}, "B": {k: [] for k in m.params}}
    for _ in range(R_grad):
        eps = rng.standard_normal((1, 100, D))
        for estimator in grads:
            _, g = m.loss_and_grads(x_batch, estimator=estimator, eps=eps)
            for k in g:
                grads[estimator][k].append(g[k])
    ratios[label] = {}
    for k in m.params:
        g_a, g_b = np.array(grads["A"][k]), np.array(grads["B"][k])
        if k.startswith("decoder"):
            assert np.array_equal(g_a, g_b), f"{k}: the decoder gradient must not depend on the estimator"
        ratios[label][k] = g_a.var(axis=0).sum() / g_b.var(axis=0).sum()
    print(f"{label:>9}: Var A / Var B per array:",
          ", ".join(f"{k} {r:.2f}" for k, r in ratios[label].items()))
    assert all(r > 1 for k, r in ratios[label].items() if k.startswith("encoder"))

names = list(trained.params)
fig = Figure(figsize=(7, 3.8))
ax = fig.subplots()
positions = np.arange(len(names))
for offset, label in ((-0.2, "untrained"), (0.2, "trained")):
    ax.bar(positions + offset, [ratios[label][k] for k in names], width=0.4, label=label)
ax.axhline(1, color="k", lw=1)
ax.set_xticks(positions)
ax.set_xticklabels(names, rotation=30, ha="right")
ax.set(ylabel="Var[grad A] / Var[grad B]", title="gradient variance, minibatch of 100, $L = 1$")
ax.legend()
fig.tight_layout()
fig.savefig(FIGURES / "05_gradient_variance.png", dpi=90)
fig

# %% [markdown]
# ## Summary
#
# * `VAE.forward(x, eps, estimator)` computes estimator A (`"A"`, Eq. 6) or B (`"B"`,
#   Eq. 7 and 10); both are unbiased for the same ELBO (section 2).
# * The closed-form KL of Appendix B is the limit of its Monte Carlo estimate, whose
#   variance $\sum_j [\mu_j^2\sigma_j^2 + \frac12(\sigma_j^2 - 1)^2]$ B avoids (section 3).
# * The noise of either estimate falls like $1/\sqrt{L}$ (section 4).
# * B gives lower-variance encoder gradients and identical decoder gradients, the reason
#   minivae trains with it by default; the *value* of A can still be the less noisy one for
#   a trained model, because its sampled KL term $\log q_\phi(z \mid x) - \log p(z)$ is
#   *positively* correlated with the reconstruction term (equivalently, $\log p(z) - \log
#   q_\phi(z \mid x)$ is anti-correlated with it), and A subtracts it (section 5).
#
# Next, **06**: training on MNIST with estimator B, and what the trained model has learned.
