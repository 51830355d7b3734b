# %% [markdown]
# # 08 · Stepping through one gradient in a debugger
#
# minivae is written so that a student can stop anywhere in the computation of a gradient and
# look at every number. This tutorial shows where to stop and what you will find there. It
# follows one gradient of the VAE of tutorial 05,
#
# $$
# \begin{aligned}
# \mathcal{J}(\theta, \phi) &= -\frac{1}{B}\sum_{b=1}^{B} \tilde{\mathcal{L}}^B(\theta, \phi; x_b), \\
# \tilde{\mathcal{L}}^B &= \frac1L \sum_{l=1}^{L} \log p_\theta(x \mid z^{(l)}) - \mathrm{KL}(q_\phi(z \mid x) \,\|\, p(z)),
# \qquad z^{(l)} = \mu + \sigma \odot \epsilon^{(l)},
# \end{aligned}
# $$
#
# (Kingma & Welling 2013, Eq. 7 and 10) from the loss back to the first encoder weight:
#
# 1. the forward pass, one named intermediate at a time;
# 2. where to put a breakpoint in `minivae/vae.py`, and the pdb commands to use there;
# 3. a real pdb session, run from a script so that you can read its transcript here;
# 4. the backward pass by hand, with a finite-difference check of each *intermediate*
#    gradient, which is how you find *where* a gradient goes wrong;
# 5. checking one parameter entry;
# 6. a planted bug, found by those checks.
#
# Everything runs non-interactively. To get a live `(Pdb)` prompt at the interesting moment,
# run `MINIVAE_DEBUG=1 python tutorials/08_debugging_a_gradient.py` (section 7).
# `docs/debugging.md` has the same material as a reference, plus VS Code.

# %%
import inspect
import io
import os
import pdb
import re

import numpy as np

import minivae
from minivae import distributions as dist
from minivae import gradcheck, nn

FAST = os.environ.get("MINIVAE_FAST", "") not in ("", "0")   # nothing here is slow; kept for uniformity
np.set_printoptions(precision=4, suppress=True)
rng = np.random.default_rng(0)

# %% [markdown]
# ## 0. A model small enough to print
#
# $P = 6$ "pixels", $D = 2$ latent dimensions, one hidden layer of 3 tanh units, $B = 2$
# examples, $L = 2$ samples each, float64. Every array below fits on the screen; the MNIST
# model of tutorial 06 has the same arrays with bigger shapes ($P = 784$, $D = 20$, 400 hidden
# units, $B = 100$).

# %%
model = minivae.VAE(6, 2, hidden=(3,), activation="tanh", dtype=np.float64, seed=0)
x = (rng.uniform(size=(2, 6)) < 0.5).astype(np.float64)     # B = 2 binary "images"
eps = rng.standard_normal((2, 2, 2))                          # (L, B, D), fixed
B, L, D = eps.shape[1], eps.shape[0], model.z_dim
print("x =\n", x)

# %% [markdown]
# ## 1. The forward pass, intermediate by intermediate
#
# `VAE.forward(x, eps)` returns the per-example estimates and a dict `cache` with every named
# intermediate (`model.loss_and_grads(x, eps=eps, return_cache=True)` returns it too):
#
# | name | shape | math |
# | --- | --- | --- |
# | `x` | $(B, P)$ | the data |
# | `h` | $(B, 2D)$ | encoder output $\mathrm{MLP}_\phi(x)$ |
# | `mu`, `logvar` | $(B, D)$ | $\mu$ = first $D$ columns of `h`, $\log\sigma^2$ = last $D$ |
# | `eps` | $(L, B, D)$ | $\epsilon^{(l)} \sim \mathcal{N}(0, I)$ |
# | `z` | $(L, B, D)$ | $z^{(l)} = \mu + e^{\log\sigma^2/2} \odot \epsilon^{(l)}$ |
# | `out` | $(L, B, P)$ | decoder output: Bernoulli logits of $p_\theta(x \mid z^{(l)})$ |
# | `log_px_z` | $(L, B)$ | $\log p_\theta(x \mid z^{(l)}) = \sum_i [x_i\, \mathrm{out}_i - \mathrm{softplus}(\mathrm{out}_i)]$ |
# | `kl_qp` | $(B,)$ | $\mathrm{KL}(q_\phi(z \mid x) \,\Vert\, p(z))$, closed form |
# | `elbo` | $(B,)$ | $\frac1L \sum_l$ `log_px_z` $-$ `kl_qp` |
#
# The `*_cache` entries are what each backward function needs (sub-caches of the MLPs and the
# distributions). The cell checks the table's formulas against the cached values.

# %%
elbo, cache = model.forward(x, eps, estimator="B")
for name in ("x", "h", "mu", "logvar", "eps", "z", "out", "log_px_z", "kl_qp", "elbo"):
    print(f"--- {name} {cache[name].shape}\n{cache[name]}")
mu, logvar = cache["mu"], cache["logvar"]
assert np.array_equal(mu, cache["h"][:, :D]) and np.array_equal(logvar, cache["h"][:, D:])
assert np.allclose(cache["z"], mu + np.exp(0.5 * logvar) * eps)
assert np.allclose(cache["elbo"], cache["log_px_z"].mean(axis=0) - cache["kl_qp"])

# %% [markdown]
# ## 2. Where to put the breakpoint
#
# `VAE.backward(cache)` is the place: it walks `forward` in reverse with the same names, one
# stage per block, in two parts: `backward_to_encoder_output` (stages 2-5 below, up to the
# gradient at the encoder's output) and then the encoder. Here is their source with the line
# numbers of *your* copy of `minivae/vae.py` (the package is installed in editable mode, so
# this is the file that runs).

# %%
vae_file = inspect.getsourcefile(minivae.VAE)
print(vae_file)       # the absolute path pdb's `b PATH:LINE` needs
for method in (minivae.VAE.backward, minivae.VAE.backward_to_encoder_output):
    source, first_line = inspect.getsourcelines(method)
    for offset, text in enumerate(source):
        print(f"{first_line + offset:4d}  {text}", end="")
    print()

# %% [markdown]
# Reading it from the top, with the quantity each line computes ($\bar{y}$ means
# $\partial \mathcal{J} / \partial y$; derivations in `docs/derivations.md`):
#
# 1. `delbo` $= \bar{\tilde{\mathcal{L}}}_b = -1/B$: the loss is minus the batch mean;
# 2. the estimator: $\overline{\log p_\theta(x \mid z^{(l)})} = \bar{\tilde{\mathcal{L}}}/L$
#    (`dlog_px_z`, $(L, B)$); $\overline{\mathrm{KL}} = -\bar{\tilde{\mathcal{L}}}$ into
#    `kl_standard_normal_backward`, which gives the KL's direct share of `dmu`, `dlogvar`;
#    and `dz = 0`, because for estimator B, $z$ reaches the loss only through the decoder;
# 3. the likelihood backward: `dout` $= \overline{\log p}\,(x - \mathrm{sigmoid}(\mathrm{out}))$,
#    $(L, B, P)$;
# 4. the decoder backward on the folded $(L \cdot B, \cdot)$ stack: the decoder's parameter
#    gradients, and `dz_flat`, folded back to $(L, B, D)$ and added to `dz`;
# 5. **the reparameterisation backward**, `gaussian_sample_backward(dz, ...)`:
#    $\bar\mu \mathrel{+}= \sum_l \bar z^{(l)}$ and
#    $\overline{\log\sigma^2} \mathrel{+}= \tfrac12 \sigma \odot \sum_l \bar z^{(l)} \odot \epsilon^{(l)}$;
# 6. back in `backward`: the encoder backward with $\bar h = [\bar\mu, \overline{\log\sigma^2}]$.
#
# (In `forward`, a breakpoint on the line `cache = {"x": x, "h": h, ...` shows every
# intermediate of section 1 as a local variable, just computed.)
#
# **The most instructive breakpoint is stage 5**, where the decoder's gradient `dz` turns into
# gradients of the encoder's outputs: this is the reparameterisation trick, in one line of
# code. Three ways to stop there:
#
# * **Edit the file**: put `breakpoint()` on the line before it, run your script, remove it
#   afterwards. (`PYTHONBREAKPOINT=0` disables every `breakpoint()` without editing.)
# * **Without editing**: `python -m pdb your_script.py`, then at the first prompt
#   `b PATH:LINE` and `c`, with the *absolute* path printed above as `vae_file` (a relative
#   `minivae/vae.py` is looked up along `sys.path`, where an installed package is not: pdb
#   answers "not found from sys.path") and the line number printed beside the source.
#   `docs/debugging.md` shows the whole session, and the test suite runs it.
# * **From code**: `pdb.Pdb().runcall(model.backward, cache)` stops at the first line of
#   `backward`; then `b LINE` and `c`.
#
# Once stopped, the pdb commands you need:
#
# | command | does |
# | --- | --- |
# | `p dz.shape`, `p dz` | print an expression (`pp` pretty-prints dicts such as `cache.keys()`) |
# | `n` | run the current line, stop at the next one in this function |
# | `s` | step *into* the call on the current line (e.g. into `gaussian_sample_backward`) |
# | `r` | run to the end of the current function and show its return value |
# | `c` | continue to the next breakpoint |
# | `l`, `ll` | list the source around the current line / the whole function |
# | `w`, `u`, `d` | where am I (the call stack); go up / down a frame |
# | `b FILE:LINE`, `b`, `cl N` | set a breakpoint; list breakpoints; clear breakpoint N |
# | `display dz.sum()` | print this expression every time execution stops in this frame |
# | `interact` | a full Python prompt with the current variables (Ctrl-D to return) |
# | `q` | quit |

# %% [markdown]
# ## 3. A real pdb session
#
# The same session you would type, fed to pdb from a string so that this tutorial runs
# unattended: break at the reparameterisation backward, look at `dz` and `dmu`, step over the
# line with `next`, look at its results, list the source around the current line, and
# continue to the end.

# %%
source, first_line = inspect.getsourcelines(minivae.VAE.backward_to_encoder_output)
sample_line = first_line + next(i for i, text in enumerate(source)
                                if "gaussian_sample_backward(" in text)
commands = "\n".join([
    f"break {vae_file}:{sample_line}",
    "continue",
    "p dz.shape",
    "p dz",
    "p type(dmu), dmu.shape",
    "next",
    "p dmu_z",
    "p dlogvar_z",
    "l",
    "continue",
]) + "\n"
transcript = io.StringIO()
debugger = pdb.Pdb(stdin=io.StringIO(commands), stdout=transcript, nosigint=True)
debugger.prompt = "(Pdb) "
grads_under_pdb = debugger.runcall(model.backward, cache)
# pdb does not echo what it reads from a string: put each command back after its prompt
first, *answers = transcript.getvalue().split("(Pdb) ")
session = first + "".join(f"(Pdb) {typed}\n{answer}"
                          for typed, answer in zip(commands.splitlines(), answers))
session = re.sub(r"\x1b\[[0-9;]*m", "", session)   # in a Jupyter kernel, pdb is IPython's, in colour
print(session)
assert f"({L}, {B}, {D})" in session, "at the breakpoint, dz has shape (L, B, D)"
assert "dmu_z, dlogvar_z = dist.gaussian_sample_backward" in session
# the two stops: the first line of backward (runcall), then the breakpoint
stops = re.findall(r"^> .*\((\d+)\)(\w+)\(\)$", session, flags=re.M)
body, backward_first = inspect.getsourcelines(minivae.VAE.backward)
first_body_line = backward_first + next(i for i, text in enumerate(body) if "B = cache" in text)
assert [(int(n), f) for n, f in stops[:2]] == [(first_body_line, "backward"),
                                               (sample_line, "backward_to_encoder_output")], stops

# %% [markdown]
# What to read in the transcript: `runcall` first stops at the first line of `backward` (the
# line after the docstring), where we set the breakpoint and `continue`. At the breakpoint `dz` is the $(L, B, D) = (2, 2, 2)$
# gradient of the loss with respect to each sample $z^{(l)}$ (it came back through the
# decoder), while `dmu` is already a $(B, D)$ array: the KL's direct contribution. After
# `next`, `dmu_z` is `dz` summed over the $L$ samples (one $\mu$ serves every sample), and
# `dlogvar_z` is the same sum weighted by $\epsilon$ and scaled by $\sigma/2$. The debugger ran
# the real `backward`, so its result equals an undisturbed call:

# %%
grads = model.backward(cache)
assert all(np.array_equal(grads[k], grads_under_pdb[k]) for k in grads)

# %% [markdown]
# ## 4. Every intermediate gradient, by name
#
# `backward_to_encoder_output` takes a dict `record` and fills it with the gradient of each
# named intermediate, so that no step of the chain has to be copied out here to be looked at:
# `dlog_px_z` $(L, B)$, `dz` $(L, B, D)$, `dmu` and `dlogvar` $(B, D)$ and `dh` $(B, 2D)$.
# With `delbo` $= -1/B$ (the loss) its `dh`, sent through the encoder's backward, gives
# exactly the gradients of `backward`.

# %%
delbo = np.full(B, -1.0 / B)                                   # dJ/d elbo_b, (B,)
record = {}
dh, decoder_grads = model.backward_to_encoder_output(cache, delbo, record=record)
_, encoder_grads = nn.mlp_backward(dh, cache["encoder_cache"], "encoder", model.activation)
by_hand = {**decoder_grads, **encoder_grads}
for name, value in record.items():
    print(f"{name:>9} {value.shape}")
for k in grads:
    assert np.array_equal(by_hand[k], grads[k]), k
dz, dmu, dlogvar = record["dz"], record["dmu"], record["dlogvar"]

# %% [markdown]
# **Checking an intermediate gradient.** If `minivae gradcheck` ever reported a wrong encoder
# gradient, the question would be *where* in this chain it goes wrong. The trick: write the
# loss as a function of an intermediate, with everything before it held fixed, and compare
# finite differences with the gradient computed for it. With $\epsilon$ fixed,
#
# $$
# \mathcal{J}(\mu, \log\sigma^2) = -\frac{1}{B}\sum_b \Big[\frac1L \sum_l
# \log p_\theta\big(x_b \mid \mu_b + \sigma_b \odot \epsilon^{(l)}_b\big)
# - \mathrm{KL}(\mu_b, \log\sigma_b^2)\Big]
# $$
#
# is a function of $(\mu, \log\sigma^2)$ alone, and its gradient must be `dmu`, `dlogvar`.
# Likewise $\mathcal{J}$ as a function of $z$ (the KL held at its value) must have gradient
# `dz`. If `dz` checks out but `dmu` does not, the bug is in the reparameterisation backward
# or in the KL backward; if both check out but the encoder's weights do not, it is in the
# encoder's backward. It is bisection, with finite differences as the oracle.

# %%
def loss_from_z(z):
    """J with z given (L, B, D); the KL term is a constant here."""
    out, _ = nn.mlp_forward(model.params, "decoder", model.n_layers, z.reshape(L * B, D), model.activation)
    log_px_z, _ = dist.bernoulli_log_likelihood(x, out.reshape(L, B, -1))
    return -np.mean(log_px_z.mean(axis=0) - cache["kl_qp"])


def loss_from_encoder_outputs(mu, logvar):
    """J with mu and logvar given (B, D): sample, decode, likelihood, KL."""
    z, _ = dist.gaussian_sample(mu, logvar, eps)
    out, _ = nn.mlp_forward(model.params, "decoder", model.n_layers, z.reshape(L * B, D), model.activation)
    log_px_z, _ = dist.bernoulli_log_likelihood(x, out.reshape(L, B, -1))
    kl, _ = dist.kl_standard_normal(mu, logvar)
    return -np.mean(log_px_z.mean(axis=0) - kl)


inter = {"z": cache["z"].copy(), "mu": mu.copy(), "logvar": logvar.copy()}
numeric_z = gradcheck.numerical_gradient(lambda p: loss_from_z(p["z"]), {"z": inter["z"]})
numeric_enc = gradcheck.numerical_gradient(lambda p: loss_from_encoder_outputs(p["mu"], p["logvar"]),
                                           {"mu": inter["mu"], "logvar": inter["logvar"]})
assert np.isclose(loss_from_encoder_outputs(mu, logvar), -elbo.mean())    # the same J
for name, analytic, numeric in (("dz", dz, numeric_z["z"]), ("dmu", dmu, numeric_enc["mu"]),
                                ("dlogvar", dlogvar, numeric_enc["logvar"])):
    err = gradcheck.rel_error(analytic, numeric)
    print(f"{name:>8}: relative error against finite differences {err:.1e}")
    assert err < 1e-6

# %% [markdown]
# ## 5. One parameter, one number
#
# The smallest possible check: one entry of one weight matrix, by hand. Perturb it by $\pm h$,
# recompute the loss with the *same* $\epsilon$ (otherwise the difference would be Monte Carlo
# noise, not a derivative), and restore it.

# %%
name, index, h = "encoder.0.W", (2, 1), 1e-5
W = model.params[name]                   # the model's own array: changing it changes the model
old = W[index]
W[index] = old + h
loss_plus = model.loss_and_grads(x, eps=eps)[0]
W[index] = old - h
loss_minus = model.loss_and_grads(x, eps=eps)[0]
W[index] = old                           # restore!
numerical = (loss_plus - loss_minus) / (2 * h)
print(f"d J / d {name}{list(index)}: analytic {grads[name][index]:+.10f}, numerical {numerical:+.10f}")
assert abs(grads[name][index] - numerical) < 1e-8 * max(1.0, abs(numerical))

# %% [markdown]
# The same for a whole array with `gradcheck.numerical_gradient`: give it a dict holding the
# model's own array, and a function that reads the model. `gradcheck.compare` also lists the
# worst entries, which is where to look first when something is wrong.

# %%
def loss(params):
    return model.loss_and_grads(x, eps=eps)[0]


report = gradcheck.compare(grads, gradcheck.numerical_gradient(loss, {name: model.params[name]}))
print(f"{name}: relative error {report[name]['rel_error']:.1e}")
assert report[name]["rel_error"] < 1e-6

# %% [markdown]
# ## 6. A planted bug
#
# Suppose the reparameterisation backward forgot the factor $\tfrac12$ of
# $\partial\sigma/\partial\log\sigma^2 = \sigma/2$. We wrap the real function so that its
# `dlogvar` comes out twice too large, and swap the wrapper into `minivae.distributions` for
# the duration of one check (and always put the original back). `gradcheck.check_vae`
# compares every parameter of the model:

# %%
original = dist.gaussian_sample_backward


def gaussian_sample_backward_buggy(dz, cache):
    dmu, dlogvar = original(dz, cache)
    return dmu, 2 * dlogvar              # BUG: as if the 1/2 of d sigma / d logvar were lost


dist.gaussian_sample_backward = gaussian_sample_backward_buggy
try:
    report = gradcheck.check_vae(model, x, n_samples=L, estimator="B")
    record_bug = {}
    model.backward_to_encoder_output(cache, delbo, record=record_bug)
finally:
    dist.gaussian_sample_backward = original
for k, r in report.items():
    print(f"{k:>12}: relative error {r['rel_error']:.1e}{'   <-- wrong' if r['rel_error'] > 1e-6 else ''}")
assert all(report[k]["rel_error"] < 1e-6 for k in report if k.startswith("decoder"))
assert all(report[k]["rel_error"] > 1e-3 for k in report if k.startswith("encoder"))

# %% [markdown]
# What the table says: every **decoder** gradient is right and every **encoder** gradient is
# wrong, so the bug is between the two, on the way from `dz` to `h`. Section 4's intermediate
# check narrows it to one array: with the bug, `dz` and `dmu` still agree with finite
# differences, and `dlogvar` does not. Only the $\log\sigma^2$ path of the reparameterisation
# backward is left, three lines of code. `docs/debugging.md` lists more such bugs and their
# signatures.

# %%
for name in ("dz", "dmu", "dlogvar"):
    numeric = {"dz": numeric_z["z"], "dmu": numeric_enc["mu"], "dlogvar": numeric_enc["logvar"]}[name]
    print(f"with the bug, {name:>8}: relative error {gradcheck.rel_error(record_bug[name], numeric):.1e}")
assert gradcheck.rel_error(record_bug["dz"], numeric_z["z"]) < 1e-6
assert gradcheck.rel_error(record_bug["dmu"], numeric_enc["mu"]) < 1e-6
assert gradcheck.rel_error(record_bug["dlogvar"], numeric_enc["logvar"]) > 1e-3

# %% [markdown]
# ## 7. Your turn, interactively
#
# With `MINIVAE_DEBUG=1` the next cell gives you a real `(Pdb)` prompt. Like the scripted
# session of section 3, `runcall` first stops at the first line of `VAE.backward`; type `c` to
# run to the breakpoint at the reparameterisation line. There, try `p dz.shape`, `n`,
# `p dmu_z`, `s` (step into `gaussian_sample_backward` next time it is called), `u` (back up
# to this script), `c` to go on. Run from the repository root (the paths are yours; the test
# suite runs this session from another folder and checks that it prints what is shown):
#
# <!-- debugging-session -->
# ```text
# $ MINIVAE_DEBUG=1 python tutorials/08_debugging_a_gradient.py
# ...
# breakpoint at /home/you/minivae/minivae/vae.py:253; type c to run to it
# > /home/you/minivae/minivae/vae.py(195)backward()
# -> B = cache["x"].shape[0]
# (Pdb) c
# > /home/you/minivae/minivae/vae.py(253)backward_to_encoder_output()
# -> dmu_z, dlogvar_z = dist.gaussian_sample_backward(dz, cache["sample_cache"])
# (Pdb) p dz.shape
# (2, 2, 2)
# (Pdb) c
# ...
# ```
# In VS Code, set a breakpoint by clicking left of that line in `minivae/vae.py` and run
# this file with "Python Debugger: Debug Python File" instead (see `docs/debugging.md`).

# %%
if os.environ.get("MINIVAE_DEBUG"):
    live = pdb.Pdb()
    live.set_break(vae_file, sample_line)
    print(f"breakpoint at {vae_file}:{sample_line}; type c to run to it")
    live.runcall(model.backward, cache)

# %% [markdown]
# ## 6. When your gradient is wrong: what the mismatch looks like
#
# A relative error says *that* a gradient is wrong; `gradcheck.diagnose` says *how*: a sign
# flip, a constant factor (and which: 2, 1/2, the number of samples $L$...), a transpose, a
# sum over an axis missing or extra, zeros where a path was left out, or a difference confined
# to some rows.  Here is the reparameterisation's backward with the $1/2$ of
# $d\sigma/d\log\sigma^2 = \sigma/2$ dropped, and with $dz$ averaged over the samples:

# %%
rng = np.random.default_rng(0)
mu, logvar, eps_L = rng.standard_normal((4, 3)), rng.standard_normal((4, 3)), rng.standard_normal((3, 4, 3))
dz = rng.standard_normal((3, 4, 3))
_, sample_cache = dist.gaussian_sample(mu, logvar, eps_L)
true_dmu, true_dlogvar = dist.gaussian_sample_backward(dz, sample_cache)
sigma, _ = sample_cache                                   # sigma as the forward stored it
wrong_dlogvar = (dz * eps_L).sum(axis=0) * sigma           # the 1/2 dropped
wrong_dmu = dz.mean(axis=0)                                # a mean where the samples' paths add up
print(gradcheck.diagnose(wrong_dlogvar, true_dlogvar, "dlogvar")["message"])
print(gradcheck.diagnose(wrong_dmu, true_dmu, "dmu", sizes={"L, the number of samples": 3})["message"])
print(gradcheck.diagnose(dz, true_dmu, "dmu")["message"])  # the sum over the samples forgotten

# %% [markdown]
# ## Summary
#
# * `VAE.forward` names every intermediate and returns them in `cache`; `VAE.backward` walks
#   them in reverse, one stage per block; `gaussian_sample_backward` is the line where the
#   reparameterisation trick happens.
# * Stop there with `breakpoint()`, `python -m pdb` + `b /absolute/path/to/minivae/vae.py:LINE`
#   (the path: `python -c "import minivae.vae; print(minivae.vae.__file__)"`), or
#   `pdb.Pdb().runcall(model.backward, cache)`; look with `p`, move with `n`, `s`, `c`.
# * Finite differences check a single entry, a whole array, or an *intermediate* gradient
#   (write the loss as a function of it, with $\epsilon$ fixed); the first wrong link in the
#   chain is where the bug is.
