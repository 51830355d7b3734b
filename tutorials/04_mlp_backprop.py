# %% [markdown]
# # 04 · An MLP and backprop by hand, checked with finite differences
#
# The VAE's encoder $x \mapsto (\mu, \log\sigma^2)$ and decoder $z \mapsto$ logits are
# multi-layer perceptrons (Kingma & Welling 2013, Appendix C). Training them needs the gradient
# of the ELBO with respect to every weight. minivae has no autograd: every gradient is written
# by hand, and every one is checked against **central finite differences**. This tutorial builds
# that machinery from the bottom, with `minivae.nn` and `minivae.gradcheck`:
#
# 1. the forward/backward/cache contract, on the affine layer $y = xW + b$;
# 2. the activations;
# 3. finite differences: what they measure, how to choose the step $h$, why float64;
# 4. what a *wrong* backward looks like to the check;
# 5. a whole MLP, its backward pass, and a small regression it learns with those gradients.
#
# Run `python tutorials/04_mlp_backprop.py`; `MINIVAE_FAST=1` trains for fewer steps. Figures go
# to `tutorials/figures/` or to `MINIVAE_FIGURES`.

# %%
# %matplotlib inline
import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from minivae import gradcheck, nn, optim

FAST = os.environ.get("MINIVAE_FAST", "") not in ("", "0")
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
FIGURES = Path(os.environ.get("MINIVAE_FIGURES", HERE / "figures"))
FIGURES.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)
BOUND = 1e-6          # the package's bound on the relative error of a float64 gradient

# %% [markdown]
# ## 1. The contract: `forward -> (out, cache)`, `backward(dout, cache) -> grads`
#
# Backpropagation computes the gradient of one scalar objective $\mathcal{J}$ (later: minus the
# ELBO) with respect to everything upstream of it. Each operation $y = g(x)$ only has to know
# its own local derivative: given $\bar y = \partial \mathcal{J}/\partial y$ from the operation
# after it, it returns $\bar x = \partial \mathcal{J}/\partial x$ by the chain rule,
#
# $$
# \bar x_i = \sum_j \bar y_j \, \frac{\partial y_j}{\partial x_i} .
# $$
#
# For the affine layer $y = xW + b$ with a batch of $B$ rows, $y_{bj} = \sum_i x_{bi} W_{ij} + b_j$,
# so $\partial y_{bj} / \partial x_{bi} = W_{ij}$, $\partial y_{bj}/\partial W_{ij} = x_{bi}$ and
# $\partial y_{bj}/\partial b_j = 1$:
#
# $$
# \bar x = \bar y\, W^\top, \qquad \bar W = x^\top \bar y, \qquad \bar b = \textstyle\sum_b \bar y_{b} .
# $$
#
# $W$ and $b$ are shared by all $B$ rows, so their gradients **sum over the batch** (the matrix
# product $x^\top \bar y$ does that sum). The forward keeps in `cache` exactly what the backward
# needs: $x$ for $\bar W$, $W$ for $\bar x$. Here it is, by hand and from `minivae.nn`:

# %%
B, n_in, n_out = 5, 4, 3
x = rng.standard_normal((B, n_in))
W = rng.standard_normal((n_in, n_out))
b = rng.standard_normal(n_out)

y_by_hand = x @ W + b
y, cache = nn.affine_forward(x, W, b)
assert np.array_equal(y, y_by_hand)

dy = rng.standard_normal((B, n_out))           # some upstream gradient dJ/dy
dx, dW, db = nn.affine_backward(dy, cache)
print("shapes: x", x.shape, "W", W.shape, "b", b.shape, "-> y", y.shape)
print("        dx", dx.shape, "dW", dW.shape, "db", db.shape, "(each gradient has its input's shape)")

# %% [markdown]
# **Checking it.** To check a backward we need a scalar. `gradcheck.check_operation` uses a
# random projection: with a fixed random $\bar y$ it sets $\mathcal{J} = \sum_{bj} y_{bj}\,
# \bar y_{bj}$, whose exact gradient is what `backward(dy, cache)` returns. It then perturbs each
# input entry by $\pm h$ and compares (next section). The number reported per array is the
# relative error
#
# $$
# \mathrm{rel}(a, n) = \frac{\max_i |a_i - n_i|}{\max(\max_i |a_i|, \max_i |n_i|)} ,
# $$
#
# with $a$ the analytic gradient and $n$ the numerical one. A correct float64 gradient gives
# about $10^{-9}$ or less; a wrong one gives something of order one.

# %%
report = gradcheck.check_operation(nn.affine_forward, nn.affine_backward,
                                   {"x": x, "W": W, "b": b}, ["x", "W", "b"], rng)
for name, r in report.items():
    print(f"affine layer, d/d{name}: relative error {r['rel_error']:.1e}")
    assert r["rel_error"] < BOUND

# %% [markdown]
# ## 2. Activations
#
# An activation $h = f(a)$ acts elementwise, so its Jacobian is diagonal and the chain rule is a
# product: $\bar a = \bar h \odot f'(a)$. Where possible the derivative is written in terms of
# the *output* $h$, which the cache keeps anyway: $\tanh'(a) = 1 - h^2$,
# $\mathrm{sigmoid}'(a) = h(1 - h)$, $\mathrm{relu}'(a) = [h > 0]$, and
# $\mathrm{softplus}'(a) = \mathrm{sigmoid}(a)$. (`docs/derivations.md`, "Activations".)
#
# ReLU has a kink at $a = 0$ where no derivative exists; a central difference that straddles it
# ($|a| < h$) sees the slope $(\mathrm{relu}(a + h) - \mathrm{relu}(a - h))/2h = (a + h)/2h$,
# anywhere between 0 and 1 depending on where $a$ lies. The check therefore keeps test inputs a
# little away from 0.

# %%
a = rng.standard_normal((B, 6))
a[np.abs(a) < 0.1] += 0.2           # off relu's kink
for name, (forward, backward) in nn.ACTIVATIONS.items():
    r = gradcheck.check_operation(forward, backward, {"a": a}, ["a"], rng)["a"]
    print(f"{name:>9}: relative error {r['rel_error']:.1e}")
    assert r["rel_error"] < BOUND

# %% [markdown]
# ## 3. Finite differences, and how to choose $h$
#
# `gradcheck.numerical_gradient` perturbs one entry $p_i$ at a time:
#
# $$
# \frac{\partial \mathcal{J}}{\partial p_i} \approx
# \frac{\mathcal{J}(p + h e_i) - \mathcal{J}(p - h e_i)}{2h} .
# $$
#
# Two errors compete. By Taylor's theorem the even terms cancel and the **truncation** error is
# $\tfrac{h^2}{6} \mathcal{J}'''$, i.e. $O(h^2)$: smaller $h$ is better. But $\mathcal{J}$ is
# computed in floating point with a relative **rounding** error of about $\varepsilon = 2.2
# \times 10^{-16}$ (float64), and dividing by $2h$ amplifies it to about $\varepsilon
# |\mathcal{J}| / h$: smaller $h$ is worse. The total is smallest near
# $h \approx \varepsilon^{1/3} \approx 10^{-5}$, the package's default step.
#
# Below: a small tanh MLP, $\mathcal{J}$ = mean squared error, and the worst relative error
# over all its parameters as $h$ goes from $10^{-1}$ to $10^{-12}$.
#
# **Figure `04_step_size.png`.** What to see: a V. On the right (large $h$) the error falls
# like $h^2$, two decades per decade; on the left (small $h$) it rises like $1/h$ as rounding
# takes over; the bottom, about $10^{-10}$, is near $h = 10^{-5}$. The dashed line is the
# $10^{-6}$ bound every gradient in the package meets.

# %%
sizes = [3, 8, 8, 1]
params = nn.init_mlp(sizes, rng, "mlp", activation="tanh")
x_small = rng.standard_normal((16, 3))
y_small = np.sin(2 * x_small[:, :1])


def mse(p):
    """J = 1/(2B) sum_b (out_b - y_b)^2 for the MLP with parameters p."""
    out, _ = nn.mlp_forward(p, "mlp", len(sizes) - 1, x_small, "tanh")
    return 0.5 * np.mean((out - y_small) ** 2)


def mse_and_grads(p):
    out, cache = nn.mlp_forward(p, "mlp", len(sizes) - 1, x_small, "tanh")
    loss = 0.5 * np.mean((out - y_small) ** 2)
    dout = (out - y_small) / len(out)               # dJ/dout
    _, grads = nn.mlp_backward(dout, cache, "mlp", "tanh")
    return loss, grads


_, grads = mse_and_grads(params)
steps = np.logspace(-1, -12, 23)
errors = []
for h in steps:
    numeric = gradcheck.numerical_gradient(mse, params, h)
    errors.append(max(gradcheck.rel_error(grads[k], numeric[k]) for k in params))
errors = np.array(errors)
best = steps[np.argmin(errors)]
print(f"smallest error {errors.min():.1e} at h = {best:.0e}")
assert 1e-7 <= best <= 1e-4 and errors.min() < 1e-8
assert errors[0] > 1e-3 and errors[-1] > 1e-5, "both ends of the V are far above its bottom"

fig = Figure(figsize=(5.5, 3.8))
ax = fig.subplots()
ax.loglog(steps, errors, "o-", ms=3, label="worst relative error")
# guide lines, drawn 5x above the data so that both stay visible
ax.loglog(steps[:7], 5 * errors[0] * (steps[:7] / steps[0]) ** 2, ":", c="gray", label="slope 2 (truncation)")
ax.loglog(steps[-8:], 5 * errors[-1] * steps[-1] / steps[-8:], "--", c="gray", lw=0.8,
          label="slope -1 (rounding)")
ax.axhline(BOUND, color="k", ls="--", lw=1, label="bound $10^{-6}$")
ax.axvline(gradcheck.DEFAULT_STEP, color="C3", lw=1, label="default $h = 10^{-5}$")
ax.set(xlabel="finite-difference step $h$", ylabel="relative error", title="central differences in float64")
ax.legend(fontsize=8)
ax.grid(alpha=0.3, which="both")
fig.tight_layout()
fig.savefig(FIGURES / "04_step_size.png", dpi=90)
fig

# %% [markdown]
# **Why float64.** In float32, $\varepsilon \approx 1.2 \times 10^{-7}$: with $h = 10^{-5}$
# the rounding error alone is of order $10^{-2}$, so a *correct* gradient fails the check. Checks
# always run in float64; training may use float32.

# %%
params32 = {k: v.astype(np.float32) for k, v in params.items()}
x32, y32 = x_small.astype(np.float32), y_small.astype(np.float32)


def mse32(p):
    out, _ = nn.mlp_forward(p, "mlp", len(sizes) - 1, x32, "tanh")
    return float(0.5 * np.mean((out - y32) ** 2))


numeric32 = gradcheck.numerical_gradient(mse32, params32)
error32 = max(gradcheck.rel_error(grads[k], numeric32[k]) for k in params)
print(f"the same correct gradient, finite differences in float32: relative error {error32:.1e}")
assert error32 > 1e-4

# %% [markdown]
# ## 4. What a wrong backward looks like
#
# The point of the check is to catch mistakes. Two typical ones:
#
# * **Averaging instead of summing over the batch** in $\bar b$: `dy.mean(axis=0)` instead of
#   `dy.sum(axis=0)`. Every entry is off by the factor $B$: relative error $1 - 1/B$.
# * **Using the pre-activation in a derivative**: $\tanh'$ as $1 - a^2$ instead of $1 - h^2$,
#   with $h = \tanh a$. Close to $a = 0$ the two agree, so tiny test inputs would hide it;
#   random inputs of size about 1 do not.
#
# Both are one-line slips that still produce arrays of the right shape, so nothing crashes;
# only the check notices, and it names the array that is wrong.

# %%
def affine_backward_mean_bias(dy, cache):
    dx, dW, db = nn.affine_backward(dy, cache)
    return dx, dW, db / len(dy)                       # BUG: the mean over the batch, should be the sum


def tanh_forward_keep_a(a):
    return np.tanh(a), a                              # caches a instead of h


def tanh_backward_with_a(dh, cache):
    return nn.tanh_backward(dh, cache)                # BUG: the cache holds a, not h = tanh(a)


bad_affine = gradcheck.check_operation(nn.affine_forward, affine_backward_mean_bias,
                                       {"x": x, "W": W, "b": b}, ["x", "W", "b"], rng)
bad_tanh = gradcheck.check_operation(tanh_forward_keep_a, tanh_backward_with_a, {"a": a}, ["a"], rng)
for label, rep in (("affine, mean over batch", bad_affine), ("tanh with 1 - a^2", bad_tanh)):
    print(label + ": " + ", ".join(f"d/d{k} {r['rel_error']:.1e}" for k, r in rep.items()))
assert bad_affine["x"]["rel_error"] < BOUND and bad_affine["W"]["rel_error"] < BOUND
assert abs(bad_affine["b"]["rel_error"] - (1 - 1 / B)) < 1e-6    # exactly 1 - 1/B
assert bad_tanh["a"]["rel_error"] > 0.1

# %% [markdown]
# `gradcheck.compare` also lists the worst entries (index, analytic, numerical), which is where
# to start looking. More bugs and how each one shows up: `docs/debugging.md`.

# %%
for index, analytic, numerical in bad_affine["b"]["worst"]:
    print(f"  b[{int(index[0])}]: analytic {analytic:+.4f}, numerical {numerical:+.4f} "
          f"(ratio {numerical / analytic:.2f} = B)")

# %% [markdown]
# ## 5. The MLP
#
# `nn.init_mlp(sizes, rng, prefix)` makes the parameters of an MLP with layer widths
# `sizes = [n_0, ..., n_K]` as a plain dict: `params["mlp.0.W"]` of shape $(n_0, n_1)$, and
# so on. The forward pass (`nn.mlp_forward`) is
#
# $$
# h_0 = x, \qquad a_k = h_k W_k + b_k, \qquad h_{k+1} = f(a_k) \;\; (k < K - 1),
# \qquad \text{out} = a_{K-1},
# $$
#
# with no activation after the last layer (the VAE puts a likelihood there). `nn.mlp_backward`
# runs the same layers in reverse: at each layer, the activation's backward
# ($\bar a_k = \bar h_{k+1} \odot f'(a_k)$), then the affine backward
# ($\bar h_k = \bar a_k W_k^\top$, $\bar W_k = h_k^\top \bar a_k$, $\bar b_k = \sum_b \bar a_k$).
#
# With the squared-error objective $\mathcal{J} = \frac{1}{2B} \sum_b (\text{out}_b - y_b)^2$
# the gradient that starts the backward pass is $\overline{\text{out}} = (\text{out} - y)/B$.
# We already compared these gradients with finite differences in section 3 (that was the bottom
# of the V); here is the per-array table at the default step:

# %%
numeric = gradcheck.numerical_gradient(mse, params)
for name in params:
    err = gradcheck.rel_error(grads[name], numeric[name])
    print(f"{name:>8} {str(params[name].shape):>8}: relative error {err:.1e}")
    assert err < BOUND

# %% [markdown]
# **Learning with these gradients.** A 1-32-32-1 tanh MLP fitted to noisy samples of
# $y = \sin 3x$ by Adam (`minivae.optim.Adam`, the optimiser `minivae train` uses), on the
# gradients of the hand-written backward pass, nothing else.
#
# **Figure `04_mlp_fit.png`.** Left: the data (dots), the function they were drawn from
# (dashed) and the MLP's fit (line). Right: the loss per step on a log scale. What to see: the
# fit follows the sine closely, and the loss falls by about two orders of magnitude, settling near the
# noise floor $\frac12 \sigma_{\text{noise}}^2 = 0.005$ (dotted); it cannot go much below
# that without fitting the noise.

# %%
noise = 0.1
x_train = rng.uniform(-2, 2, size=(200, 1))
y_train = np.sin(3 * x_train) + noise * rng.standard_normal(x_train.shape)
fit_sizes = [1, 32, 32, 1]
fit_params = nn.init_mlp(fit_sizes, rng, "mlp", activation="tanh")
adam = optim.Adam(fit_params, lr=0.003)
n_steps = 800 if FAST else 2000
losses = []
for step in range(n_steps):
    out, cache = nn.mlp_forward(fit_params, "mlp", 3, x_train, "tanh")
    losses.append(0.5 * np.mean((out - y_train) ** 2))
    _, fit_grads = nn.mlp_backward((out - y_train) / len(out), cache, "mlp", "tanh")
    adam.step(fit_grads)                     # updates fit_params in place
print(f"loss: {losses[0]:.3f} at the start, {losses[-1]:.4f} after {n_steps} steps "
      f"(noise floor {0.5 * noise**2:.3f})")
assert losses[-1] < 0.05 * losses[0]
assert losses[-1] < 4 * 0.5 * noise**2, "the fit should get close to the noise floor"

x_plot = np.linspace(-2, 2, 300)[:, None]
y_plot, _ = nn.mlp_forward(fit_params, "mlp", 3, x_plot, "tanh")
fig = Figure(figsize=(10, 3.8))
ax_fit, ax_loss = fig.subplots(1, 2)
ax_fit.plot(x_train, y_train, ".", ms=3, alpha=0.6, label="data")
ax_fit.plot(x_plot, np.sin(3 * x_plot), "k--", lw=1, label="$\\sin 3x$")
ax_fit.plot(x_plot, y_plot, lw=2, label="MLP")
ax_fit.set(xlabel="$x$", ylabel="$y$", title="1-32-32-1 tanh MLP, hand-written backprop")
ax_fit.legend(fontsize=8)
ax_loss.semilogy(losses)
ax_loss.axhline(0.5 * noise**2, color="k", ls=":", label="noise floor")
ax_loss.set(xlabel="Adam step", ylabel="$\\mathcal{J}$ (mean squared error / 2)", title="training loss")
ax_loss.legend()
fig.tight_layout()
fig.savefig(FIGURES / "04_mlp_fit.png", dpi=90)
fig

# %% [markdown]
# ## Summary
#
# * Every operation is a `forward -> (out, cache)` and `backward(dout, cache)` pair; the
#   backward multiplies the upstream gradient by the local derivative, and parameters shared
#   across the batch sum their gradients over it.
# * Central differences check a gradient with error $O(h^2)$ plus rounding $O(\varepsilon/h)$;
#   with $h = 10^{-5}$ in float64 a correct gradient agrees to about $10^{-9}$, a wrong one is off
#   by order one, and the report names the array.
# * An MLP is affine layers and activations; its backward is theirs, in reverse.
#
# Next, **05**: the VAE puts two of these MLPs around a Gaussian sample, and the same check
# verifies its gradients through the sampling step.
