# %% [markdown]
# # 03 · Monte Carlo estimates and the reparameterisation trick
#
# Steps 8-9 of the seed derivation ([docs/seed.md](../docs/seed.md)). The seed text
# stops mid-sentence at the start of step 8, as it introduces the Monte Carlo samples; the rest of step 8
# and step 9 complete it from Kingma & Welling 2013 (Sec. 2.3-2.4). Tutorial 02 showed that variational
# inference maximises the ELBO
#
# $$
# \mathcal{L}(\theta, \phi; x) = \mathbb{E}_{q_\phi(z \mid x)}\big[f_{\theta,\phi}(z)\big], \qquad
# f_{\theta,\phi}(z) = \log p_\theta(x, z) - \log q_\phi(z \mid x),
# $$
#
# over the decoder's $\theta$ and the encoder's $\phi$. For a neural-network decoder the
# expectation has no closed form, so it is estimated by **Monte Carlo** from samples
# $z^{(l)} \sim q_\phi(z \mid x)$, and the parameters follow the estimate's **gradient**.
#
# * $\nabla_\theta$ is easy: $\theta$ is not in the distribution, so $\nabla_\theta
#   \mathbb{E}_q[f] = \mathbb{E}_q[\nabla_\theta f]$, a plain Monte Carlo average.
# * $\nabla_\phi$ is not: $\phi$ is the distribution the samples come from. A sample $z^{(l)}$
#   is a number; it has no derivative with respect to $\phi$.
#
# There are two ways out, both unbiased (Kingma & Welling 2013, Sec. 2.3-2.4):
#
# 1. the **score-function** estimator (also called REINFORCE, Williams 1992), which needs only
#    *values* of $f$;
# 2. the **reparameterised** estimator, which writes $z = \mu_\phi + \sigma_\phi \odot
#    \epsilon$ with $\epsilon \sim \mathcal{N}(0, I)$ and differentiates *through* $z$.
#
# This tutorial derives both, checks them on a one-dimensional example where every moment is
# known, and then measures their variance on a VAE for MNIST with `minivae.topics.gradient_estimators`. The
# derivations in full are in `docs/evaluation.md` ("Score function versus reparameterisation").
#
# Run `python tutorials/03_reparameterisation.py` (about 35 s on two cores); `MINIVAE_FAST=1`
# draws fewer samples and trains less. Figures go to `tutorials/figures/` or to `MINIVAE_FIGURES`.

# %%
# %matplotlib inline
import copy
import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

import minivae
from minivae.topics import gradient_estimators as es
from minivae.data.preprocessing import fixed_binarization

FAST = os.environ.get("MINIVAE_FAST", "") not in ("", "0")   # fewer samples, for the tests
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
FIGURES = Path(os.environ.get("MINIVAE_FIGURES", HERE / "figures"))
FIGURES.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)        # all randomness from one explicit Generator

# %% [markdown]
# ## 1. A Monte Carlo estimate
#
# For any function $f$ and $L$ independent samples $z^{(l)} \sim q$,
#
# $$
# \mathbb{E}_q[f(z)] \approx \hat{F}_L = \frac1L \sum_{l=1}^L f(z^{(l)}), \qquad
# \mathbb{E}[\hat{F}_L] = \mathbb{E}_q[f], \qquad
# \operatorname{sd}(\hat{F}_L) = \frac{\operatorname{sd}_q(f)}{\sqrt{L}} .
# $$
#
# The estimate is unbiased and its error shrinks like $1/\sqrt{L}$ whatever the dimension of
# $z$; the constant, $\operatorname{sd}_q(f)$, is what a good estimator keeps small. The sample
# standard deviation divided by $\sqrt{L}$ is the *standard error*, and every check below allows
# four of them (fixed seed; a correct implementation fails such a check with probability below
# $10^{-4}$).
#
# Our running example is one-dimensional, so every expectation is known:
# $q = \mathcal{N}(\mu, \sigma^2)$ and $f(z) = z^2 + c$ for a constant $c$, with
#
# $$
# \mathbb{E}_q[f] = \mu^2 + \sigma^2 + c, \qquad \frac{\partial}{\partial\mu}\,\mathbb{E}_q[f] = 2\mu .
# $$
#
# The constant $c$ changes neither the gradient nor the optimum; it will matter anyway.

# %%
L = 20_000 if FAST else 400_000
mu, sigma, c = 1.0, 0.5, 0.0
eps = rng.standard_normal(L)
z = mu + sigma * eps                                  # L samples from q
f = z**2 + c
estimate, se = f.mean(), f.std() / np.sqrt(L)
print(f"E_q[f]: exact {mu**2 + sigma**2 + c:.4f}, Monte Carlo {estimate:.4f} +- {se:.4f} (L = {L})")
assert abs(estimate - (mu**2 + sigma**2 + c)) < 4 * se

# %% [markdown]
# ## 2. Two estimators of $\nabla_\mu \mathbb{E}_q[f]$
#
# **Score function.** Write the expectation as an integral and differentiate the density:
# $\nabla_\phi q_\phi(z) = q_\phi(z)\, \nabla_\phi \log q_\phi(z)$ (the chain rule for
# $\log$), so
#
# $$
# \begin{aligned}
# \nabla_\phi\, \mathbb{E}_{q_\phi}[f] &= \int f(z)\, \nabla_\phi q_\phi(z)\, dz
# = \mathbb{E}_{q_\phi}\big[f(z)\, \nabla_\phi \log q_\phi(z)\big] \\
# &\Rightarrow\quad
# g_{\mathrm{SF}} = f(z)\, \nabla_\phi \log q_\phi(z), \; z \sim q_\phi .
# \end{aligned}
# $$
#
# (When $f$ itself depends on $\phi$, as the ELBO's $-\log q_\phi$ does, a second term
# $\mathbb{E}_q[\nabla_\phi f]$ appears; `docs/evaluation.md` shows it is zero for the ELBO.)
# For the Gaussian, $\partial \log q / \partial \mu = (z - \mu)/\sigma^2 = \epsilon/\sigma$.
# Its expectation is zero, $\mathbb{E}_q[\nabla_\phi \log q_\phi] = \nabla_\phi \int q_\phi =
# \nabla_\phi 1 = 0$: the score-function estimator multiplies a zero-mean random vector by the
# value of $f$, and only the *correlation* between the two carries the gradient.
#
# **Reparameterisation** (Kingma & Welling 2013, Sec. 2.4). Write the sample as a deterministic,
# differentiable function of $\phi$ and of noise that does not depend on $\phi$:
# $z = \mu + \sigma\epsilon$, $\epsilon \sim \mathcal{N}(0, 1)$. Then the expectation is over
# $\epsilon$, and the gradient moves inside:
#
# $$
# \nabla_\phi\, \mathbb{E}_{q_\phi}[f] = \nabla_\phi\, \mathbb{E}_{\epsilon}\big[f(\mu_\phi + \sigma_\phi \epsilon)\big]
# = \mathbb{E}_{\epsilon}\big[\nabla_\phi f(\mu_\phi + \sigma_\phi\epsilon)\big]
# \quad\Rightarrow\quad
# g_{\mathrm{RP}} = f'(z)\, \frac{\partial z}{\partial \mu} = 2z .
# $$
#
# It uses the *derivative* of $f$, which says in which direction $f$ grows; the score function
# only sees whether a sample happened to have a large $f$.
#
# Their variances, with $a = \mu^2 + c$ and the normal moments $\mathbb{E}\epsilon^2 = 1$,
# $\mathbb{E}\epsilon^4 = 3$, $\mathbb{E}\epsilon^6 = 15$ (expand $g_{\mathrm{SF}} = (a +
# 2\mu\sigma\epsilon + \sigma^2\epsilon^2)\,\epsilon/\sigma$ and square):
#
# $$
# \operatorname{Var}[g_{\mathrm{RP}}] = 4\sigma^2, \qquad
# \operatorname{Var}[g_{\mathrm{SF}}] = \frac{a^2 + 6a\sigma^2 + 12\mu^2\sigma^2 + 15\sigma^4}{\sigma^2} - 4\mu^2 .
# $$
#
# The reparameterised variance does not depend on $c$; the score-function variance grows like
# $c^2/\sigma^2$. Adding a constant to $f$ changes nothing about the problem, yet it can make
# the score-function estimator arbitrarily noisy. (Subtracting a well-chosen constant, a
# *baseline*, helps: the variance is smallest at $a = -3\sigma^2$. Even there it is $6\sigma^2 +
# 8\mu^2$, still above $4\sigma^2$.)


# %%
def gradients(mu, sigma, c, eps):
    """Both single-sample estimates of d/dmu E[z^2 + c], z = mu + sigma eps.   eps (L,) -> two (L,)."""
    z = mu + sigma * eps
    g_sf = (z**2 + c) * (z - mu) / sigma**2          # f(z) * d log q / d mu
    g_rp = 2 * z                                     # f'(z) * dz/dmu
    return g_sf, g_rp


def variance_sf(mu, sigma, c):
    a = mu**2 + c
    return (a * a + 6 * a * sigma**2 + 12 * mu**2 * sigma**2 + 15 * sigma**4) / sigma**2 - 4 * mu**2


def variance_se(g):
    """Standard error of the sample variance of g (from its fourth central moment)."""
    d = g - g.mean()
    return np.sqrt((np.mean(d**4) - np.mean(d**2) ** 2) / len(g))


score = eps / sigma                                   # d log q / d mu at each sample
print(f"mean of the score: {score.mean():+.4f} +- {score.std() / np.sqrt(L):.4f} (must be 0)")
assert abs(score.mean()) < 4 * score.std() / np.sqrt(L)

offsets = np.array([-20.0, -10.0, -1.75, 0.0, 10.0, 20.0])
for c_ in offsets:
    g_sf, g_rp = gradients(mu, sigma, c_, eps)       # the same eps for both: a paired comparison
    for name, g, var in (("score function", g_sf, variance_sf(mu, sigma, c_)),
                         ("reparameterised", g_rp, 4 * sigma**2)):
        g_se = g.std() / np.sqrt(L)
        assert abs(g.mean() - 2 * mu) < 4 * g_se, f"{name}, c = {c_}: unbiased"
        assert abs(g.var() - var) < 4 * variance_se(g), f"{name}, c = {c_}: variance formula"
    print(f"c = {c_:+6.2f}: mean SF {g_sf.mean():6.3f}, RP {g_rp.mean():6.3f} (exact {2 * mu:.0f}); "
          f"variance SF {g_sf.var():8.2f} (formula {variance_sf(mu, sigma, c_):8.2f}), RP {g_rp.var():.3f}")

# %% [markdown]
# **Figure `03_toy_gradients.png`.** Left: histograms of 20,000 single-sample estimates of
# $\partial_\mu \mathbb{E}[f]$ at $c = 0$ from the same $\epsilon$, with the exact value $2\mu$.
# Right: the variance of each estimator against the offset $c$ (lines: the formulas; dots:
# Monte Carlo), on a log scale. What to see: both histograms are centred on $2\mu = 2$, but the
# score-function one is several times wider and skewed; on the right the reparameterised
# variance is a flat line at $4\sigma^2 = 1$ while the score-function variance is a parabola in
# $c$ that never comes down to it, with its lowest point at the best baseline $c = -\mu^2 -
# 3\sigma^2$.

# %%
c_grid = np.linspace(-20, 20, 161)
fig = Figure(figsize=(11, 3.8))
ax_hist, ax_var = fig.subplots(1, 2)
g_sf, g_rp = gradients(mu, sigma, 0.0, eps[:20_000])
bins = np.linspace(-4, 14, 91)
ax_hist.hist(g_sf, bins=bins, alpha=0.5, label=f"score function, sd {g_sf.std():.2f}")
ax_hist.hist(g_rp, bins=bins, alpha=0.5, label=f"reparameterised, sd {g_rp.std():.2f}")
ax_hist.axvline(2 * mu, color="k", ls="--", label="exact $2\\mu$")
ax_hist.set(xlabel="single-sample estimate of $\\partial_\\mu \\mathbb{E}_q[z^2]$", ylabel="count",
            title=f"$q = \\mathcal{{N}}({mu:g}, {sigma:g}^2)$, $f(z) = z^2$")
ax_hist.legend(fontsize=8)
ax_var.semilogy(c_grid, variance_sf(mu, sigma, c_grid), "C0", label="score function")
ax_var.semilogy(c_grid, np.full_like(c_grid, 4 * sigma**2), "C1", label="reparameterised")
for c_ in offsets:
    g_sf, g_rp = gradients(mu, sigma, c_, eps)
    ax_var.plot([c_, c_], [g_sf.var(), g_rp.var()], "k.", ms=8)
ax_var.plot([], [], "k.", label="Monte Carlo")
ax_var.axvline(-mu**2 - 3 * sigma**2, color="C0", ls=":", label="best baseline")
ax_var.set(xlabel="offset $c$ in $f(z) = z^2 + c$", ylabel="variance of one estimate",
           title="variance against a constant added to $f$")
ax_var.legend(fontsize=8)
fig.tight_layout()
fig.savefig(FIGURES / "03_toy_gradients.png", dpi=90)
fig

# %% [markdown]
# ## 3. On a VAE
#
# This section uses a VAE before tutorials 04-06 open it up. What it needs of it, as a black
# box defined by what it computes:
#
# * `minivae.VAE(784, 10, hidden=(100,))` is an **encoder** network $x \mapsto (\mu, \log\sigma^2)$
#   defining $q_\phi(z \mid x) = \mathcal{N}(\mu, \operatorname{diag}\sigma^2)$, and a **decoder**
#   network $z \mapsto$ the 784 pixel probabilities of $p_\theta(x \mid z)$. Their parameters
#   sit in a dict: `encoder.0.W`, `encoder.0.b` (the hidden layer), `encoder.1.W`,
#   `encoder.1.b` (the output layer; the first $D$ of its outputs are $\mu$, the last $D$ are
#   $\log\sigma^2$), and likewise `decoder.*`.
# * **Estimator A** (`estimator="A"`) is the plain Monte Carlo estimate of the ELBO from
#   section 1, $\frac1L \sum_l \log w_l$ with $\log w = \log p_\theta(x \mid z) + \log p(z) -
#   \log q_\phi(z \mid x)$ and $z_l = \mu + \sigma \odot \epsilon_l$ (seed step 8; tutorial 05
#   adds estimator B).
# * `VAE.loss_and_grads(x, eps=..., estimator="A")` returns minus that estimate, averaged over
#   the rows of `x`, and its gradient with respect to every parameter, by the chain rule written
#   out by hand (`VAE.backward`; tutorial 04 shows how such a backward pass is built, tutorial 05
#   checks this one). `minivae.train` runs stochastic gradient ascent on it (tutorial 06).
#
# In the VAE, $f(z) = \log p_\theta(x \mid z) + \log p(z) - \log q_\phi(z \mid x)$ is close to
# $\log p_\theta(x)$: about $-100$ to $-500$ nats for an MNIST image. That is the offset $c$ of the
# example above, in hundreds of dimensions at once. `minivae.topics.gradient_estimators` computes both estimators
# of the **encoder** gradient $\nabla_\phi$ for one draw $\epsilon$ of shape $(B, D)$ at a time
# (one estimate of the gradient of the minibatch mean $\frac1B\sum_b \mathcal{L}_b$, as training
# uses it):
#
# * `score_function_gradients(model, x, eps)`: $g_{\mathrm{SF}} = \frac1B \sum_b f(z_b)\,
#   \nabla_\phi \log q_\phi(z_b \mid x_b)$ with $z$ held fixed, through the backward of the
#   Gaussian log-density and then the encoder;
# * `reparameterised_gradients(model, x, eps)`: $g_{\mathrm{RP}} = \nabla_\phi \frac1B \sum_b
#   f(\mu_b + \sigma_b \odot \epsilon_b)$, the chain rule through $z$: the steps of
#   `VAE.backward` for estimator A (`estimator="A"`), kept per draw;
# * `estimator_variances(model, x, n_draws)`: the mean and variance of both over many draws, on
#   the same $\epsilon$.
#
# The model: 784 pixels, one hidden layer of 100 ReLU units, $D = 10$, in float64, untrained and
# after a short training (tutorial 06 is about training).

# %%
data = minivae.load_mnist()
x_test = fixed_binarization(data.test.x.astype(np.float64), seed=0)   # binary, fixed once
model = minivae.VAE(784, 10, hidden=(100,), dtype=np.float64, seed=0)
untrained = copy.deepcopy(model)
n_train, epochs = (2000, 2) if FAST else (9000, 10)
history = minivae.train(model, data.train.x[:n_train], data.test.x, epochs=epochs, seed=0, verbose=False)
print(f"test ELBO after {epochs} epochs: {history['test_elbo'][-1]:.1f} nats per image")
models = {"untrained": untrained, "trained": model}
B = 10
x_batch = x_test[:B]

# %% [markdown]
# **First, the reparameterised gradient is the one training uses.** `VAE.loss_and_grads(x,
# eps=eps, estimator="A")` with $L$ samples returns the gradient of $-\frac1B\sum_b \frac1L\sum_l
# \log w_{lb}$; with the $L$ samples taken as $L$ draws, that is minus the mean of the per-draw
# $g_{\mathrm{RP}}$, to rounding error.

# %%
eps_few = rng.standard_normal((5, B, model.z_dim))
g_rp = es.reparameterised_gradients(model, x_batch, eps_few)            # dict of (5, *shape)
_, grads = model.loss_and_grads(x_batch, eps=eps_few, estimator="A")
worst = max(np.abs(g_rp[k].mean(axis=0) + grads[k]).max() / np.abs(grads[k]).max() for k in g_rp)
print(f"mean of 5 reparameterised draws vs -VAE.loss_and_grads: largest relative difference {worst:.1e}")
assert worst < 1e-10

# %% [markdown]
# **Both are unbiased.** On the same draws, the difference $g_{\mathrm{SF}} - g_{\mathrm{RP}}$
# has mean zero. We test it on the 20 entries of the encoder's output bias `encoder.1.b` (the
# gradients with respect to $\mu$ and $\log\sigma^2$, averaged over the minibatch): each mean
# difference within 4.5 standard errors, so that with 20 tests the chance of a false alarm
# stays near $10^{-4}$.
#
# **Figure `03_vae_gradient_variance.png`**: the variance of one draw of each estimator, summed
# over the entries of each encoder parameter array, for the untrained (left) and trained
# (right) model, on a log scale. What to see: the score-function bars are about four orders of
# magnitude above the reparameterised ones, for every array and both models. To make a
# score-function gradient as precise as a single reparameterised draw, one would have to average
# about ten thousand of its draws; that is why the VAE trains with the reparameterised gradient.

# %%
n_draws = 300 if FAST else 3000
variances = {}
for label, m in models.items():
    result = es.estimator_variances(m, x_batch, n_draws, rng=rng, chunk=100)
    sf, rp = result["score"], result["reparameterised"]
    diff_se = np.sqrt(result["difference_variance"]["encoder.1.b"] / n_draws)
    z_scores = (sf["mean"]["encoder.1.b"] - rp["mean"]["encoder.1.b"]) / diff_se
    ratio = sf["total_variance"] / rp["total_variance"]
    print(f"{label:>9}: largest |mean SF - mean RP| on encoder.1.b = {np.abs(z_scores).max():.2f} standard "
          f"errors; total variance SF {sf['total_variance']:.3g}, RP {rp['total_variance']:.3g}, ratio {ratio:.0f}")
    assert np.all(np.abs(z_scores) < 4.5), "both estimators have the same expectation"
    variances[label] = {name: (sf["variance"][name].sum(), rp["variance"][name].sum())
                        for name in es.encoder_names(m)}
    assert all(v_sf > 100 * v_rp for v_sf, v_rp in variances[label].values()), \
        "the score-function variance is far larger, for every array"

names = es.encoder_names(model)
positions = np.arange(len(names))
fig = Figure(figsize=(10, 3.8))
for ax, (label, var) in zip(fig.subplots(1, 2, sharey=True), variances.items()):
    ax.bar(positions - 0.2, [var[k][0] for k in names], width=0.4, label="score function")
    ax.bar(positions + 0.2, [var[k][1] for k in names], width=0.4, label="reparameterised")
    ax.set_yscale("log")
    ax.set_xticks(positions)
    ax.set_xticklabels(names)
    ax.set(title=f"{label} model, minibatch of {B}, {n_draws} draws", ylabel="summed variance of one draw")
    ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(FIGURES / "03_vae_gradient_variance.png", dpi=90)
fig

# %% [markdown]
# ## 4. What makes the reparameterised gradient possible, and checkable
#
# With $\epsilon$ fixed, $\tilde{\mathcal{L}}(\theta, \phi; x, \epsilon)$ is an ordinary,
# deterministic, differentiable function of the parameters (seed, step 9). That has two
# consequences used throughout minivae:
#
# * the gradient with respect to $\phi$ is the backward pass of a fixed computation, so it is
#   written by hand like any other backward (`VAE.backward`, step 4 in `docs/derivations.md`,
#   "Gradient of the ELBO estimators": the reparameterisation backward
#   `gaussian_sample_backward` turns the decoder's $\bar z$ into $\bar\mu$ and
#   $\overline{\log\sigma^2}$);
# * it can be checked against **finite differences**, like every other gradient: tutorial 04
#   shows how, and tutorial 05 checks both ELBO estimators that way.
#
# It needs $z$ to be a differentiable function of $\phi$ and noise: true for Gaussians (and other
# location-scale families), not for discrete latents, where the score function (with baselines
# that reduce its variance) is still used.
#
# ## Summary
#
# * A Monte Carlo average is unbiased with error $\operatorname{sd}(f)/\sqrt{L}$; what an
#   estimator controls is $\operatorname{sd}(f)$.
# * $\nabla_\phi \mathbb{E}_{q_\phi}[f]$ has two unbiased estimators: the score function
#   $f\,\nabla_\phi \log q_\phi$ (values of $f$ only; variance grows with $|f|$, so with any
#   constant added to $f$) and the reparameterised $\nabla_\phi f(\mu_\phi + \sigma_\phi
#   \epsilon)$ (derivatives of $f$; unaffected by constants).
# * On an MNIST VAE the score function's variance is about $10^4$ times larger.
#
# Next, **04**: the backward passes these gradients are built from, checked by finite
# differences; then **05**: the VAE's two ELBO estimators.
#
# References: D. P. Kingma, M. Welling (2013), Auto-Encoding Variational Bayes, Sec. 2.3-2.4;
# R. J. Williams (1992), Simple statistical gradient-following algorithms for connectionist
# reinforcement learning.
