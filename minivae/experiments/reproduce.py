"""Reruns of the papers' experiments: Kingma & Welling (2013) Fig. 2 and Burda et al. (2016) Table 1.

The experiments::

    fig2   AEVB against wake-sleep: the lower bound (ELBO per example) on training and
           test data against the number of training examples seen, for several N_z
    iwae   a VAE (k = 1) against an IWAE (k = 5): test NLL (-log p(x), importance
           sampled with many samples) and active units (Burda et al. 2016, Sec. 5.2)

The paper's settings, as the defaults of :func:`fig2`: one tanh hidden layer of 500
units, initial weights and biases from N(0, 0.01) (the paper does not say whether 0.01 is
the variance or the standard deviation; minivae reads it as the standard deviation), Adagrad, minibatches of 100, L = 1,
dynamic binarisation; both methods share architecture, optimiser and step size.  The
lower bound of a wake-sleep model is the ELBO with its own recognition model as q,
as in the paper.  Every model is trained by :func:`minivae.train` (wake-sleep with its
``step``, the IWAE schedule as its ``lr_schedule``).  The settings of the full and quick
runs are minivae.presets.FIG2 and IWAE; the quick ones are a smoke test on the embedded
subset, not the paper's experiment: docs/reproduction.md says what differs.
"""
import math

import numpy as np

from minivae import presets
from minivae.utils.validation import check_choice, check_count, check_number
from minivae.topics import wake_sleep
from minivae.topics.diagnostics import active_units
from minivae.evaluate import evaluate_elbo, log_likelihood
from minivae.data.preprocessing import fixed_binarization
from minivae.utils.progress import Progress
from minivae.training import train
from minivae.vae import VAE

METHODS = ("aevb", "wake_sleep")
STEP_SIZES = (0.01, 0.02, 0.1)     # the paper's Adagrad step sizes (Kingma & Welling 2013, Sec. 5)


def eval_points(batch_size, budget, n_points, first=None):
    """Example counts (multiples of batch_size, log-spaced from ``first`` (one batch) to ``budget``)."""
    first = 1 if first is None else max(1, check_count(first, "first") // batch_size)
    last = max(first, budget // batch_size)
    steps = np.unique(np.geomspace(first, last, n_points).round().astype(int))
    return [int(s) * batch_size for s in steps]


def fig2_run(method, x_train, x_test, z_dim, *, budget, hidden=500, lr=0.02, batch_size=100,
             init_std=0.01, n_points=8, first=None, n_eval=1000, seed=0, progress=None,
             measure=None):
    """Train one model by ``method`` ("aevb" or "wake_sleep") for ``budget`` examples.

    Returns {"examples": [...], "train": [...], "test": [...], "lr": lr}: the ELBO (nats
    per example, L = 1, one fixed binarisation of ``n_eval`` train and test images, the
    same noise for every model) after each number of examples of :func:`eval_points`.
    (L = 1 is our reading: the paper does not say how many samples its plotted bound uses.)
    ``measure(model, seen)``, if given, returns a dict of numbers, each recorded at every
    point as a list under its key (minivae.experiments.reproduce_fig3 adds estimates of log p(x)).
    """
    check_choice(method, "method", METHODS)
    lr = check_number(lr, "lr", low=0, low_inclusive=False)
    model = VAE(x_train.shape[1], z_dim, hidden=(hidden,), activation="tanh", init_std=init_std,
                seed=seed)
    x_train = model.check_data(x_train, "x_train")
    train_eval = fixed_binarization(x_train[:n_eval], seed)
    test_eval = fixed_binarization(model.check_data(x_test, "x_test")[:n_eval], seed)
    points = eval_points(batch_size, budget, n_points, first)
    curve = {"examples": [], "train": [], "test": [], "lr": lr}
    report = Progress(progress, f"fig2 {method} N_z={z_dim} lr={lr:g}:", unit="examples")

    def evaluate(model, seen):
        """At each of the points: the bounds (and ``measure``); True after the last one."""
        if seen >= points[len(curve["examples"])]:
            eval_rng = np.random.default_rng(seed + 7)
            curve["examples"].append(seen)
            curve["train"].append(evaluate_elbo(model, train_eval, rng=eval_rng))
            curve["test"].append(evaluate_elbo(model, test_eval, rng=eval_rng))
            for key, value in (measure(model, seen) if measure else {}).items():
                curve.setdefault(key, []).append(value)
            report.update(seen, points[-1], f"test bound {curve['test'][-1]:8.2f}")
        return len(curve["examples"]) == len(points)

    # AEVB: train's own step (estimator B, L = 1, dynamic binarisation); wake-sleep: its step
    train(model, x_train, epochs=math.ceil(points[-1] / len(x_train)), batch_size=batch_size,
          optimizer="adagrad", lr=lr, seed=seed, verbose=False, on_step=evaluate,
          step=wake_sleep.train_step if method == "wake_sleep" else None)
    report.say(f"fig2 {method} N_z={z_dim} lr={lr:g}: test bound {curve['test'][-1]:.2f} "
               f"after {curve['examples'][-1]} examples, {report.elapsed():.0f} s")
    return curve


def select_step_size(method, x_train, z_dim, *, step_sizes=STEP_SIZES, trial=10**4, progress=None,
                     label="fig2", **settings):
    """The paper's choice: the step size whose model has the best training bound after ``trial`` examples.

    Kingma & Welling (2013, Sec. 5) chose Adagrad's global step size from {0.01, 0.02, 0.1}
    "based on performance on the training set in the first few iterations", per method.
    Returns (best step size, the trial's record for the curve: {"examples": trial, "train":
    {str(step size): training bound}}); ``label`` starts the progress line.
    """
    settings = {k: v for k, v in settings.items() if k not in ("n_points", "first")}
    bounds = {}
    for lr in step_sizes:
        curve = fig2_run(method, x_train, x_train, z_dim, budget=trial, lr=lr, n_points=1,
                         first=trial, progress=None, **settings)
        bounds[f"{lr:g}"] = curve["train"][-1]
    best = max(step_sizes, key=lambda lr: bounds[f"{lr:g}"])
    Progress(progress, "").say(f"{label} {method} N_z={z_dim}: step size {best:g} (training bound "
                               f"after {trial} examples: " + ", ".join(
                                   f"{k}: {v:.1f}" for k, v in bounds.items()) + ")")
    return best, {"examples": trial, "train": bounds}


def fig2(x_train, x_test, z_dims=presets.FIG2["full"]["z_dims"], *, budget=presets.FIG2["full"]["budget"],
         lr=None, step_sizes=STEP_SIZES, trial=presets.FIG2["full"]["trial"], progress=None,
         on_result=None, **settings):
    """AEVB and wake-sleep curves for every N_z: {str(N_z): {method: curve}} (see :func:`fig2_run`).

    ``lr=None`` chooses each method's step size per N_z by :func:`select_step_size`
    (recorded in the curve as "lr" and "step_size_trial"); a number uses it for all.
    ``on_result(results)`` is called after every finished run (to save partial results).
    """
    budget = check_count(budget, "budget")
    results = {}
    for z in z_dims:
        results[str(z)] = {}
        for m in METHODS:
            run_lr, choice = lr, None
            if lr is None:
                run_lr, choice = select_step_size(m, x_train, z, step_sizes=step_sizes, trial=trial,
                                                  progress=progress, **settings)
            curve = fig2_run(m, x_train, x_test, z, budget=budget, lr=run_lr, progress=progress,
                             **settings)
            if choice is not None:
                curve["step_size_trial"] = choice
            results[str(z)][m] = curve
            if on_result is not None:
                on_result(results)
    return results


def plot_fig2(results, path):
    """Fig. 2's layout: one panel per N_z, bound against examples seen (log axis); writes ``path``."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.2 * len(results), 3.2))
    for i, (z, curves) in enumerate(results.items()):
        ax = fig.add_subplot(1, len(results), i + 1)
        for method, colour in zip(METHODS, ("tab:red", "tab:blue")):
            c = curves[method]
            label = "AEVB" if method == "aevb" else "wake-sleep"
            ax.plot(c["examples"], c["train"], color=colour, label=f"{label} (train)")
            ax.plot(c["examples"], c["test"], color=colour, linestyle="--", label=f"{label} (test)")
        # Adagrad's first steps can send a bound to -2,000 for a moment: keep the panel on the
        # rest (values after the first evaluation point), so the curves stay readable
        later = [v for c in curves.values() for split in ("train", "test") for v in c[split][1:]]
        if later:
            top = max(v for c in curves.values() for split in ("train", "test") for v in c[split])
            ax.set_ylim(min(later) - 0.05 * (top - min(later) + 1), top + 0.05 * (top - min(later) + 1))
        label_panel(ax, f"MNIST, $N_z = {z}$", "lower bound (nats)" if i == 0 else None, "small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def label_panel(ax, title, ylabel=None, legend_size="small"):
    """A panel of Fig. 2 or 3: log x axis of examples seen, its title; ``ylabel`` and legend if given."""
    ax.set_xscale("log")
    ax.set_title(title)
    ax.set_xlabel("training examples seen")
    if ylabel is not None:
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=legend_size)


def burda_lr(epoch, lr=1e-3):
    """Burda et al. (2016, Sec. 5)'s schedule: 3^i epochs at lr * 10^(-i/7), i = 0, ..., 7.

    Epoch 0 has i = 0, epochs 1-3 i = 1, epochs 4-12 i = 2, ...; 3,280 epochs in all
    (the last stage keeps its rate beyond that).
    """
    i, end = 0, 1
    while epoch >= end and i < 7:
        i += 1
        end += 3 ** i
    return lr * 10 ** (-i / 7)


FULL_IWAE = presets.IWAE["full"]


def iwae_compare(x_train, x_test, *, ks=FULL_IWAE["ks"], epochs=FULL_IWAE["epochs"],
                 hidden=FULL_IWAE["hidden"], z_dim=FULL_IWAE["z_dim"], eval_k=FULL_IWAE["eval_k"],
                 n_eval=FULL_IWAE["n_eval"], lr=FULL_IWAE["lr"], schedule=FULL_IWAE["schedule"],
                 batch_size=FULL_IWAE["batch_size"], seed=0, progress=None, on_result=None):
    """Train a VAE (estimator A, L = 1) and an IWAE (L_k) per k alike; test NLL and active units.

    784-200-200-50 tanh as in Burda et al. (2016); Adam with their beta1 = 0.9,
    beta2 = 0.999, eps = 1e-4 and (``schedule="burda"``) their learning-rate schedule
    :func:`burda_lr` cut at ``epochs``; ``schedule="fixed"`` keeps ``lr``.  Dynamic
    binarisation, minibatches of ``batch_size``.  NLL = -mean log p(x) by importance
    sampling with ``eval_k`` samples on a fixed binarisation of the first ``n_eval``
    test images (all by default); each IWAE also gets its NLL minus the VAE's on the
    same images with the paired standard error.  minivae.presets.IWAE has the paper's settings.
    Returns {"vae": {...}, "iwae_k5": {...}, ...}; ``on_result(results)`` after each model.
    """
    ks = [check_count(k, "k") for k in ks]
    eval_k = check_count(eval_k, "eval_k")
    epochs = check_count(epochs, "epochs")
    lr = check_number(lr, "lr", low=0, low_inclusive=False)
    check_choice(schedule, "schedule", ("burda", "fixed"))
    results, vae_ll = {}, None
    for name, estimator, n_samples in [("vae", "A", 1)] + [(f"iwae_k{k}", "iwae", k) for k in ks]:
        model = VAE(x_train.shape[1], z_dim, hidden=hidden, activation="tanh", seed=seed)
        report = Progress(progress, f"iwae: {name} (k = {n_samples})", unit="epochs")
        history = train(model, x_train, epochs=epochs, batch_size=batch_size, optimizer="adam", lr=lr,
                        optimizer_options={"eps": 1e-4}, n_samples=n_samples, estimator=estimator,
                        seed=seed, verbose=False,
                        lr_schedule=(lambda epoch: burda_lr(epoch, lr)) if schedule == "burda" else None,
                        on_epoch=lambda epoch, history: report.update(
                            epoch, epochs, f"training bound {history['train_elbo'][-1]:8.2f}"))
        seconds = report.elapsed()
        x_eval = fixed_binarization(model.check_data(x_test, "x_test")[:n_eval], seed)
        ll = log_likelihood(model, x_eval, k=eval_k, rng=np.random.default_rng(seed + 3),
                            progress=progress)
        mu, _ = model.encode(x_eval)
        activity, active = active_units(mu)
        r = {"nll": -float(ll.mean()), "nll_se": float(ll.std(ddof=1) / math.sqrt(len(ll))),
             "active_units": int(active.sum()), "activity": activity.tolist(),
             "test_elbo": evaluate_elbo(model, x_eval, rng=np.random.default_rng(seed)),
             "train_bound": history["train_elbo"][-1], "epochs": epochs, "k": n_samples,
             "train_seconds": seconds, "n_eval": len(ll), "eval_k": eval_k}
        if vae_ll is None:
            vae_ll = ll
        else:
            d = vae_ll - ll                              # NLL(this) - NLL(vae), per image
            r["nll_minus_vae"] = float(d.mean())
            r["nll_minus_vae_se"] = float(d.std(ddof=1) / math.sqrt(len(d)))
        results[name] = r
        report.say(f"iwae: {name}: test NLL {r['nll']:.2f} +- {r['nll_se']:.2f} (k = {eval_k}, "
                   f"{len(ll)} images), {r['active_units']} active units of {z_dim}, "
                   f"{report.elapsed():.0f} s")
        if on_result is not None:
            on_result(results)
    return results


def plot_iwae(results, path):
    """Test NLL (mean +- 2 standard errors, points) and active units (bars) per model; writes ``path``.

    The NLL axis is fitted to the error bars, so it does not start at 0: points, not
    bars, show the values; an IWAE's NLL minus the VAE's, with its paired standard
    error (the comparison that matters), is written under its name.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.4))
    names = list(results)
    colours = ["tab:blue", "tab:red", "tab:green", "tab:purple"][:len(names)]
    ax_nll, ax_units = fig.subplots(1, 2)
    nll = [results[n]["nll"] for n in names]
    se = [results[n].get("nll_se", 0.0) for n in names]
    labels = [n if "nll_minus_vae" not in results[n] else
              f"{n}\nvs vae: {results[n]['nll_minus_vae']:+.2f} +- {results[n]['nll_minus_vae_se']:.2f} (paired)"
              for n in names]
    for i, (value, err, colour) in enumerate(zip(nll, se, colours)):
        ax_nll.errorbar([i], [value], yerr=[2 * err], fmt="o", color=colour, capsize=6, markersize=7)
    ax_nll.set_xticks(range(len(names)), labels)
    ax_nll.set_xlim(-0.5, len(names) - 0.5)
    ax_nll.set_title("test NLL, nats (2 s.e.; lower is better)")
    ax_units.bar(names, [results[n]["active_units"] for n in names], color=colours)
    ax_units.set_title("active units")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
