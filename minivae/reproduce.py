"""Reruns of the papers' experiments: Kingma & Welling (2013) Fig. 2 and Burda et al. (2016) Table 1.

    fig2   AEVB against wake-sleep: the lower bound (ELBO per example) on training and
           test data against the number of training examples seen, for several N_z
    iwae   a VAE (k = 1) against an IWAE (k = 5): test NLL (-log p(x), importance
           sampled with many samples) and active units (Burda et al. 2016, Sec. 5.2)

The paper's settings, as the defaults of :func:`fig2`: one tanh hidden layer of 500
units, initial weights and biases from N(0, 0.01^2), Adagrad, minibatches of 100, L = 1,
dynamic binarisation; both methods share architecture, optimiser and step size.  The
lower bound of a wake-sleep model is the ELBO with its own recognition model as q,
as in the paper.  ``quick=True`` settings (commands/reproduce.py) are a smoke test on
the embedded subset, not the paper's experiment: docs/reproduction.md says what differs.
"""
import math

import numpy as np

from minivae.checks import check_count, check_number
from minivae.diagnostics import active_units
from minivae.evaluate import evaluate_elbo, log_likelihood
from minivae.optim import make_optimizer
from minivae.preprocessing import bernoulli_binarize, fixed_binarization
from minivae.progress import Progress
from minivae.training import train, train_step
from minivae.vae import VAE
from minivae.wake_sleep import wake_sleep_step

METHODS = ("aevb", "wake_sleep")


def eval_points(batch_size, budget, n_points):
    """Example counts (multiples of batch_size, log-spaced from one batch to ``budget``)."""
    steps = np.unique(np.geomspace(1, max(1, budget // batch_size), n_points).round().astype(int))
    return [int(s) * batch_size for s in steps]


def fig2_run(method, x_train, x_test, z_dim, *, budget, hidden=500, lr=0.02, batch_size=100,
             init_std=0.01, n_points=8, n_eval=1000, seed=0, progress=None):
    """Train one model by ``method`` ("aevb" or "wake_sleep") for ``budget`` examples.

    Returns {"examples": [...], "train": [...], "test": [...]}: the ELBO (nats per
    example, L = 1, one fixed binarisation of ``n_eval`` train and test images) after
    each number of examples of :func:`eval_points`.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {list(METHODS)}")
    model = VAE(x_train.shape[1], z_dim, hidden=(hidden,), activation="tanh", init_std=init_std,
                seed=seed)
    opt = make_optimizer("adagrad", model.params, lr=lr)
    rng = np.random.default_rng(seed)
    x_train = model.check_data(x_train, "x_train")
    train_eval = fixed_binarization(x_train[:n_eval], seed)
    test_eval = fixed_binarization(model.check_data(x_test, "x_test")[:n_eval], seed)
    points = eval_points(batch_size, budget, n_points)
    curve = {"examples": [], "train": [], "test": []}
    report = Progress(progress, f"fig2 {method} N_z={z_dim}:", unit="examples")
    N, seen, order = len(x_train), 0, np.empty(0, dtype=int)
    while seen < points[-1]:
        if len(order) < batch_size:                   # a new epoch: reshuffle
            order = np.concatenate([order, rng.permutation(N)])
        xb, order = x_train[order[:batch_size]], order[batch_size:]
        if method == "aevb":
            train_step(model, opt, xb, rng)           # dynamic binarisation inside
        else:
            wake_sleep_step(model, opt, bernoulli_binarize(xb, rng, check=False), rng)
        seen += batch_size
        if seen in points:
            eval_rng = np.random.default_rng(seed + 7)
            curve["examples"].append(seen)
            curve["train"].append(evaluate_elbo(model, train_eval, rng=eval_rng))
            curve["test"].append(evaluate_elbo(model, test_eval, rng=eval_rng))
            report.update(seen, points[-1], f"test bound {curve['test'][-1]:8.2f}")
    report.say(f"fig2 {method} N_z={z_dim}: test bound {curve['test'][-1]:.2f} after "
                  f"{seen} examples, {report.elapsed():.0f} s")
    return curve


def fig2(x_train, x_test, z_dims=(3, 5, 10, 20, 200), *, budget=10**6, progress=None, **settings):
    """AEVB and wake-sleep curves for every N_z: {str(N_z): {method: curve}} (see :func:`fig2_run`)."""
    budget = check_count("budget", budget)
    return {str(z): {m: fig2_run(m, x_train, x_test, z, budget=budget, progress=progress, **settings)
                     for m in METHODS} for z in z_dims}


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
        ax.set_xscale("log")
        ax.set_title(f"MNIST, $N_z = {z}$")
        ax.set_xlabel("training examples seen")
        if i == 0:
            ax.set_ylabel("lower bound (nats)")
            ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def iwae_compare(x_train, x_test, *, k=5, epochs=10, hidden=(200, 200), z_dim=50, eval_k=5000,
                 n_eval=None, lr=1e-3, batch_size=100, seed=0, progress=None):
    """Train a VAE (estimator A, L = 1) and an IWAE (L_k) alike; test NLL and active units of each.

    784-200-200-50 tanh as in Burda et al. (2016); Adam (their optimiser) at a fixed lr.
    NLL = -mean log p(x) by importance sampling with ``eval_k`` samples on a fixed
    binarisation of the first ``n_eval`` test images (all by default).
    Returns {"vae": {...}, "iwae_k5": {...}} with nll, active_units, test_elbo, seconds.
    """
    k = check_count("k", k)
    eval_k = check_count("eval_k", eval_k)
    lr = check_number("lr", lr, low=0, low_inclusive=False)
    results = {}
    for name, kl, n_samples in (("vae", "mc", 1), (f"iwae_k{k}", "iwae", k)):
        model = VAE(x_train.shape[1], z_dim, hidden=hidden, activation="tanh", seed=seed)
        report = Progress(progress, f"iwae: {name}", unit="")
        report.say(f"iwae: training {name} ({kl}, k = {n_samples}) for {epochs} epochs")
        history = train(model, x_train, epochs=epochs, batch_size=batch_size, optimizer="adam",
                        lr=lr, n_samples=n_samples, kl=kl, seed=seed, verbose=False)
        x_eval = fixed_binarization(model.check_data(x_test, "x_test")[:n_eval], seed)
        ll = log_likelihood(model, x_eval, k=eval_k, rng=np.random.default_rng(seed + 3))
        mu, _ = model.encode(x_eval)
        activity, active = active_units(mu)
        results[name] = {"nll": -float(ll.mean()), "active_units": int(active.sum()),
                         "activity": activity.tolist(),
                         "test_elbo": evaluate_elbo(model, x_eval, rng=np.random.default_rng(seed)),
                         "train_elbo": history["train_elbo"][-1], "epochs": epochs,
                         "seconds": float(sum(history["seconds"]))}
        report.say(f"iwae: {name}: test NLL {results[name]['nll']:.2f} (k = {eval_k}), "
                      f"{results[name]['active_units']} active units of {z_dim}, "
                      f"{report.elapsed():.0f} s")
    return results


def plot_iwae(results, path):
    """Bar charts of test NLL and active units for each model; writes ``path``."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3))
    names = list(results)
    for i, (key, title) in enumerate((("nll", "test NLL (nats, lower is better)"),
                                      ("active_units", "active units"))):
        ax = fig.add_subplot(1, 2, i + 1)
        values = [results[n][key] for n in names]
        ax.bar(names, values, color=["tab:blue", "tab:red"][:len(names)])
        if key == "nll":
            lo = min(values) - max(1.0, 0.2 * (max(values) - min(values)))
            ax.set_ylim(math.floor(lo), math.ceil(max(values) + 1))
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
