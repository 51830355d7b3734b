"""minivae against PyTorch on the CPU: the same training step, back to back, same machine.

The step (see minivae/bench.py) is the inner loop of ``minivae.train``: gather a
minibatch, binarise it afresh, forward and backward through a VAE with estimator
B (analytic KL), one Adam update.  Model 784-400-20-400-784, ReLU, Bernoulli,
L = 1, batch 128, float32, Adam(lr=1e-3), on the embedded MNIST subset (or --data).

Each round runs ``minivae bench --json`` in a fresh process (only NumPy's OpenBLAS
threads in it), then times the same step in PyTorch in this process with the same
warm-up, blocks and steps, once per Adam implementation of PyTorch (the default
for-loop one, ``foreach=True`` and ``fused=True``).  Both sides get the same
number of threads: OPENBLAS_NUM_THREADS / OMP_NUM_THREADS for minivae,
``torch.set_num_threads`` for PyTorch.  Two ratios are printed: minivae's examples/s
over the fastest PyTorch variant's, and over the default Adam's (what
``torch.optim.Adam(params)`` gives).  Before timing, the PyTorch model is given
minivae's initial parameters and both compute the loss of one batch with the
same noise: equal losses show that both sides compute the same thing.

PyTorch is not a dependency of minivae.  Install its CPU build in a separate
virtualenv (pinned: an unpinned install may pull a multi-GB GPU build):

    python -m venv /tmp/torchvenv
    /tmp/torchvenv/bin/pip install torch==2.13.0 numpy scipy matplotlib
    /tmp/torchvenv/bin/pip install -e .
    /tmp/torchvenv/bin/python benchmarks/compare_torch.py --rounds 3

docs/performance.md has the results on the development machine.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    sys.exit("compare_torch.py needs PyTorch (not a minivae dependency); see the docstring "
             "for installing torch==2.13.0 into a separate virtualenv")

import minivae
from minivae.preprocessing import bernoulli_binarize
from minivae.vae import VAE


def torch_vae(model):
    """PyTorch encoder and decoder (nn.Sequential) holding copies of a minivae model's parameters."""
    def mlp(prefix):
        layers = []
        for k in range(model.n_layers):
            W = model.params[f"{prefix}.{k}.W"]               # (n_in, n_out); torch stores W.T
            linear = torch.nn.Linear(*W.shape)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(W.T.copy()))
                linear.bias.copy_(torch.from_numpy(model.params[f"{prefix}.{k}.b"]))
            layers.append(linear)
            if k < model.n_layers - 1:
                layers.append(torch.nn.ReLU())
        return torch.nn.Sequential(*layers)

    return mlp("encoder"), mlp("decoder")


def torch_loss(encoder, decoder, x, eps):
    """-mean ELBO, estimator B: the same formulas as minivae.vae.VAE.forward.  x (M, P), eps (L, M, D)."""
    L, M, D = eps.shape
    h = encoder(x)
    mu, logvar = h[:, :D], h[:, D:]
    z = mu + torch.exp(0.5 * logvar) * eps
    logits = decoder(z.reshape(L * M, D)).reshape(L, M, -1)
    # log p(x|z) = sum_i [x_i l_i - softplus(l_i)] = -BCE-with-logits, PyTorch's fused kernel
    log_px_z = -F.binary_cross_entropy_with_logits(logits, x.expand(L, M, -1),
                                                   reduction="none").sum(-1)
    kl = 0.5 * (mu * mu + torch.exp(logvar) - 1 - logvar).sum(-1)
    return -(log_px_z.mean(0) - kl).mean()


def check_same_model(model, encoder, decoder, x_train, n_samples):
    """Loss of one batch with the same noise in minivae and in PyTorch (float32): returns both."""
    rng = np.random.default_rng(1)
    x = bernoulli_binarize(x_train[:64], rng)
    eps = rng.standard_normal((n_samples, 64, model.z_dim), dtype=np.float32)
    ours, _ = model.loss_and_grads(x, eps=eps)
    with torch.no_grad():
        theirs = float(torch_loss(encoder, decoder, torch.from_numpy(x), torch.from_numpy(eps)))
    return ours, theirs


def time_torch(x_train, model, args, adam_options):
    """Examples/s of the PyTorch step: warm-up, then median over blocks (as minivae.bench.run)."""
    encoder, decoder = torch_vae(model)
    params = list(encoder.parameters()) + list(decoder.parameters())
    opt = torch.optim.Adam(params, lr=1e-3, **adam_options)
    x_all = torch.from_numpy(x_train)
    M, L, D = args.batch_size, args.samples, model.z_dim
    g = torch.Generator().manual_seed(args.seed)
    n_batches = len(x_all) // M
    state = {"order": torch.randperm(len(x_all), generator=g), "position": 0}

    def step():
        if state["position"] == n_batches:
            state["order"], state["position"] = torch.randperm(len(x_all), generator=g), 0
        i = state["position"]
        xb = torch.bernoulli(x_all[state["order"][i * M:(i + 1) * M]], generator=g)
        eps = torch.randn(L, M, D, generator=g)
        loss = torch_loss(encoder, decoder, xb, eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        state["position"] += 1

    for _ in range(args.warmup):
        step()
    rates = []
    for _ in range(args.repeats):
        tic = time.perf_counter()
        for _ in range(args.steps):
            step()
        rates.append(args.steps * M / (time.perf_counter() - tic))
    return statistics.median(rates), rates


def run_minivae_bench(args):
    """`minivae bench --json` in a fresh process with the BLAS thread count set; its result dict."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))
    command = [sys.executable, "-m", "minivae", "bench", "--json",
               "--batch-size", str(args.batch_size), "--samples", str(args.samples),
               "--steps", str(args.steps), "--repeats", str(args.repeats),
               "--warmup", str(args.warmup), "--seed", str(args.seed)]
    if args.data:
        command += ["--data", args.data]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="threads for both (default: all CPUs)")
    parser.add_argument("--rounds", type=int, default=3, help="minivae-then-PyTorch rounds")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--samples", type=int, default=1, help="L")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=None, help="MNIST IDX folder (default: embedded subset)")
    parser.add_argument("--json", default=None, help="also write all rounds to this JSON file")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    data = minivae.load_mnist(args.data)
    x_train = np.ascontiguousarray(data.train.x, dtype=np.float32)
    model = VAE(x_train.shape[1], 20, hidden=(400,), dtype=np.float32, seed=args.seed)
    ours, theirs = check_same_model(model, *torch_vae(model), x_train, args.samples)
    print(f"same model: loss of one batch, same noise: minivae {ours:.5f}, PyTorch {theirs:.5f}")
    if abs(ours - theirs) > 1e-4 * abs(ours):
        sys.exit("the two models disagree; the comparison would be meaningless")
    variants = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}
    print(f"threads {args.threads} (torch.get_num_threads() = {torch.get_num_threads()}), "
          f"torch {torch.__version__}, numpy {np.__version__}, data: {data.source}")

    rounds = []
    print()
    for r in range(args.rounds):
        ours = run_minivae_bench(args)
        row = {"minivae": ours["examples_per_second"], "minivae_runs": ours["examples_per_second_runs"],
               "minivae_blas_threads": ours["machine"]["blas_threads"],
               "minivae_fraction_of_gemm_bound": ours["fraction_of_gemm_bound"], "torch": {}}
        for name, options in variants.items():
            row["torch"][name], row[f"torch_{name}_runs"] = time_torch(x_train, model, args, options)
        best = max(row["torch"], key=row["torch"].get)
        row["ratio"] = row["minivae"] / row["torch"][best]
        row["ratio_to_default"] = row["minivae"] / row["torch"]["default"]
        row["best_torch"] = best
        rounds.append(row)
        print(f"round {r + 1}: minivae {row['minivae']:8.0f} ex/s (BLAS threads "
              f"{row['minivae_blas_threads']}, {100 * row['minivae_fraction_of_gemm_bound']:.0f}% of "
              f"its GEMM bound) | PyTorch " + ", ".join(f"{k} {v:.0f}" for k, v in row["torch"].items())
              + f" ex/s | ratio {row['ratio']:.2f}x vs {best}"
              + ("" if best == "default" else f", {row['ratio_to_default']:.2f}x vs default"), flush=True)

    for key, label in (("ratio", "fastest PyTorch variant"), ("ratio_to_default", "default PyTorch Adam")):
        ratios = [row[key] for row in rounds]
        print(f"minivae / {label}: median {statistics.median(ratios):.2f}x over {len(ratios)} rounds ("
              + ", ".join(f"{x:.2f}" for x in ratios) + ")")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "torch": torch.__version__, "numpy": np.__version__,
                       "config": vars(args), "rounds": rounds}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
