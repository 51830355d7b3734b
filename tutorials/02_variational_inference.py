# %% [markdown]
# # 02 · Variational inference and the ELBO, checked on a model where everything is exact
#
# Steps 3-7 of the seed derivation ([docs/seed.md](../docs/seed.md)). Tutorial 01 ended with
# two integrals we cannot compute for a neural-network decoder: the evidence $p_\theta(x) = \int p(z)\,
# p_\theta(x \mid z)\, dz$ and, with it, the posterior $p(z \mid x) = p(z)\, p_\theta(x \mid z)
# / p_\theta(x)$. **Variational inference** gives up on computing $p(z \mid x)$ and instead picks
# the member of a simple family $q_\phi(z \mid x)$ (here: Gaussians) that is closest to it,
#
# $$
# \min_\phi \; \mathrm{KL}\big(q_\phi(z \mid x) \,\|\, p(z \mid x)\big).
# $$
#
# That KL contains the unknown posterior, but it splits (the seed's Eq. 4-5; Kingma & Welling
# 2013, Eq. 1-2): write $p(z \mid x) = p_\theta(x, z) / p_\theta(x)$ inside the logarithm,
#
# $$
# \mathrm{KL}\big(q \,\|\, p(z \mid x)\big)
# = \int q_\phi(z \mid x) \big[\log q_\phi(z \mid x) - \log p_\theta(x, z)\big]\, dz
# + \int q_\phi(z \mid x) \log p_\theta(x)\, dz .
# $$
#
# Every integral is over $z$ (the seed writes $\int_\phi$; erratum E1 of `docs/seed.md`). The
# last one is $\log p_\theta(x)$ because its integrand $\log p_\theta(x)$ is **constant in
# $z$**: it leaves the integral, and what remains, $\int q_\phi(z \mid x)\, dz$, is 1, since $q$
# is a density over $z$. (The seed's reason, "$\log p(x)$ does not contain $\phi$", is not it;
# erratum E3. Independence of $\phi$ is what consequence 1 below uses.) So
#
# $$
# \begin{aligned}
# \mathrm{KL}\big(q \,\|\, p(z \mid x)\big)
# &= \mathbb{E}_q\big[\log q_\phi(z \mid x) - \log p_\theta(x, z)\big] + \log p_\theta(x) \\
# &= -\mathcal{L}(\theta, \phi; x) + \log p_\theta(x),
# \qquad
# \mathcal{L} = \mathbb{E}_{q_\phi(z \mid x)}\big[\log p_\theta(x, z) - \log q_\phi(z \mid x)\big].
# \end{aligned}
# $$
#
# Three consequences, which this tutorial checks one by one:
#
# 1. $\log p_\theta(x)$ does not depend on $\phi$, so **minimising the KL is maximising
#    $\mathcal{L}$**, and $\mathcal{L}$ needs only $p(z)$, $p_\theta(x \mid z)$ and $q$: no
#    posterior, no evidence.
# 2. $\mathrm{KL} \ge 0$, so $\mathcal{L} \le \log p_\theta(x)$: the **evidence lower bound**
#    (ELBO), with equality if and only if $q_\phi(z \mid x) = p(z \mid x)$.
# 3. The gap $\log p_\theta(x) - \mathcal{L}$ is exactly the KL: how well the family of $q$ can
#    fit the posterior decides how tight the bound can get.
#
# To *check* an identity between $\mathcal{L}$, the KL and $\log p(x)$ we need a model in which
# all three are known. There is one: the **linear-Gaussian model**, probabilistic PCA (Tipping &
# Bishop 1999), in `minivae.topics.linear_gaussian`. Derivations of its closed forms are in
# `docs/evaluation.md`.
#
# Run `python tutorials/02_variational_inference.py` (a few seconds); `MINIVAE_FAST=1` draws
# fewer Monte Carlo samples. Figures go to `tutorials/figures/` or to `MINIVAE_FIGURES`.

# %%
# %matplotlib inline
import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse
from scipy.optimize import minimize
from scipy.stats import multivariate_normal

from minivae import distributions as dist
from minivae.topics import linear_gaussian as lg

FAST = os.environ.get("MINIVAE_FAST", "") not in ("", "0")   # fewer samples, for the tests
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
FIGURES = Path(os.environ.get("MINIVAE_FIGURES", HERE / "figures"))
FIGURES.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)        # all randomness from one explicit Generator

# %% [markdown]
# ## 1. The linear-Gaussian model
#
# A latent $z \in \mathbb{R}^D$ with the VAE's prior, and a *linear* decoder with Gaussian noise
# of fixed variance $\sigma^2$:
#
# $$
# p(z) = \mathcal{N}(0, I_D), \qquad p(x \mid z) = \mathcal{N}(Wz + b,\; \sigma^2 I_P),
# \qquad W \in \mathbb{R}^{P \times D}.
# $$
#
# $x$ is a linear function of the Gaussians $z$ and the noise, so it is Gaussian, and so is the
# posterior (completing the square in $z$; Tipping & Bishop 1999, Bishop 2006 Sec. 12.2). With
# $C = WW^\top + \sigma^2 I_P$ and $G = W^\top W + \sigma^2 I_D$:
#
# $$
# \begin{aligned}
# \log p(x) &= \log \mathcal{N}(x;\, b,\, C), \\
# p(z \mid x) &= \mathcal{N}\big(m^*,\, \Sigma^*\big), \quad
# m^* = G^{-1} W^\top (x - b), \quad \Sigma^* = \sigma^2 G^{-1}.
# \end{aligned}
# $$
#
# We take $D = 2$ (so that we can draw $q$ and the posterior) and $P = 4$, with columns of $W$
# that are *not* orthogonal, so the posterior's two coordinates are correlated.
#
# First a check that the closed forms are what their names say: Bayes' rule
# $\log p(z \mid x) = \log p(z) + \log p(x \mid z) - \log p(x)$ must hold at any $z$. The right
# side uses the package's log-densities (`standard_normal_log_density` for the prior,
# `gaussian_log_density` for the likelihood) and the closed-form evidence; the left side the
# closed-form posterior.

# %%
W = np.array([[1.0, 0.8],
              [0.5, 0.9],
              [-0.3, 0.4],
              [0.2, -0.1]])
b = np.array([0.5, -0.2, 0.1, 0.0])
sigma2 = 0.25
P, D = W.shape
x_data, _ = lg.sample(5, W, b, sigma2, rng)          # (5, P): five observations
x = x_data[:1]                                        # (1, P): the one we study
log_px = lg.log_marginal_likelihood(x, W, b, sigma2)[0]
post_mean, post_cov = lg.posterior(x, W, b, sigma2)   # (1, D), (D, D)
print(f"log p(x) = {log_px:.4f};  posterior mean {np.round(post_mean[0], 3)}")
print("posterior covariance\n", np.round(post_cov, 4))
rho = post_cov[0, 1] / np.sqrt(post_cov[0, 0] * post_cov[1, 1])
print(f"posterior correlation rho = {rho:.3f}")

z_test = rng.standard_normal((7, 1, D)) * 1.5        # (7, 1, D): seven arbitrary z
log_pz, _ = dist.standard_normal_log_density(z_test)                                   # (7, 1)
log_px_z, _ = dist.gaussian_log_density(x, z_test @ W.T + b, np.full(P, np.log(sigma2)))  # (7, 1)
bayes = (log_pz + log_px_z - log_px)[:, 0]
closed_form = multivariate_normal(post_mean[0], post_cov).logpdf(z_test[:, 0])
print(f"Bayes' rule vs closed-form posterior at 7 points: max difference {np.abs(bayes - closed_form).max():.1e}")
assert np.allclose(bayes, closed_form, rtol=0, atol=1e-10)

# %% [markdown]
# ## 2. Eq. (4)-(5), checked
#
# For a Gaussian $q(z \mid x) = \mathcal{N}(m, S)$ with any mean $m$ and any positive definite
# $S$, three functions compute three things, each from its own formula:
#
# * `lg.elbo`: $\mathcal{L}(q) = \mathbb{E}_q[\log p(x \mid z)] + \mathbb{E}_q[\log p(z)] -
#   \mathbb{E}_q[\log q(z \mid x)]$, each expectation a Gaussian integral (it uses $p(x \mid
#   z)$, $p(z)$ and $q$, never the posterior);
# * `lg.kl_to_posterior`: $\mathrm{KL}(q \,\|\, p(z \mid x))$ from the KL between two Gaussians
#   (it uses only $q$ and the posterior);
# * `lg.log_marginal_likelihood`: $\log p(x)$ (it uses only $C$).
#
# The seed's Eq. 5, $\mathrm{KL} = -\mathcal{L} + \log p(x)$, ties them together. We check it for
# twenty random $q$, full covariances included, to rounding error.

# %%
n_q = 20
q_means = post_mean + rng.standard_normal((n_q, D))                 # (n_q, D)
A = rng.standard_normal((n_q, D, D))
q_covs = A @ np.swapaxes(A, 1, 2) + 0.05 * np.eye(D)                # (n_q, D, D), positive definite
x_rep = np.repeat(x, n_q, axis=0)                                   # the same x for every q
elbos = lg.elbo(x_rep, W, b, sigma2, q_means, q_covs)
kls = lg.kl_to_posterior(x_rep, W, b, sigma2, q_means, q_covs)
eq5_error = np.abs(kls - (-elbos + log_px)).max()
print(f"20 random q: ELBO from {elbos.min():.2f} to {elbos.max():.2f}, all <= log p(x) = {log_px:.2f}")
print(f"max |KL - (-ELBO + log p(x))| = {eq5_error:.1e}")
assert eq5_error < 1e-10 * max(1.0, np.abs(elbos).max()), "Eq. 5: KL = -L + log p(x)"
assert np.all(kls >= 0) and np.all(elbos <= log_px), "KL >= 0, hence L <= log p(x)"

# %% [markdown]
# **The closed form is the definition.** $\mathcal{L}$ is an expectation under $q$, and the VAE
# will estimate it by sampling (seed, step 8). For a diagonal $q$ the package's own functions
# give that estimate: draw $z^{(l)} = m + s \odot \epsilon^{(l)}$ with `gaussian_sample` and
# average $\log p(x \mid z^{(l)}) + \log p(z^{(l)}) - \log q(z^{(l)} \mid x)$. It must agree with
# `lg.elbo` within Monte Carlo error: four standard errors (fixed seed; a correct
# implementation fails this with probability below $10^{-4}$).

# %%
L = 20_000 if FAST else 200_000
q_mean = post_mean + np.array([[0.4, -0.3]])                    # (1, D), some diagonal q
q_logvar = np.log(np.array([[0.2, 0.35]]))                      # (1, D)
z, _ = dist.gaussian_sample(q_mean, q_logvar, rng.standard_normal((L, 1, D)))   # (L, 1, D)
log_px_z, _ = dist.gaussian_log_density(x, z @ W.T + b, np.full(P, np.log(sigma2)))
log_pz, _ = dist.standard_normal_log_density(z)
log_qz, _ = dist.gaussian_log_density(z, q_mean, q_logvar)
terms = (log_px_z + log_pz - log_qz)[:, 0]                      # (L,): one estimate per sample
mc, mc_se = terms.mean(), terms.std() / np.sqrt(L)
exact = lg.elbo(x, W, b, sigma2, q_mean, np.diag(np.exp(q_logvar[0])))[0]
print(f"ELBO of this q: closed form {exact:.4f}, Monte Carlo ({L} samples) {mc:.4f} +- {mc_se:.4f}")
assert abs(mc - exact) < 4 * mc_se

# %% [markdown]
# ## 3. The ELBO as a function of $q$: maximised at the posterior, gap = KL
#
# Now move $q$ away from the posterior in two ways and watch $\mathcal{L}$ and the gap.
#
# * **Shift the mean**: $q_t = \mathcal{N}(m^* + t\,u,\; \Sigma^*)$ for a unit vector $u$. The
#   KL between two Gaussians with the same covariance is half the squared Mahalanobis distance,
#   $\mathrm{KL}(q_t \,\|\, p(z \mid x)) = \tfrac12 t^2\, u^\top \Sigma^{*-1} u$: a parabola in
#   $t$.
# * **Scale the covariance**: $q_c = \mathcal{N}(m^*,\; c\,\Sigma^*)$. Then
#   $\operatorname{tr}(\Sigma^{*-1} c\Sigma^*) = cD$ and the log-determinants differ by $D\log c$,
#   so $\mathrm{KL}(q_c \,\|\, p(z \mid x)) = \tfrac{D}{2}(c - 1 - \log c)$, zero only at $c = 1$.
#   A $q$ that is too wide pays through $c$, which grows fast; one that is too narrow through
#   $-\log c$, which grows slowly.
#
# **Figure `02_elbo_gap.png`**: $\mathcal{L}(q_t)$ against $t$ (left) and $\mathcal{L}(q_c)$
# against $c$ (right, log axis), with $\log p(x)$ as a dashed line and the gap shaded.
# What to see: both curves touch $\log p(x)$ at exactly one point, the posterior ($t = 0$,
# $c = 1$), and stay below it everywhere else; the shaded gap is the KL, a parabola on the left
# and $\frac{D}{2}(c - 1 - \log c)$ on the right, steeper on the wide side. Maximising
# $\mathcal{L}$ over $q$ *is* finding the posterior.

# %%
u = np.array([1.0, 1.0]) / np.sqrt(2)
t_grid = np.linspace(-1.5, 1.5, 61)                              # contains t = 0
c_grid = np.logspace(-1.5, 1.5, 61)                              # contains c = 1
n_t, n_c = len(t_grid), len(c_grid)
elbo_t = lg.elbo(np.repeat(x, n_t, axis=0), W, b, sigma2, post_mean + t_grid[:, None] * u, post_cov)
elbo_c = lg.elbo(np.repeat(x, n_c, axis=0), W, b, sigma2, np.repeat(post_mean, n_c, axis=0),
                 c_grid[:, None, None] * post_cov)
kl_t = 0.5 * t_grid**2 * (u @ np.linalg.solve(post_cov, u))      # the two formulas above
kl_c = 0.5 * D * (c_grid - 1 - np.log(c_grid))
print(f"max over t at t = {t_grid[elbo_t.argmax()]:+.2f}, max over c at c = {c_grid[elbo_c.argmax()]:.2f}; "
      f"there L - log p(x) = {elbo_t.max() - log_px:.1e}, {elbo_c.max() - log_px:.1e}")
assert t_grid[elbo_t.argmax()] == 0 and np.isclose(c_grid[elbo_c.argmax()], 1.0)
assert abs(elbo_t.max() - log_px) < 1e-10 and abs(elbo_c.max() - log_px) < 1e-10, "L = log p(x) at q = p(z|x)"
assert np.allclose(log_px - elbo_t, kl_t, atol=1e-10) and np.allclose(log_px - elbo_c, kl_c, atol=1e-10), \
    "the gap is the KL"

fig = Figure(figsize=(10, 3.8))
ax_t, ax_c = fig.subplots(1, 2, sharey=True)
for ax, grid, values, label in ((ax_t, t_grid, elbo_t, "$\\mathcal{L}(q_t)$"),
                                (ax_c, c_grid, elbo_c, "$\\mathcal{L}(q_c)$")):
    ax.plot(grid, values, lw=2, label=label)
    ax.axhline(log_px, color="k", ls="--", label="$\\log p(x)$")
    ax.fill_between(grid, values, log_px, alpha=0.2, color="C3", label="gap = KL$(q\\,\\|\\,p(z|x))$")
    ax.set_ylim(log_px - 4, log_px + 0.5)
    ax.legend(loc="lower center", fontsize=8)
ax_t.set(xlabel="mean shift $t$ (along $u = (1, 1)/\\sqrt{2}$)", ylabel="nats",
         title="$q_t = \\mathcal{N}(m^* + t u, \\Sigma^*)$")
ax_c.set(xscale="log", xlabel="covariance scale $c$", title="$q_c = \\mathcal{N}(m^*, c\\,\\Sigma^*)$")
fig.tight_layout()
fig.savefig(FIGURES / "02_elbo_gap.png", dpi=90)
fig

# %% [markdown]
# ## 4. Variational inference is optimisation
#
# In practice we do not know where the posterior is; we *search* for the $q$ with the largest
# $\mathcal{L}$. Start from the prior, $q = \mathcal{N}(0, I)$, and maximise $\mathcal{L}$ over
# $q$'s parameters with a general-purpose optimiser (`scipy.optimize.minimize`, BFGS, on
# $-\mathcal{L}$), for two families:
#
# * **full-covariance** Gaussians, $S = L L^\top$ with a lower-triangular $L$ whose diagonal is
#   stored as its logarithm (so $S$ stays positive definite): 5 parameters. The posterior is in
#   this family, so the optimum must be $m = m^*$, $S = \Sigma^*$, $\mathcal{L} = \log p(x)$.
# * **mean-field** (diagonal) Gaussians, $S = \operatorname{diag}(e^{v})$: 4 parameters, what the
#   VAE's encoder outputs. The posterior is *not* in this family (it is correlated), so
#   $\mathcal{L}$ stays below $\log p(x)$ by the KL of the best diagonal $q$.
#
# For a Gaussian target with precision $\Lambda = \Sigma^{*-1}$, the best factorised $q$ is known
# (Bishop 2006, Sec. 10.1.2): the exact mean, and variances $1/\Lambda_{jj}$
# (`lg.mean_field_posterior`). The optimiser should find it.
#
# **Figure `02_optimisation.png`**: $\mathcal{L}$ after each iteration for both families, and
# $\log p(x)$ dashed. What to see: both climb from the prior's ELBO; the full-covariance run
# reaches $\log p(x)$ (the gap closes to zero), the mean-field run levels off a fixed distance
# below it. That distance is the price of the diagonal family, computed in section 5.
#
# (Here scipy differentiates $\mathcal{L}$ by finite differences, fine for 5 parameters. The VAE
# has hundreds of thousands, and its $\mathcal{L}$ is only available as a Monte Carlo estimate:
# tutorial 03 is about its gradient.)

# %%
tril = np.tril_indices(D, -1)


def full_q(params):
    """params (D + D + D(D-1)/2,) -> mean (1, D), covariance (D, D) = L L^T."""
    chol = np.diag(np.exp(params[D:2 * D]))
    chol[tril] = params[2 * D:]
    return params[None, :D], chol @ chol.T


def diagonal_q(params):
    """params (2D,) -> mean (1, D), covariance diag(exp(v)) (D, D)."""
    return params[None, :D], np.diag(np.exp(params[D:]))


traces = {}
results = {}
for name, unpack, n_params in (("full covariance", full_q, 2 * D + len(tril[0])),
                               ("mean-field", diagonal_q, 2 * D)):
    def negative_elbo(params, unpack=unpack):
        mean, cov = unpack(params)
        return -lg.elbo(x, W, b, sigma2, mean, cov)[0]

    start = np.zeros(n_params)                                   # q = N(0, I), the prior
    trace = [-negative_elbo(start)]
    result = minimize(negative_elbo, start, method="BFGS", options={"gtol": 1e-10},
                      callback=lambda params, f=negative_elbo, tr=trace: tr.append(-f(params)))
    traces[name], results[name] = np.array(trace), unpack(result.x)
    print(f"{name:>15}: {len(trace) - 1} iterations, ELBO {trace[0]:.4f} -> {trace[-1]:.4f} "
          f"(log p(x) = {log_px:.4f})")

mean_full, cov_full = results["full covariance"]
assert np.allclose(mean_full, post_mean, atol=1e-5) and np.allclose(cov_full, post_cov, atol=1e-5), \
    "the best full-covariance q is the posterior"
assert abs(traces["full covariance"][-1] - log_px) < 1e-8
mf_mean, mf_var = lg.mean_field_posterior(x, W, b, sigma2)
mean_diag, cov_diag = results["mean-field"]
assert np.allclose(mean_diag, mf_mean, atol=1e-5) and np.allclose(np.diag(cov_diag), mf_var, atol=1e-5), \
    "the best diagonal q has the exact mean and variances 1 / Lambda_jj"

fig = Figure(figsize=(6, 3.8))
ax = fig.subplots()
for name, style in (("full covariance", "o-"), ("mean-field", "s-")):
    ax.plot(traces[name], style, ms=4, label=f"{name} $q$")
ax.axhline(log_px, color="k", ls="--", label="$\\log p(x)$")
ax.set(xlabel="BFGS iteration", ylabel="ELBO $\\mathcal{L}(q)$ (nats)",
       title="maximising the ELBO over $q$, from $q = p(z)$")
ax.legend()
fig.tight_layout()
fig.savefig(FIGURES / "02_optimisation.png", dpi=90)
fig

# %% [markdown]
# ## 5. The mean-field $q$ against the full posterior
#
# Why does the diagonal $q$ fall short, and by how much? With the exact mean and $S =
# \operatorname{diag}(1/\Lambda_{jj})$, the trace term of the Gaussian KL is
# $\operatorname{tr}(\Lambda S) = D$, and what is left is
#
# $$
# \mathrm{KL}\big(q_{\mathrm{MF}} \,\|\, p(z \mid x)\big) = \tfrac12 \Big[\sum_j \log \Lambda_{jj} - \log|\Lambda|\Big]
# \;\overset{D = 2}{=}\; -\tfrac12 \log(1 - \rho^2),
# $$
#
# with $\rho$ the posterior correlation: the gap depends only on how correlated the posterior is,
# and here, because $\Sigma^*$ does not depend on $x$, it is the same for every observation.
#
# $1/\Lambda_{jj}$ is the variance of $z_j$ *given the other coordinates*, which is never larger
# than its marginal variance $\Sigma^*_{jj}$: the mean-field $q$ is **too narrow**. This is the
# classic behaviour of $\mathrm{KL}(q \,\|\, p)$: it is an expectation under $q$, so it heavily
# penalises $q$ for putting mass where the posterior has little, and hardly at all for missing
# some of the posterior's mass.
#
# When the columns of $W$ are orthogonal, $G = W^\top W + \sigma^2 I$ is diagonal, the posterior
# is uncorrelated, and the mean-field $q$ *is* the posterior (gap zero). We rotate $W$'s columns
# to orthogonal ones of the same lengths to see it.
#
# **Figure `02_mean_field.png`**: contours (1 and 2 standard deviations) of the posterior (filled)
# and of the best diagonal $q$ (lines), for our $W$ (left) and for the orthogonalised $W$
# (right). What to see: on the left the posterior is a tilted ellipse and $q$ an axis-aligned
# one, centred on the same point but narrower than the posterior along both axes; on the right
# the two coincide.

# %%
kl_mf = lg.kl_to_posterior(x, W, b, sigma2, mf_mean, np.diag(mf_var))[0]
print(f"mean-field gap: KL = {kl_mf:.4f} nats = -1/2 log(1 - rho^2) = {-0.5 * np.log(1 - rho**2):.4f}; "
      f"L = {traces['mean-field'][-1]:.4f} = log p(x) - KL = {log_px - kl_mf:.4f}")
print(f"variances: mean-field {np.round(mf_var, 4)}, posterior marginals {np.round(np.diag(post_cov), 4)}")
assert np.isclose(kl_mf, -0.5 * np.log(1 - rho**2), rtol=1e-10)
assert abs(traces["mean-field"][-1] - (log_px - kl_mf)) < 1e-8, "the optimiser's plateau is log p(x) - KL"
assert np.all(mf_var < np.diag(post_cov)), "the mean-field q is narrower than the posterior"

# the same gap for every observation: the posterior covariance does not depend on x
mf_means_all, _ = lg.mean_field_posterior(x_data, W, b, sigma2)
kl_all = lg.kl_to_posterior(x_data, W, b, sigma2, mf_means_all, np.diag(mf_var))
assert np.allclose(kl_all, kl_mf, rtol=1e-10)

Q, _ = np.linalg.qr(W)
W_orth = Q * np.linalg.norm(W, axis=0)                  # orthogonal columns, same lengths
orth_mean, orth_cov = lg.posterior(x, W_orth, b, sigma2)
orth_mf_mean, orth_mf_var = lg.mean_field_posterior(x, W_orth, b, sigma2)
kl_orth = lg.kl_to_posterior(x, W_orth, b, sigma2, orth_mf_mean, np.diag(orth_mf_var))[0]
print(f"orthogonal W: mean-field gap {kl_orth:.1e}")
assert abs(kl_orth) < 1e-12 and np.allclose(np.diag(orth_mf_var), orth_cov, atol=1e-14)


def ellipse(ax, mean, cov, n_sd, **style):
    values, vectors = np.linalg.eigh(cov)
    angle = np.degrees(np.arctan2(vectors[1, 1], vectors[0, 1]))
    ax.add_patch(Ellipse(mean, *(2 * n_sd * np.sqrt(values[::-1])), angle=angle, **style))


fig = Figure(figsize=(10, 4.2))
for ax, (title, mean, cov, var) in zip(fig.subplots(1, 2), (
        (f"$W$ as given: $\\rho = {rho:.2f}$, gap {kl_mf:.3f} nats", post_mean[0], post_cov, mf_var),
        (f"orthogonal columns: $\\rho = 0$, gap {abs(kl_orth):.0f} nats", orth_mean[0], orth_cov, orth_mf_var))):
    for n_sd, alpha in ((2, 0.15), (1, 0.3)):
        ellipse(ax, mean, cov, n_sd, color="C0", alpha=alpha, lw=0,
                label="posterior $p(z|x)$" if n_sd == 1 else None)
        ellipse(ax, mean, np.diag(var), n_sd, fill=False, color="C3", lw=2, ls="--" if n_sd == 2 else "-",
                label="best diagonal $q$" if n_sd == 1 else None)
    ax.plot(*mean, "k+", ms=12)
    ax.set(xlim=(mean[0] - 1.6, mean[0] + 1.6), ylim=(mean[1] - 1.6, mean[1] + 1.6), aspect="equal",
           xlabel="$z_1$", ylabel="$z_2$", title=title)
    ax.legend(loc="upper right", fontsize=8)
fig.tight_layout()
fig.savefig(FIGURES / "02_mean_field.png", dpi=90)
fig

# %% [markdown]
# ## 6. Learning: $\mathcal{L}$ is a function of $\theta$ too
#
# Step 7 of the seed derivation: the model's parameters $\theta = (W, b, \sigma^2)$ are unknown as well, and the
# VAE maximises $\mathcal{L}(\theta, \phi)$ over both at once (Kingma & Welling 2013, Sec. 2.2).
# Averaged over a data set $x_1, \dots, x_N$,
#
# $$
# \frac1N \sum_n \mathcal{L}(\theta, \phi; x_n) = \frac1N \sum_n \log p_\theta(x_n)
# - \frac1N \sum_n \mathrm{KL}\big(q_\phi(z \mid x_n) \,\|\, p_\theta(z \mid x_n)\big),
# $$
#
# so raising $\mathcal{L}$ either raises the likelihood or tightens the bound. For pPCA the
# maximum-likelihood $\theta$ is known in closed form (Tipping & Bishop 1999, `lg.max_likelihood`):
# $W = U_D(\Delta_D - \sigma^2 I)^{1/2} R$ ($U_D$ the data covariance's top $D$ eigenvectors,
# $\Delta_D$ the diagonal matrix of their eigenvalues) for *any* rotation $R$, all with the same
# likelihood.
# With $R = I$ the columns of $W$ are orthogonal (eigenvectors times scales), so by section 5 the
# mean-field $q$ is exact there: the ELBO with a diagonal $q$ reaches the maximum likelihood.
# With any other $R$ the likelihood is the same but the ELBO is lower. Maximising the ELBO with a
# diagonal $q$ therefore still finds a maximum-likelihood model, and among the equally likely
# ones it picks those whose posterior a diagonal $q$ fits (Lucas et al. 2019 prove this for the
# linear VAE).

# %%
N = 500
x_train, _ = lg.sample(N, W, b, sigma2, rng)
W_ml, b_ml, s2_ml = lg.max_likelihood(x_train, D)
angle = 0.6
R = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
for label, W_ in (("W_ML (R = I)", W_ml), ("W_ML R (rotated)", W_ml @ R)):
    log_lik = lg.log_marginal_likelihood(x_train, W_, b_ml, s2_ml).mean()
    q_m, q_v = lg.mean_field_posterior(x_train, W_, b_ml, s2_ml)
    mf_elbo = lg.elbo(x_train, W_, b_ml, s2_ml, q_m, np.diag(q_v)).mean()
    print(f"{label:>17}: mean log p(x) {log_lik:.4f}, mean ELBO with the best diagonal q {mf_elbo:.4f}")
    if W_ is W_ml:
        best_log_lik, best_elbo = log_lik, mf_elbo
        assert abs(mf_elbo - log_lik) < 1e-10, "at R = I the mean-field ELBO is the log-likelihood"
    else:
        assert abs(log_lik - best_log_lik) < 1e-10, "a rotation does not change the likelihood"
        assert mf_elbo < best_elbo - 1e-3, "but it lowers the mean-field ELBO"

# %% [markdown]
# ## Summary
#
# * $\mathrm{KL}(q \,\|\, p(z \mid x)) = -\mathcal{L} + \log p(x)$ (seed Eq. 5), checked to
#   rounding error for random Gaussian $q$; the closed-form $\mathcal{L}$ is what Monte Carlo
#   sampling from $q$ estimates.
# * $\mathcal{L} \le \log p(x)$, with equality exactly at the posterior; the gap is the KL
#   (a parabola for a shifted mean, $\frac{D}{2}(c - 1 - \log c)$ for a scaled covariance).
# * Variational inference is optimisation over $q$: a rich enough family recovers the
#   posterior; the mean-field family stops short by $-\frac12 \log(1 - \rho^2)$ and is too narrow.
# * $\mathcal{L}$ is also a function of $\theta$; maximising it over both learns the model.
#
# The VAE does all this with a neural decoder (no closed forms), an encoder network that outputs
# $q$'s parameters for every $x$ at once, and $\mathcal{L}$ estimated by Monte Carlo. The
# estimate is easy; its *gradient* with respect to $q$'s parameters is the subject of **03**.
#
# References: D. P. Kingma, M. Welling (2013), Auto-Encoding Variational Bayes; M. E. Tipping,
# C. M. Bishop (1999), Probabilistic Principal Component Analysis; C. M. Bishop (2006), Pattern
# Recognition and Machine Learning, Sec. 10.1 and 12.2; J. Lucas, G. Tucker, R. Grosse,
# M. Norouzi (2019), Don't Blame the ELBO!
