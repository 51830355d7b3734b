# %% [markdown]
# # 01 · Latent variable models, and why $p_\theta(x)$ is intractable
#
# Steps 1-2 of the seed derivation ([docs/seed.md](../docs/seed.md)). A **latent variable
# model** says that each observation $x$ was produced in two steps: first an unobserved
# ("latent") $z$ is drawn from a known prior, then $x$ is drawn given $z$:
#
# $$
# z \sim p(z) = \mathcal{N}(0, I), \qquad x \sim p_\theta(x \mid z), \qquad z \rightarrow x .
# $$
#
# The latent $z$ is meant to capture structure that is not visible in $x$ directly. The seed's
# example is independent component analysis: $x$ is a recording of several people speaking at
# once, and $z$ holds the separate voices that were mixed to produce it.
#
# **Learning** means choosing $\theta$ so that the observed $x$ gets high probability:
#
# $$
# \max_\theta \; p_\theta(x), \qquad p_\theta(x) = \int p(z)\, p_\theta(x \mid z)\, dz .
# $$
#
# The integral is the problem: for a nonlinear $p_\theta(x \mid z)$ (a neural network, in the
# VAE) it has no closed form (Kingma & Welling 2013, Sec. 2.1, "intractability").
#
# This tutorial makes that concrete on a model small enough to integrate **numerically**: a 1-D
# latent $z$ and a 2-D observation $x$. We will
#
# 1. compute $p_\theta(x)$ on a grid and check the method on a linear model whose answer is
#    known in closed form;
# 2. look at $p_\theta(x)$ and at the posterior $p(z \mid x)$ of a nonlinear model, which is
#    not Gaussian and can have two peaks;
# 3. see why neither a grid nor naive Monte Carlo scales to the 20-dimensional $z$ of a real
#    VAE, which is what motivates the rest of the series.
#
# Run it as `python tutorials/01_latent_variable_models.py` or open it as a notebook. Figures go
# to `tutorials/figures/` (or to the folder in `MINIVAE_FIGURES`); `MINIVAE_FAST=1` uses coarser
# grids (the test suite does).

# %%
# %matplotlib inline
import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from minivae import distributions as dist

FAST = os.environ.get("MINIVAE_FAST", "") not in ("", "0")   # coarser grids, for the tests
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
FIGURES = Path(os.environ.get("MINIVAE_FIGURES", HERE / "figures"))
FIGURES.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)        # all randomness from one explicit Generator

# %% [markdown]
# ## 1. The model
#
# Prior $p(z) = \mathcal{N}(0, 1)$ on a scalar $z$. The "decoder" maps $z$ to a point on a
# parabola in the plane, and $x$ is that point plus Gaussian noise of standard deviation $s$:
#
# $$
# f_\theta(z) = \begin{pmatrix} z \\ z^2 - 1 \end{pmatrix}, \qquad
# p_\theta(x \mid z) = \mathcal{N}\big(x;\, f_\theta(z),\, s^2 I\big).
# $$
#
# Each factor is simple, and we evaluate both with the package's own log-densities:
# `standard_normal_log_density` for $\log p(z)$ and `gaussian_log_density` for
# $\log p_\theta(x \mid z)$ (the formulas are in `docs/derivations.md`). The marginal is not
# simple: $\log p_\theta(x \mid z)$ contains $(x_2 - z^2 + 1)^2$, a *quartic* in $z$, so
# $\int p(z)\, p_\theta(x \mid z)\, dz$ is not a Gaussian integral and has no closed form.

# %%
S_NOISE = 0.3                       # s, the observation noise


def decoder_mean(z):
    """f(z) = (z, z^2 - 1).   z: (N,) -> (N, 2)."""
    return np.stack([z, z * z - 1.0], axis=-1)


def log_joint(x, z, f=decoder_mean, s=S_NOISE):
    """log p(z) + log p(x|z) for every pair: x (M, 2), z (N,) -> (M, N)."""
    log_pz, _ = dist.standard_normal_log_density(z[:, None])              # (N,)
    logvar = np.full(2, 2 * np.log(s))
    log_px_z, _ = dist.gaussian_log_density(x[:, None, :], f(z)[None], logvar)   # (M, N)
    return log_pz[None, :] + log_px_z


# ancestral sampling: z from the prior, then x given z
n_samples = 2000
z_samples = rng.standard_normal(n_samples)
x_samples = decoder_mean(z_samples) + S_NOISE * rng.standard_normal((n_samples, 2))

# %% [markdown]
# ## 2. $p_\theta(x)$ by numerical integration
#
# On a grid $z_1 < \dots < z_N$ with spacing $\Delta z$ the integral becomes a sum,
#
# $$
# \begin{aligned}
# p_\theta(x) &\approx \sum_{n=1}^{N} p(z_n)\, p_\theta(x \mid z_n)\, \Delta z , \\
# \log p_\theta(x) &\approx \operatorname{logsumexp}_n \big[\log p(z_n) + \log p_\theta(x \mid z_n)\big]
# + \log \Delta z ,
# \end{aligned}
# $$
#
# computed in log space (`scipy.special.logsumexp`), because far from the data
# $p_\theta(x \mid z_n)$ underflows to 0 in floating point. The integrand is smooth and decays
# like $e^{-z^2/2}$, so a grid on $[-8, 8]$ with a few hundred points is accurate to many digits.
#
# **First, check the method where the answer is known.** If the decoder is linear,
# $f(z) = w z$ with $w \in \mathbb{R}^2$, then $x = wz + s\,\epsilon$ is Gaussian and
# $p(x) = \mathcal{N}(x; 0, w w^\top + s^2 I)$ exactly (this linear-Gaussian model returns in
# tutorial 02). The grid must reproduce it.

# %%
n_z = 401 if FAST else 801          # odd, so z = 0 is a grid point
z_grid = np.linspace(-8.0, 8.0, n_z)
dz = z_grid[1] - z_grid[0]


def log_marginal(x, f=decoder_mean, s=S_NOISE):
    """log p(x) = log integral p(z) p(x|z) dz on the z grid.   x: (M, 2) -> (M,)."""
    return logsumexp(log_joint(x, z_grid, f, s), axis=1) + np.log(dz)


w = np.array([1.0, 0.5])
x_check = rng.standard_normal((50, 2)) * 1.5
grid_value = log_marginal(x_check, f=lambda z: z[:, None] * w)
exact = multivariate_normal(mean=np.zeros(2), cov=np.outer(w, w) + S_NOISE**2 * np.eye(2)).logpdf(x_check)
quadrature_error = np.abs(grid_value - exact).max()
print(f"linear decoder: max |log p(x) grid - exact| over 50 points = {quadrature_error:.1e}")
assert quadrature_error < 1e-8, "the grid integral should match the closed form of the linear model"

# %% [markdown]
# Now the nonlinear decoder. We evaluate $\log p_\theta(x)$ on a grid of $x$ values covering
# the data, and check that the density integrates to one over the plane (a second, independent
# check: a wrong normaliser anywhere would show up here).

# %%
n_x = 70 if FAST else 140
x1 = np.linspace(-3.5, 3.5, n_x)
x2 = np.linspace(-2.5, 7.5, n_x)
X1, X2 = np.meshgrid(x1, x2)
x_plane = np.stack([X1.ravel(), X2.ravel()], axis=1)          # (n_x^2, 2)
log_px = log_marginal(x_plane).reshape(n_x, n_x)

mass = np.exp(log_px).sum() * (x1[1] - x1[0]) * (x2[1] - x2[0])
print(f"integral of p(x) over the plotted plane: {mass:.4f}")
assert abs(mass - 1) < 0.01, "p(x) must integrate to 1 (the plane holds almost all of its mass)"

# %% [markdown]
# **Figure `01_latent_variable_model.png`.** Left: the prior over $z$. Middle: 2,000 samples
# $x$, coloured by the $z$ that produced them, and the curve $f_\theta(z)$ they scatter around.
# Right: $\log p_\theta(x)$ from the grid integral. What to see: the data lie near a
# one-dimensional curve in a two-dimensional space, which is exactly the structure a latent
# variable model captures; $p_\theta(x)$ is highest near the vertex of the parabola, where
# $p(z)$ puts most of its mass, and fades along the arms (large $|z|$ is improbable); and the
# density is far from Gaussian, so no simple formula could have given it.

# %%
fig = Figure(figsize=(10, 3.6))       # three panels: narrow enough that the page keeps the labels legible
ax_prior, ax_samples, ax_density = fig.subplots(1, 3)
zz = np.linspace(-4, 4, 400)
ax_prior.plot(zz, np.exp(dist.standard_normal_log_density(zz[:, None])[0]))
ax_prior.set(title="prior $p(z) = \\mathcal{N}(0, 1)$", xlabel="$z$", ylabel="density")
points = ax_samples.scatter(x_samples[:, 0], x_samples[:, 1], c=z_samples, cmap="coolwarm",
                            s=4, vmin=-2.5, vmax=2.5)
curve = decoder_mean(np.linspace(-2.6, 2.6, 200))
ax_samples.plot(curve[:, 0], curve[:, 1], "k", lw=1, label="$f_\\theta(z)$")
ax_samples.set(title="samples $x \\sim p_\\theta(x|z)$, $z \\sim p(z)$", xlabel="$x_1$",
               ylabel="$x_2$", xlim=(x1[0], x1[-1]), ylim=(x2[0], x2[-1]))
ax_samples.legend(loc="upper center")
fig.colorbar(points, ax=ax_samples, label="$z$")
image = ax_density.imshow(np.maximum(log_px, -12), origin="lower", aspect="auto", cmap="viridis",
                          extent=(x1[0], x1[-1], x2[0], x2[-1]))
ax_density.set(title="$\\log p_\\theta(x)$ by numerical integration", xlabel="$x_1$", ylabel="$x_2$")
fig.colorbar(image, ax=ax_density, label="$\\log p_\\theta(x)$ (clipped at -12)")
fig.tight_layout()
fig.savefig(FIGURES / "01_latent_variable_model.png", dpi=90)
fig

# %% [markdown]
# ## 3. The posterior $p(z \mid x)$
#
# Step 3 of the seed derivation asks the reverse question: given an observed $x$, which $z$ produced
# it? Bayes' rule gives
#
# $$
# p(z \mid x) = \frac{p(x, z)}{\int p(x, z)\, dz} = \frac{p(z)\, p_\theta(x \mid z)}{p_\theta(x)} ,
# $$
#
# and its denominator is the same intractable integral. With one latent dimension we can
# still compute it on the grid. Three observations:
#
# * $x = (1.5, 1.25)$ on the right arm: only $z \approx 1.5$ lands there, one narrow peak;
# * $x = (0, -1)$ at the vertex: one peak around $z = 0$, wider, because near the vertex
#   moving $z$ hardly moves $f(z)$;
# * $x = (0, 1)$ inside the parabola: the points $f(\pm 1.2)$ on *both* arms are about equally
#   close, so the posterior has **two peaks** of equal height.
#
# **Figure `01_posterior.png`** shows them against the prior (dashed). What to see: each
# posterior is much narrower than the prior (an observation pins $z$ down), and the third is
# bimodal. Tutorials 02 and 05 approximate $p(z \mid x)$ by a single Gaussian
# $q_\phi(z \mid x)$; for the third $x$ no single Gaussian can be a good fit, and the gap this
# leaves is exactly the $\mathrm{KL}(q \,\|\, p(z \mid x))$ of the seed's Eq. (4)-(5).

# %%
x_obs = np.array([[1.5, 1.25], [0.0, -1.0], [0.0, 1.0]])
log_post = log_joint(x_obs, z_grid) - log_marginal(x_obs)[:, None]     # (3, N)
posterior = np.exp(log_post)
print("posterior mass on the grid (must be 1):", np.round(posterior.sum(axis=1) * dz, 10))
assert np.allclose(posterior.sum(axis=1) * dz, 1.0, atol=1e-10)

# local maxima of p(z|x) on the grid
peaks = [z_grid[1:-1][(p[1:-1] > p[:-2]) & (p[1:-1] >= p[2:]) & (p[1:-1] > 1e-3 * p.max())]
         for p in posterior]
for x, pk in zip(x_obs, peaks):
    print(f"x = {x}: posterior peaks at z = {np.round(pk, 2)}")
assert [len(pk) for pk in peaks] == [1, 1, 2], "one peak, one peak, two peaks"
assert np.allclose(peaks[2], [-peaks[2][1], peaks[2][1]], atol=2 * dz), "the two peaks mirror each other"

fig = Figure(figsize=(6, 3.8))
ax = fig.subplots()
ax.plot(zz, np.exp(dist.standard_normal_log_density(zz[:, None])[0]), "k--", label="prior $p(z)$")
for x, p in zip(x_obs, posterior):
    ax.plot(z_grid, p, label=f"$p(z\\,|\\,x)$, $x = ({x[0]:g}, {x[1]:g})$")
ax.set(xlim=(-3, 3), xlabel="$z$", ylabel="density", title="posteriors of three observations")
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(FIGURES / "01_posterior.png", dpi=90)
fig

# %% [markdown]
# ## 4. Why this does not scale
#
# **A grid** needs $n$ points per latent dimension, so $n^D$ evaluations of
# $p_\theta(x \mid z)$ for each $x$. The MNIST VAE of tutorial 06 has $D = 20$: with only
# $n = 10$ points per axis that is $10^{20}$ decoder passes per image.
#
# **Naive Monte Carlo** avoids the grid: $p_\theta(x) = \mathbb{E}_{p(z)}[p_\theta(x \mid z)]$, so
#
# $$
# p_\theta(x) \approx \frac{1}{S} \sum_{s=1}^{S} p_\theta(x \mid z^{(s)}), \qquad z^{(s)} \sim p(z).
# $$
#
# It is unbiased, but its relative variance is
# $\frac{1}{S}\big(\mathbb{E}_{p(z)}[w^2] / \mathbb{E}_{p(z)}[w]^2 - 1\big)$ with
# $w = p_\theta(x \mid z)$, so reaching a relative error of 10% takes
#
# $$
# S_{10\%} = 100 \left( \frac{\mathbb{E}_{p(z)}[w^2]}{\mathbb{E}_{p(z)}[w]^2} - 1 \right)
# $$
#
# samples. Both expectations are 1-D integrals here, so we compute $S_{10\%}$ exactly on the
# grid (no randomness), for an $x$ on the curve and a shrinking noise $s$. As $s$ shrinks, the
# posterior narrows and almost every $z^{(s)}$ drawn from the *prior* explains $x$ badly:
# $S_{10\%}$ grows like $1/s$. With $D$ independent latent dimensions that behave alike the
# ratio is a product of $D$ such factors, so $S_{10\%}$ grows **exponentially** in $D$.
#
# **Figure `01_naive_monte_carlo.png`**, left: $S_{10\%}$ against $s$ on log-log axes, a line
# of slope about $-1$. Right: the same cost for $D$ independent copies of the model, on a log
# scale: a straight line in $D$ is exponential growth. What to see: drawing $z$ from the prior
# wastes almost all samples; drawing them from (an approximation of) the posterior $p(z \mid x)$
# would not. Finding such an approximation is variational inference: tutorial 02.

# %%
x_on_curve = decoder_mean(np.array([0.5]))             # a point on the curve, z = 0.5
noise_levels = np.logspace(0, -2, 9)                    # s from 1 down to 0.01
fine_z = np.linspace(-8, 8, 20001 if not FAST else 8001)   # small s needs a fine grid
fine_dz = fine_z[1] - fine_z[0]
log_prior_fine, _ = dist.standard_normal_log_density(fine_z[:, None])
ratio = []
for s in noise_levels:
    log_w, _ = dist.gaussian_log_density(x_on_curve[:, None, :], decoder_mean(fine_z)[None],
                                         np.full(2, 2 * np.log(s)))
    log_w = log_w[0]
    log_Ew = logsumexp(log_prior_fine + log_w) + np.log(fine_dz)          # log E_p(z)[w]
    log_Ew2 = logsumexp(log_prior_fine + 2 * log_w) + np.log(fine_dz)     # log E_p(z)[w^2]
    ratio.append(np.exp(log_Ew2 - 2 * log_Ew))
ratio = np.array(ratio)
samples_needed = 100 * (ratio - 1)
slope = np.polyfit(np.log(noise_levels[-5:]), np.log(samples_needed[-5:]), 1)[0]
for s, n in zip(noise_levels, samples_needed):
    print(f"s = {s:6.3f}: naive Monte Carlo needs S = {n:10.0f} prior samples for 10% error")
print(f"log-log slope for small s: {slope:.2f} (about -1: S grows like 1/s)")
assert np.all(np.diff(samples_needed) > 0), "less noise must mean more samples"
assert -1.2 < slope < -0.8

dims = np.arange(1, 21)
fig = Figure(figsize=(10, 3.8))
ax_s, ax_d = fig.subplots(1, 2)
ax_s.loglog(noise_levels, samples_needed, "o-")
ax_s.set(xlabel="observation noise $s$", ylabel="$S_{10\\%}$ (prior samples)",
         title="naive Monte Carlo, $D = 1$")
ax_s.grid(alpha=0.3, which="both")
for s_index, style in ((0, "o-"), (4, "s-"), (8, "^-")):
    # D independent copies: E[w^2]/E[w]^2 multiplies, so the ratio is ratio^D
    ax_d.semilogy(dims, 100 * (ratio[s_index] ** dims - 1), style, ms=3,
                  label=f"$s = {noise_levels[s_index]:.2g}$")
ax_d.set(xticks=[1, 5, 10, 15, 20], xlabel="latent dimension $D$", ylabel="$S_{10\\%}$ (prior samples)",
         title="$D$ independent latent dimensions")
ax_d.legend()
ax_d.grid(alpha=0.3)
fig.tight_layout()
fig.savefig(FIGURES / "01_naive_monte_carlo.png", dpi=90)
fig

# %% [markdown]
# ## Summary
#
# * A latent variable model is $p(z)\, p_\theta(x \mid z)$; learning maximises
#   $p_\theta(x) = \int p(z)\, p_\theta(x \mid z)\, dz$.
# * With a nonlinear decoder that integral, and with it the posterior
#   $p(z \mid x) = p(z)\, p_\theta(x \mid z) / p_\theta(x)$, has no closed form. In one
#   dimension a grid computes both (we checked it against the linear model's exact answer, and
#   checked that $p_\theta(x)$ integrates to one); the posterior can have several peaks.
# * Grids cost $n^D$; sampling $z$ from the prior costs exponentially many samples in $D$
#   because almost none of them explain $x$. Both fail at $D = 20$.
#
# Next, **02**: variational inference replaces the integral by an optimisation over an
# approximate posterior $q_\phi(z \mid x)$, and the seed's Eq. (4)-(5) turn it into the ELBO.
