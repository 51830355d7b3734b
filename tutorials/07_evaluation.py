# %% [markdown]
# # 07 · Evaluation: the importance-sampled log-likelihood and the IWAE bound
#
# Step 10 of the seed derivation ([docs/seed.md](../docs/seed.md)) ends with how a trained VAE
# is judged. The ELBO is a *lower bound* on
# $\log p_\theta(x)$, below it by $\mathrm{KL}(q_\phi(z \mid x) \,\|\, p_\theta(z \mid x))$
# (tutorial 02), so two models with the same ELBO can have different likelihoods, and a better
# encoder alone raises the ELBO without changing the model. Papers therefore report an estimate
# of $\log p_\theta(x)$ itself (Kingma & Welling 2013, Sec. 5 and Appendix D, did so for small
# latent spaces; the importance-sampled estimate below, as used by Burda, Grosse &
# Salakhutdinov 2016, is today's standard).
#
# **Importance sampling.** Any $q(z \mid x)$ that is positive wherever $p_\theta(x, z)$ is can
# serve as a *proposal*:
#
# $$
# p_\theta(x) = \int q(z \mid x)\, \frac{p_\theta(x, z)}{q(z \mid x)}\, dz = \mathbb{E}_{q}\big[w(z)\big],
# \qquad w(z) = \frac{p_\theta(x \mid z)\, p(z)}{q(z \mid x)} ,
# $$
#
# so with $k$ draws $z_1, \dots, z_k \sim q(z \mid x)$, $\frac1k\sum_i w(z_i)$ is an unbiased
# estimate of $p_\theta(x)$, and its logarithm, computed in log space,
#
# $$
# \hat{\mathcal{L}}_k = \log \frac1k \sum_{i=1}^k w(z_i) = \operatorname{logsumexp}_i\big(\log w(z_i)\big) - \log k ,
# $$
#
# estimates $\log p_\theta(x)$. The encoder we already have is a natural proposal: it was
# trained to be close to the posterior, where $p_\theta(x, z)$ is large.
#
# **The IWAE bound** (Burda et al. 2016, Theorem 1). $\log$ is concave, so by Jensen's
# inequality the expectation $\mathcal{L}_k = \mathbb{E}[\hat{\mathcal{L}}_k]$ is below
# $\log p_\theta(x)$: the estimate is biased low. For $k = 1$ it is the ELBO,
# $\mathcal{L}_1 = \mathbb{E}_q[\log w]$, and the bound tightens as $k$ grows:
#
# $$
# \mathcal{L}_1 \le \mathcal{L}_m \le \mathcal{L}_k \le \log p_\theta(x) \quad (m \le k), \qquad
# \mathcal{L}_k \to \log p_\theta(x) \text{ as } k \to \infty .
# $$
#
# For large $k$ the bias is about $\operatorname{Var}(w) / (2k\, \mathbb{E}[w]^2)$ (a
# second-order Taylor expansion of $\log$ around $\mathbb{E}[w]$). `docs/evaluation.md` derives
# all of this; `minivae.evaluate` implements it: `log_weights` (the $\log w$, from `VAE.forward`
# with `estimator="A"`), `iwae_bound(model, x, k)` (one draw of $\hat{\mathcal{L}}_k$ per example, in
# bounded memory) and `log_likelihood(model, x, k=5000)` (the same with the literature's $k$).
#
# This tutorial checks the bound on the exact linear-Gaussian model of tutorial 02, where
# $\log p(x)$ is known, then evaluates a small VAE trained on MNIST.
#
# Run `python tutorials/07_evaluation.py` (about a minute on two cores); `MINIVAE_FAST=1` uses
# fewer samples and trains less. Figures go to `tutorials/figures/` or to `MINIVAE_FIGURES`.

# %%
# %matplotlib inline
import copy
import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

import minivae
from minivae import evaluate
from minivae.topics import linear_gaussian as lg
from minivae.data.preprocessing import fixed_binarization

FAST = os.environ.get("MINIVAE_FAST", "") not in ("", "0")   # fewer samples, for the tests
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
FIGURES = Path(os.environ.get("MINIVAE_FIGURES", HERE / "figures"))
FIGURES.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)        # all randomness from one explicit Generator

# %% [markdown]
# ## 1. The exact model, as a VAE
#
# The linear-Gaussian model (probabilistic PCA; Tipping & Bishop 1999) with $D = 2$, $P = 4$:
# $p(z) = \mathcal{N}(0, I)$, $p(x \mid z) = \mathcal{N}(Wz + b, \sigma^2 I)$. `lg.vae_from_ppca`
# builds the minivae `VAE` whose decoder is this model (no hidden layer, Gaussian likelihood
# with fixed variance $\sigma^2$) and whose encoder outputs the best *diagonal* $q$, the
# mean-field posterior of tutorial 02: the exact posterior mean, and variances $1/\Lambda_{jj}$
# narrower than the posterior's. `evaluate.iwae_bound` does not know the model is linear: it
# runs the VAE's own forward pass, exactly as for MNIST.
#
# We compare two proposals $q$, both with the exact posterior mean:
#
# * **mean-field**: the encoder as built, the $q$ with the highest ELBO among diagonal
#   Gaussians, but narrower than the posterior;
# * **wide**: the same mean with variances $1.5\,\lambda_{\max}(\Sigma^*)$ in every direction, wider
#   than the posterior everywhere, set through the encoder's output bias (the last $D$ entries
#   are $\log\sigma^2$). Its weights $w = p(x)\, p(z \mid x) / q(z \mid x)$ are bounded.
#
# For Gaussian $q = \mathcal{N}(m^*, S)$ and posterior $\mathcal{N}(m^*, \Sigma^*)$, the relative
# variance of the weights is a Gaussian integral,
#
# $$
# \frac{\mathbb{E}_q[w^2]}{\mathbb{E}_q[w]^2} = \int \frac{p(z \mid x)^2}{q(z \mid x)}\, dz
# = \frac{|S|^{1/2}}{|\Sigma^*|\; |2\Sigma^{*-1} - S^{-1}|^{1/2}} ,
# $$
#
# finite only if $2\Sigma^{*-1} - S^{-1}$ is positive definite: a proposal may be narrower than
# the posterior, but not by more than a factor of 2 in variance in any direction. (For the
# mean-field $q$ and $D = 2$ this is $\rho^2 < \frac14$, with $\rho$ the posterior correlation;
# we chose $W$ so that it holds.) The predicted bias of $\hat{\mathcal{L}}_k$ is then
# $\big(\mathbb{E}[w^2]/\mathbb{E}[w]^2 - 1\big) / 2k$.

# %%
W = np.array([[1.0, 0.3],
              [0.5, 0.9],
              [-0.3, 0.4],
              [0.2, -0.1]])
b = np.array([0.5, -0.2, 0.1, 0.0])
sigma2 = 0.25
D = W.shape[1]
x, _ = lg.sample(1, W, b, sigma2, rng)                       # (1, P): one observation
log_px = lg.log_marginal_likelihood(x, W, b, sigma2)[0]     # exact
post_mean, post_cov = lg.posterior(x, W, b, sigma2)
rho = post_cov[0, 1] / np.sqrt(post_cov[0, 0] * post_cov[1, 1])
_, mf_var = lg.mean_field_posterior(x, W, b, sigma2)

mean_field = lg.vae_from_ppca(W, b, sigma2)                  # encoder: the best diagonal q
wide = copy.deepcopy(mean_field)
wide_var = np.full(D, 1.5 * np.linalg.eigvalsh(post_cov).max())
wide.params["encoder.0.b"][D:] = np.log(wide_var)           # the log sigma^2 outputs
proposals = {"mean-field": (mean_field, mf_var), "wide": (wide, wide_var)}

for name, (model, var) in proposals.items():
    mu, logvar = model.encode(x)
    assert np.allclose(mu, post_mean) and np.allclose(np.exp(logvar), var), "the encoder outputs this q"
print(f"log p(x) = {log_px:.4f} (exact); posterior correlation rho = {rho:.2f}")


def weight_ratio(S, Sigma):
    """E_q[w^2] / E_q[w]^2 for q = N(m, S), posterior N(m, Sigma): the formula above."""
    A = 2 * np.linalg.inv(Sigma) - np.linalg.inv(S)
    assert np.all(np.linalg.eigvalsh(A) > 0), "Var(w) is infinite for this q"
    return np.sqrt(np.linalg.det(S)) / (np.linalg.det(Sigma) * np.sqrt(np.linalg.det(A)))


exact_elbo, ratio = {}, {}
for name, (model, var) in proposals.items():
    exact_elbo[name] = lg.elbo(x, W, b, sigma2, post_mean, np.diag(var))[0]
    ratio[name] = weight_ratio(np.diag(var), post_cov)
    print(f"{name:>10} q: ELBO {exact_elbo[name]:.4f} (gap {log_px - exact_elbo[name]:.4f}), "
          f"E[w^2]/E[w]^2 = {ratio[name]:.3f}")

# %% [markdown]
# **$k = 1$ is the ELBO.** With one sample, $\hat{\mathcal{L}}_1 = \log w(z_1)$ is a single
# sample of estimator A, and `iwae_bound(model, x, 1, rng=g)` returns exactly the numbers of
# `model.elbo(x, estimator="A", rng=g)` for the same generator state. Averaged over many draws it must
# match the closed-form ELBO of tutorial 02.
#
# **$\mathcal{L}_k$ against $k$.** To estimate the *expectation* $\mathcal{L}_k$ we average $R$
# independent estimates, by repeating $x$ as $R$ rows (one call, vectorised). The standard error
# of that average is the sample standard deviation over $\sqrt{R}$; checks allow four of them.
#
# **Figure `07_exact_iwae.png`**. Left: $\mathcal{L}_k$ against $k$ for both proposals (error
# bars: 2 standard errors), the exact $\log p(x)$ dashed, and the closed-form ELBOs as crosses
# at $k = 1$. Right: the remaining gap $\log p(x) - \mathcal{L}_k$ on log-log axes with the
# predicted $\big(\mathbb{E}[w^2]/\mathbb{E}[w]^2 - 1\big)/2k$ as lines. What to see: both curves
# start at their ELBO and climb towards $\log p(x)$ without crossing it. The wide $q$ has by far
# the worse ELBO (the ELBO punishes a $q$ that is too wide), yet as an importance sampler it is
# about as good as the mean-field $q$: after a few dozen samples the two gaps are alike, and from
# there both fall like $1/k$, close to the predicted lines (a large-$k$ approximation, which
# overshoots for small $k$: the gap can never exceed the ELBO's). A good ELBO and a good proposal
# are not the same thing.

# %%
R = 3000 if FAST else 20000
ks = 2 ** np.arange(0, 7 if FAST else 11)                  # 1, 2, 4, ...
seed = 123
x_rows = np.repeat(x, R, axis=0)                             # (R, P): R independent estimates
iwae_mean, iwae_se = {}, {}
for name, (model, _) in proposals.items():
    one = evaluate.iwae_bound(model, x_rows, 1, rng=np.random.default_rng(seed))
    assert np.allclose(one, model.elbo(x_rows, estimator="A", rng=np.random.default_rng(seed)), rtol=1e-12), \
        "k = 1 is estimator A of the ELBO"
    means, ses = [], []
    for k in ks:
        estimates = evaluate.iwae_bound(model, x_rows, int(k), rng=rng, batch_size=R)   # (R,)
        means.append(estimates.mean())
        ses.append(estimates.std() / np.sqrt(R))
    iwae_mean[name], iwae_se[name] = np.array(means), np.array(ses)
    gap, se = log_px - iwae_mean[name], iwae_se[name]
    predicted = (ratio[name] - 1) / (2 * ks)
    print(f"{name:>10} q:  k   L_k        gap      +- s.e.   predicted gap")
    for k, m_, g, s, p in zip(ks, iwae_mean[name], gap, se, predicted):
        print(f"{'':>14}{k:4d} {m_:9.4f} {g:9.5f}  {s:8.5f}   {p:.5f}")
    assert abs(iwae_mean[name][0] - exact_elbo[name]) < 4 * se[0], "L_1 = the ELBO"
    assert np.all(gap > -4 * se), "L_k <= log p(x)"
    assert np.all(np.diff(iwae_mean[name]) > -4 * np.hypot(se[1:], se[:-1])), "L_k grows with k"
    assert gap[-1] < gap[0] / 5, "L_k approaches log p(x)"
    # the 1/k law is a large-k approximation; check it where higher-order terms are negligible
    large = ks >= 64
    assert np.all(np.abs(gap[large] - predicted[large]) < 4 * se[large]), "gap ~ Var(w) / (2k E[w]^2)"

fig = Figure(figsize=(11, 4))
ax_l, ax_g = fig.subplots(1, 2)
for (name, _), color in zip(proposals.items(), ("C0", "C1")):
    ax_l.errorbar(ks, iwae_mean[name], yerr=2 * iwae_se[name], fmt="o-", ms=4, color=color,
                  capsize=2, label=f"$\\mathcal{{L}}_k$, {name} $q$")
    ax_l.plot([1], [exact_elbo[name]], "x", ms=12, mew=2, color=color)
    gap = log_px - iwae_mean[name]
    shown = gap > 0                                          # log axes cannot show noise below 0
    ax_g.errorbar(ks[shown], gap[shown], yerr=2 * iwae_se[name][shown], fmt="o", ms=4, color=color,
                  capsize=2, label=f"{name} $q$")
    ax_g.loglog(ks, (ratio[name] - 1) / (2 * ks), "-", color=color, lw=1,
                label=f"$(\\mathbb{{E}}[w^2]/\\mathbb{{E}}[w]^2 - 1)/2k$, {name}")
ax_l.plot([], [], "kx", ms=8, mew=2, label="closed-form ELBO")
ax_l.axhline(log_px, color="k", ls="--", label="exact $\\log p(x)$")
ax_l.set(xscale="log", xlabel="importance samples $k$", ylabel="nats",
         title="the IWAE bound on the exact model")
ax_l.legend(fontsize=8)
ax_g.set(xlabel="importance samples $k$", ylabel="$\\log p(x) - \\mathcal{L}_k$ (nats)",
         title="the gap falls like $1/k$", ylim=(1e-4, 2))
ax_g.legend(fontsize=8)
fig.tight_layout()
fig.savefig(FIGURES / "07_exact_iwae.png", dpi=90)
fig

# %% [markdown]
# ## 2. A VAE trained on MNIST
#
# Now a model whose $\log p_\theta(x)$ nobody can compute: 784 pixels, one hidden layer of 200
# ReLU units, $D = 20$, trained briefly on the embedded MNIST subset (tutorial 06 is about
# training). The test images are binarised once, with a fixed seed, as `minivae train` does for
# its test ELBO.
#
# For each test image we compute one $\hat{\mathcal{L}}_k$ for increasing $k$, and with it the
# delta-method standard error (`return_se=True`), $\mathrm{se} \approx \sqrt{\sum_i w_i^2 /
# (\sum_i w_i)^2 - 1/k}$. From it follows the **effective sample size**
# $k / (1 + k\, \mathrm{se}^2) = (\sum_i w_i)^2 / \sum_i w_i^2$: how many samples of equal weight
# the $k$ weighted ones are worth. If $q$ were the posterior, all weights would be equal and it
# would be $k$.
#
# **Figure `07_mnist_iwae.png`**. Left: the test-set mean of $\hat{\mathcal{L}}_k$ against $k$,
# with the ELBO (estimator B with $L = 100$, an almost noise-free estimate of the number training
# reports) dashed; error bars: 2 standard errors of the mean of $\hat{\mathcal{L}}_k - $ ELBO,
# paired by image, i.e. the Monte Carlo noise of $\hat{\mathcal{L}}_k$. Right: the median effective sample
# size over the test images (the band: its quartiles) against $k$, with the line "all $k$
# samples count". What to see: $\mathcal{L}_k$ rises steeply for small $k$ and keeps creeping
# up, several nats above the ELBO; that difference is a lower bound on the average
# $\mathrm{KL}(q_\phi(z \mid x) \,\|\, p_\theta(z \mid x))$ of the trained encoder. The effective
# sample size grows far slower than $k$: a few samples carry almost all the weight, typical of a
# proposal that is narrower than the posterior (`docs/evaluation.md`). The estimate is still a
# valid stochastic lower bound, just a loose one that more samples keep tightening; the
# literature's standard is $k = 5000$.

# %%
data = minivae.load_mnist()
x_test = fixed_binarization(data.test.x, seed=0)             # binary, fixed once
model = minivae.VAE(784, 20, hidden=(200,), dtype=np.float32, seed=0)
n_train, epochs = (2000, 3) if FAST else (9000, 10)
history = minivae.train(model, data.train.x[:n_train], data.test.x, epochs=epochs, seed=0, verbose=False)
n_images = 100 if FAST else 300
ks_mnist = (1, 10, 100, 500) if FAST else (1, 5, 50, 500, 5000)
x_eval = x_test[:n_images]

elbo_b = model.elbo(x_eval, n_samples=100, estimator="B", rng=rng)          # (n,), estimator B
one = evaluate.iwae_bound(model, x_eval, 1, rng=np.random.default_rng(seed))
assert np.allclose(one, model.elbo(x_eval, estimator="A", rng=np.random.default_rng(seed)), rtol=1e-6), \
    "k = 1 is estimator A of the ELBO"
difference = one - elbo_b
print(f"{n_images} test images: ELBO by estimator B (L = 100) {elbo_b.mean():.2f}, "
      f"by L_1 (estimator A, L = 1) {one.mean():.2f}; difference {difference.mean():+.2f} "
      f"+- {difference.std() / np.sqrt(n_images):.2f}")
assert abs(difference.mean()) < 4 * difference.std() / np.sqrt(n_images), "both estimate the ELBO"

estimates, ess = {1: one}, {1: np.ones(n_images)}       # one sample: an effective size of 1
for k in ks_mnist[1:]:
    est, se = evaluate.iwae_bound(model, x_eval, k, rng=rng, return_se=True)    # (n,) each
    estimates[k], ess[k] = est, k / (1 + k * se**2)
means = np.array([estimates[k].mean() for k in ks_mnist])
# L_k - ELBO per image (paired by image): its standard error is the Monte Carlo noise of L_k,
# not the spread of log p(x) over the test images
above = {k: estimates[k] - elbo_b for k in ks_mnist}
above_se = np.array([above[k].std() / np.sqrt(n_images) for k in ks_mnist])
for k, se_ in zip(ks_mnist, above_se):
    print(f"k = {k:5d}: mean L_k {estimates[k].mean():8.2f}, above the ELBO by {above[k].mean():5.2f} "
          f"+- {se_:.2f}; median effective sample size {np.median(ess[k]):6.1f}")
steps = [estimates[k2] - estimates[k1] for k1, k2 in zip(ks_mnist[:-1], ks_mnist[1:])]
assert all(s.mean() > -4 * s.std() / np.sqrt(n_images) for s in steps), "L_k grows with k"
assert above[ks_mnist[-1]].mean() > 4 * above_se[-1], "the bound with many samples is clearly above the ELBO"
assert np.median(ess[ks_mnist[-1]]) < ks_mnist[-1] / 10, "the weights are far from equal"

fig = Figure(figsize=(11, 4))
ax_l, ax_e = fig.subplots(1, 2)
ax_l.errorbar(ks_mnist, means, yerr=2 * above_se, fmt="o-", capsize=3, label="mean $\\hat{\\mathcal{L}}_k$")
ax_l.axhline(elbo_b.mean(), color="k", ls="--", label="ELBO (estimator B)")
ax_l.set(xscale="log", xlabel="importance samples $k$", ylabel="nats per image",
         title=f"IWAE bound, {n_images} MNIST test images")
ax_l.legend()
k_arr = np.array(ks_mnist)
quartiles = np.array([np.percentile(ess[k], [25, 50, 75]) for k in ks_mnist])
ax_e.fill_between(k_arr, quartiles[:, 0], quartiles[:, 2], alpha=0.3, label="quartiles over images")
ax_e.loglog(k_arr, quartiles[:, 1], "o-", label="median")
ax_e.loglog(k_arr, k_arr, "k:", label="all $k$ samples count")
ax_e.set(xlabel="importance samples $k$", ylabel="effective sample size",
         title="effective sample size $k / (1 + k\\,\\mathrm{se}^2)$ per image")
ax_e.legend()
fig.tight_layout()
fig.savefig(FIGURES / "07_mnist_iwae.png", dpi=90)
fig

# %% [markdown]
# ## In practice
#
# `minivae evaluate runs/NAME/model.npz` prints the test ELBO and `log_likelihood` with
# $k = 5000$ on the run's test set, with the Monte Carlo standard error; `docs/evaluation.md`
# gives its output for the default model (ELBO $-107.4$, log-likelihood $-100.9$ nats) and how
# memory stays bounded for any $k$.
#
# ## Summary
#
# * $\hat{\mathcal{L}}_k = \log \frac1k\sum_i w_i$, $w = p(x, z)/q(z \mid x)$, $z_i \sim q$:
#   an unbiased estimate of $p(x)$ inside a $\log$, hence biased low.
# * Its expectation $\mathcal{L}_k$ is the IWAE bound: $\mathcal{L}_1$ is the ELBO, and
#   $\mathcal{L}_k$ rises to $\log p(x)$ with a gap $\approx \operatorname{Var}(w)/(2k\,\mathbb{E}[w]^2)$
#   (checked on the exact model).
# * The ELBO's favourite $q$ is not necessarily the best proposal: what matters for importance
#   sampling is that $q$ is not much narrower than the posterior.
# * On MNIST the bound with $k$ in the thousands lies several nats above the ELBO.
#
# Next, **08**: stepping through one gradient in a debugger.
#
# References: Y. Burda, R. Grosse, R. Salakhutdinov (2016), Importance Weighted Autoencoders,
# ICLR; D. P. Kingma, M. Welling (2013), Auto-Encoding Variational Bayes; M. E. Tipping,
# C. M. Bishop (1999), Probabilistic Principal Component Analysis.
