"""minivae against PyTorch on the CPU: the same training step, back to back, same machine.

The step (see minivae/bench/step.py) is the inner loop of ``minivae.train``: gather a
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

With ``--eval`` it compares the evaluation instead: ``minivae bench --eval --json`` (the
importance-sampled log-likelihood, :func:`minivae.evaluate.log_likelihood`, k samples per
image on binarised test images) in a fresh process, then its PyTorch twin in this process:
the same model (minivae's initial parameters), the same batches of examples and chunks of
samples, float32, under ``torch.inference_mode()``, the likelihood from PyTorch's fused
``binary_cross_entropy_with_logits``, log-weights summed in float64 and accumulated with
``logsumexp``/``logaddexp`` as minivae does.  Before timing, both compute the log-weights of
four images for the same noise: equal numbers show that they compute the same thing.  The
ratio printed is PyTorch's seconds over minivae's (above 1: minivae is faster), PyTorch
taken at the fastest of several chunk sizes (``--torch-chunks``, and minivae's own).

PyTorch is not a dependency of minivae.  Install its CPU build in a separate
virtualenv (pinned: an unpinned install may pull a multi-GB GPU build):

    python -m venv /tmp/torchvenv
    /tmp/torchvenv/bin/pip install torch==2.13.0 numpy scipy matplotlib
    /tmp/torchvenv/bin/pip install -e .
    /tmp/torchvenv/bin/python benchmarks/compare_torch.py --rounds 3
    /tmp/torchvenv/bin/python benchmarks/compare_torch.py --eval --k 5000 --rounds 3

docs/performance.md has the results on the development machine.
"""
import argparse
import json
import math
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

from step_args import add_step_arguments, run_minivae_bench
import minivae
from minivae.evaluate import log_weights
from minivae.data.preprocessing import bernoulli_binarize, fixed_binarization
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
    """Examples/s of the PyTorch step: warm-up, then median over blocks (as minivae.bench.step.run)."""
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


def minivae_bench(args):
    """`minivae bench --json` in a fresh process with the BLAS thread count set; its result dict."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))
    return run_minivae_bench(args, env)


LOG_2PI = math.log(2 * math.pi)


def torch_log_weights(encoder, decoder, x, eps, encoded=None):
    """log w = log p(x|z) + log p(z) - log q(z|x), as minivae.evaluate.log_weights.  x (B, P), eps (c, B, D)."""
    c, B, D = eps.shape
    h = encoder(x) if encoded is None else encoded
    mu, logvar = h[:, :D], h[:, D:]
    z = mu + torch.exp(0.5 * logvar) * eps
    logits = decoder(z.reshape(c * B, D)).reshape(c, B, -1)
    log_px = -F.binary_cross_entropy_with_logits(logits, x.expand(c, B, -1), reduction="none").sum(-1)
    log_pz = -0.5 * (LOG_2PI + z * z).sum(-1)
    diff = z - mu
    log_qz = -0.5 * (LOG_2PI + logvar + diff * diff * torch.exp(-logvar)).sum(-1)
    return log_px.double() + log_pz - log_qz, h


@torch.inference_mode()
def torch_log_likelihood(encoder, decoder, x, k, batch_size, chunk, generator):
    """The twin of minivae.evaluate.log_likelihood: log 1/k sum_i w_i per example, streamed."""
    D = decoder[0].in_features
    estimates = []
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size]
        log_sum_w = torch.full((len(xb),), -math.inf, dtype=torch.float64)
        h = None
        for done in range(0, k, chunk):
            eps = torch.randn(min(chunk, k - done), len(xb), D, generator=generator)
            log_w, h = torch_log_weights(encoder, decoder, xb, eps, h)
            log_sum_w = torch.logaddexp(log_sum_w, torch.logsumexp(log_w, dim=0))
        estimates.append(log_sum_w - math.log(k))
    return torch.cat(estimates)


def run_minivae_bench_eval(args):
    """`minivae bench --eval --json` in a fresh process with the BLAS thread count set."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))
    command = [sys.executable, "-m", "minivae", "bench", "--eval", "--json", "--k", str(args.k),
               "--n-examples", str(args.examples), "--batch-size", str(args.eval_batch_size),
               "--repeats", "1", "--seed", str(args.seed)]
    if args.chunk:
        command += ["--chunk", str(args.chunk)]
    if args.data:
        command += ["--data", args.data]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def eval_main(args, data):
    """Rounds of minivae's log_likelihood, then the PyTorch twin's, back to back; the ratios."""
    model = VAE(data.test.x.shape[1], 20, hidden=(400,), dtype=np.float32, seed=args.seed)
    x = fixed_binarization(model.check_data(data.test.x, "x_test")[:args.examples], args.seed)
    encoder, decoder = torch_vae(model)
    eps = np.random.default_rng(1).standard_normal((3, 4, model.z_dim), dtype=np.float32)
    ours = log_weights(model, x[:4], eps)
    with torch.inference_mode():
        theirs = torch_log_weights(encoder, decoder, torch.from_numpy(x[:4]), torch.from_numpy(eps))[0]
    gap = float(np.max(np.abs(ours - theirs.numpy())))
    print(f"same model: log-weights of 4 images x 3 samples, same noise: largest difference "
          f"{gap:.2e} nats (of about {float(np.abs(ours).mean()):.0f})")
    if gap > 1e-5 * float(np.abs(ours).max()):
        sys.exit("the two evaluations disagree; the comparison would be meaningless")
    print(f"threads {args.threads} (torch.get_num_threads() = {torch.get_num_threads()}), "
          f"torch {torch.__version__}, numpy {np.__version__}; k = {args.k}, {len(x)} images, "
          f"batch {args.eval_batch_size}\n")
    rounds = []
    for r in range(args.rounds):
        ours = run_minivae_bench_eval(args)
        torch_seconds = {}
        for chunk in sorted({ours["config"]["chunk"], *args.torch_chunks}):
            tic = time.perf_counter()
            torch_log_likelihood(encoder, decoder, torch.from_numpy(x), args.k,
                                 args.eval_batch_size, chunk, torch.Generator().manual_seed(args.seed))
            torch_seconds[chunk] = time.perf_counter() - tic
        chunk = min(torch_seconds, key=torch_seconds.get)           # PyTorch at its fastest
        theirs = torch_seconds[chunk]
        row = {"minivae_seconds": ours["seconds"], "torch_seconds": theirs,
               "torch_seconds_by_chunk": torch_seconds,
               "minivae_chunk": ours["config"]["chunk"], "torch_chunk": chunk,
               "ratio": theirs / ours["seconds"], "minivae_matmul_share": ours["matmul"]["share"],
               "minivae_peak_bytes": ours["memory"]["peak_bytes"], "machine": ours["machine"]}
        rounds.append(row)
        print(f"round {r + 1}: minivae {row['minivae_seconds']:.2f} s (chunk {row['minivae_chunk']}, "
              f"{100 * row['minivae_matmul_share']:.0f}% in products) | PyTorch "
              + ", ".join(f"{t:.2f} s (chunk {c})" for c, t in torch_seconds.items())
              + f" | ratio {row['ratio']:.2f}x to the fastest", flush=True)
    return summarise(args, rounds, {"ratio": "PyTorch twin (PyTorch's time over minivae's)"})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_step_arguments(parser, "PyTorch")
    parser.add_argument("--eval", action="store_true",
                        help="compare the log-likelihood evaluation instead of the training step")
    parser.add_argument("--k", type=int, default=5000, help="--eval: importance samples per image")
    parser.add_argument("--examples", type=int, default=200, help="--eval: test images")
    parser.add_argument("--eval-batch-size", type=int, default=100, help="--eval: images per pass")
    parser.add_argument("--chunk", type=int, default=None,
                        help="--eval: minivae's samples per pass (default: its default_chunk)")
    parser.add_argument("--torch-chunks", type=lambda text: [int(c) for c in text.split(",")],
                        default=[10, 20, 53],
                        help="--eval: PyTorch's samples per pass to try, besides minivae's; "
                             "the fastest is compared")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    data = minivae.load_mnist(args.data)
    if args.eval:
        return eval_main(args, data)
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
        ours = minivae_bench(args)
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

    return summarise(args, rounds, {"ratio": "fastest PyTorch variant",
                                    "ratio_to_default": "default PyTorch Adam"})


def summarise(args, rounds, labels):
    """Print the median of each ratio over the rounds; write every round to --json if given."""
    for key, label in labels.items():
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
