"""Kingma & Welling (2013), Fig. 3: the marginal likelihood of AEVB and wake-sleep models.

The experiment::

    N_z = 3, one tanh hidden layer of 100 units, N_train in {1000, 50000} (the first
    N_train images of the training split); the estimated marginal log-likelihood on
    training and test images against the number of training examples seen

Training is :func:`minivae.experiments.reproduce.fig2_run`'s loop, unchanged (Adagrad with the
step size chosen per method as for Fig. 2, minibatches of 100, L = 1, initialisation
N(0, 0.01^2), dynamic binarisation).  At each of its log-spaced evaluation points the
model's log p(x) is estimated on one fixed binarisation of the first ``n_eval`` training
and test images, two ways::

    hmc   the paper's estimator of App. D (minivae.topics.marginal_likelihood): HMC samples of
          the true posterior, a Gaussian fitted to half of them, the other half
          averaging q(z) / p(x, z); biased slightly up, needs no encoder
    is    the importance-sampled estimate with the encoder's q as proposal and k
          samples (minivae.evaluate.log_likelihood); biased down by Jensen's inequality

so IS <= log p(x) <= HMC up to their standard errors when both samplers are good.  The
paper's third method, Monte Carlo EM, is not reproduced.  The settings (full, and quick:
a smoke test on the embedded subset) are minivae.presets.FIG3 and HMC: docs/reproduction.md.
"""
import math

import numpy as np

from minivae import presets
from minivae.evaluate import log_likelihood
from minivae.topics.marginal_likelihood import hmc_log_likelihood
from minivae.data.preprocessing import fixed_binarization
from minivae.utils.progress import Progress
from minivae.experiments.reproduce import METHODS, STEP_SIZES, fig2_run, label_panel, select_step_size

Z_DIM, HIDDEN = presets.FIG3_NETWORK["z_dim"], presets.FIG3_NETWORK["hidden"]
HMC = presets.HMC


def _summary(estimates, se):
    """The mean of per-image estimates and its standard error from theirs (independent images)."""
    return float(np.mean(estimates)), float(math.sqrt(np.sum(np.square(se))) / len(se))


def fig3_run(method, x_train, x_test, *, budget, n_eval=100, hmc=None, is_k=5000, lr=None,
             step_sizes=STEP_SIZES, trial=10**4, seed=0, progress=None, **settings):
    """Train one N_z = 3 model by ``method`` on all of ``x_train``; log p(x) at every point.

    Returns :func:`minivae.experiments.reproduce.fig2_run`'s curve (examples, ELBO "train" and
    "test", "lr") with, per point and for split in ("train", "test"): "hmc_{split}" and
    "is_{split}" (mean log p(x) estimates over the n_eval images, nats), "..._se"
    (their standard errors, from the per-image ones) and "hmc_{split}_accept" (HMC's
    mean acceptance rate).  ``hmc`` updates :data:`HMC` (the sampler's settings);
    ``lr=None`` chooses the step size by :func:`minivae.experiments.reproduce.select_step_size`.
    """
    hmc = {**HMC, **(hmc or {})}
    settings = {"hidden": HIDDEN, "n_eval": n_eval, "seed": seed, **settings}
    choice = None
    if lr is None:
        lr, choice = select_step_size(method, x_train, Z_DIM, step_sizes=step_sizes, trial=trial,
                                      progress=progress, label="fig3", **settings)
    # the images fig2_run reports its ELBO on: the same binarisation of the same rows
    evals = {split: fixed_binarization(np.asarray(x[:n_eval], dtype=np.float64), seed)
             for split, x in (("train", x_train), ("test", x_test))}
    x_eval = np.concatenate(list(evals.values()))       # one HMC run for both splits
    rows = {"train": slice(0, len(evals["train"])), "test": slice(len(evals["train"]), None)}
    report = Progress(progress, "")
    label = f"fig3 {method} N_train={len(x_train)} lr={lr:g}"

    def measure(model, seen):
        hmc_ll, info = hmc_log_likelihood(model, x_eval, rng=np.random.default_rng(seed + 11),
                                          return_info=True, **hmc)
        is_ll, is_se = log_likelihood(model, x_eval, k=is_k, rng=np.random.default_rng(seed + 13),
                                      return_se=True)
        values = {}
        for split, part in rows.items():
            values[f"hmc_{split}"], values[f"hmc_{split}_se"] = _summary(hmc_ll[part],
                                                                         info["se"][part])
            values[f"hmc_{split}_accept"] = float(info["accept_rate"][part].mean())
            values[f"is_{split}"], values[f"is_{split}_se"] = _summary(is_ll[part], is_se[part])
        report.say(f"{label}: {seen} examples: log p(x) test HMC {values['hmc_test']:.2f} "
                   f"+- {values['hmc_test_se']:.2f}, IS {values['is_test']:.2f}; train HMC "
                   f"{values['hmc_train']:.2f}, IS {values['is_train']:.2f} "
                   f"({report.elapsed():.0f} s)")
        return values

    curve = fig2_run(method, x_train, x_test, Z_DIM, budget=budget, lr=lr, measure=measure,
                     progress=None, **settings)
    curve.update(n_train=len(x_train), hmc=hmc, is_k=is_k)
    if choice is not None:
        curve["step_size_trial"] = choice
    return curve


def fig3(x_train, x_test, n_trains=presets.FIG3["full"]["n_trains"], *,
         budget=presets.FIG3["full"]["budget"], progress=None, on_result=None, **settings):
    """Both methods for every N_train: {str(N_train): {method: curve}} (see :func:`fig3_run`).

    N_train larger than the training split is cut to its size (and said so).
    ``on_result(results)`` is called after every finished run (to save partial results).
    """
    results = {}
    for n in n_trains:
        if n > len(x_train):
            Progress(progress, "").say(f"fig3: N_train = {n} is more than the {len(x_train)} "
                                       f"training images; using {len(x_train)}")
            n = len(x_train)
        results[str(n)] = {}
        for method in METHODS:
            results[str(n)][method] = fig3_run(method, x_train[:n], x_test, budget=budget,
                                               progress=progress, **settings)
            if on_result is not None:
                on_result(results)
    return results


def plot_fig3(results, path):
    """Fig. 3's layout: one panel per N_train, log p(x) against examples seen (log axis).

    HMC estimates (App. D) as lines, train solid and test dashed; the importance-sampled
    estimates as markers on them.  Writes ``path``.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2 * len(results), 3.4))
    for i, (n, curves) in enumerate(results.items()):
        ax = fig.add_subplot(1, len(results), i + 1)
        for method, colour in zip(METHODS, ("tab:red", "tab:blue")):
            c = curves[method]
            name = "AEVB" if method == "aevb" else "wake-sleep"
            for split, style, marker in (("train", "-", "o"), ("test", "--", "x")):
                ax.plot(c["examples"], c[f"hmc_{split}"], color=colour, linestyle=style,
                        label=f"{name} ({split}, HMC)")
                ax.plot(c["examples"], c[f"is_{split}"], color=colour, linestyle="none",
                        marker=marker, markersize=4, label=f"{name} ({split}, IS)")
        label_panel(ax, f"MNIST, $N_z = {Z_DIM}$, $N_{{train}} = {n}$",
                    "marginal log-likelihood (nats)" if i == 0 else None, "x-small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
