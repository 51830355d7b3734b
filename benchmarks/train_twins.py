"""Whole trainings of the same VAE by minivae, PyTorch or JAX: one command each, one JSON line.

    python benchmarks/train_twins.py --impl minivae|torch|jax --data DIR --epochs 2 --threads N

Every implementation trains the same model from the same initial parameters (minivae's,
``VAE(784, 20, hidden=(400,), dtype=float32, seed=--seed)``): 784-400-20-400-784, ReLU,
Bernoulli likelihood, estimator B (analytic KL), L = 1, minibatch 128, Adam(lr=1e-3), float32,
on the same arrays (``minivae.data.datasets.load_mnist(DIR)``; without --data, the embedded
subset).  Every epoch is a fresh shuffle, every minibatch a fresh Bernoulli binarisation and
fresh eps; the last minibatch of an epoch is shorter when 128 does not divide N (as in
``minivae.train``).  Each implementation draws its randomness with its own generator.

* minivae: :func:`minivae.train` itself, x_test=None, its defaults for everything not named.
* torch: ``compare_torch.py``'s model (nn.Sequential with minivae's parameters, its
  ``torch_loss``), ``torch.optim.Adam`` (--torch-adam: default, foreach or fused),
  ``torch.randperm``, ``torch.bernoulli``, ``torch.randn``.
* jax: ``jax_twin.py``'s step, one ``jax.jit`` call per minibatch.  Both minibatch sizes are
  compiled (by one step on a throwaway state) before the clock starts.

Threads (the process re-executes itself with its environment set before NumPy loads):
OPENBLAS_NUM_THREADS = OMP_NUM_THREADS = N for all three, ``torch.set_num_threads(N)``, and for
JAX with N = 1 the XLA_FLAGS of ``jax_twin.xla_flags``; and, for all three, the process runs
on N CPUs (its affinity) when the machine has more (for JAX the flags alone are not enough).

Printed on stdout, one JSON line: impl, threads, epochs, train_seconds (the epochs' loop only:
no loading, compiling or evaluation), final_train_elbo (mean minibatch ELBO estimate of the last
epoch, as ``minivae.train``'s history reports it) and test_elbo.  test_elbo is computed after
training the same way for all three: the trained parameters are copied into a minivae VAE and
:func:`minivae.evaluate.evaluate_elbo` (estimator B, one sample, its fixed noise) runs on
``fixed_binarization(x_test, seed)``.  After the same epochs the three should land within about
a nat of each other; a twin that trains wrongly shows it there.  Details go to stderr.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

try:
    import torch
except ImportError:
    torch = None
try:
    import jax
except ImportError:
    jax = None

from minivae.data.datasets import load_mnist
from minivae.data.preprocessing import fixed_binarization
from minivae.evaluate import evaluate_elbo
from minivae.training import train
from minivae.vae import VAE

if torch is not None:
    from compare_torch import torch_loss, torch_vae
if jax is not None:
    import jax_twin

IMPLEMENTATIONS = ("minivae", "torch", "jax")
Z_DIM, HIDDEN, BATCH_SIZE, LR = 20, (400,), 128, 1e-3
TORCH_ADAM = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def thread_settings(impl, threads):
    """Re-execute this script with the thread environment for ``threads`` unless it is set."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    names = ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"]
    if impl == "jax":
        env["XLA_FLAGS"] = jax_twin.xla_flags(threads)
        names.append("XLA_FLAGS")
    if any(os.environ.get(k) != env[k] for k in names):
        allowed = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, allowed[:threads])                  # inherited through exec
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    if impl == "torch":
        torch.set_num_threads(threads)


def train_minivae(model, x_train, args):
    """minivae.train on x_train; returns (seconds of the epochs' loops, last epoch's train ELBO)."""
    history = train(model, x_train, None, epochs=args.epochs, batch_size=BATCH_SIZE,
                    optimizer="adam", lr=LR, seed=args.seed, verbose=False)
    return sum(history["seconds"]), history["train_elbo"][-1]


def torch_linears(network):
    """The nn.Linear layers of an nn.Sequential, in order."""
    return [layer for layer in network if isinstance(layer, torch.nn.Linear)]


def train_torch(model, x_train, args):
    """The PyTorch twin; trains, then copies its parameters into ``model``.  As train_minivae."""
    encoder, decoder = torch_vae(model)
    opt = torch.optim.Adam(list(encoder.parameters()) + list(decoder.parameters()), lr=LR,
                           **TORCH_ADAM[args.torch_adam])
    x_all = torch.from_numpy(x_train)
    generator = torch.Generator().manual_seed(args.seed)
    N, D = len(x_all), model.z_dim
    tic = time.perf_counter()
    for _ in range(args.epochs):
        order, total = torch.randperm(N, generator=generator), 0.0
        for start in range(0, N, BATCH_SIZE):
            xb = torch.bernoulli(x_all[order[start:start + BATCH_SIZE]], generator=generator)
            eps = torch.randn(1, len(xb), D, generator=generator)
            loss = torch_loss(encoder, decoder, xb, eps)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(xb)
    seconds = time.perf_counter() - tic
    for prefix, network in (("encoder", encoder), ("decoder", decoder)):
        for k, linear in enumerate(torch_linears(network)):
            model.params[f"{prefix}.{k}.W"][...] = linear.weight.detach().numpy().T
            model.params[f"{prefix}.{k}.b"][...] = linear.bias.detach().numpy()
    return seconds, -total / N


def train_jax(model, x_train, args):
    """The JAX twin; trains, then copies its parameters into ``model``.  As train_minivae."""
    step = jax_twin.make_step(model.n_layers, model.z_dim)
    x_all = jax.numpy.asarray(x_train)
    N = len(x_train)
    full, rest = divmod(N, BATCH_SIZE)
    key = jax.random.PRNGKey(args.seed + 1)              # the batch order's own stream
    tic = time.perf_counter()
    throwaway = jax_twin.init_state(model, args.seed)    # compile both batch sizes off the clock
    for size in sorted({BATCH_SIZE, rest} - {0}):
        throwaway, _ = step(throwaway, x_all, jax.numpy.arange(N), 0, batch_size=size)
    jax.block_until_ready(throwaway)
    print(f"jax: {jax_twin.versions()}, compiled in {time.perf_counter() - tic:.1f} s, "
          f"XLA_FLAGS {os.environ.get('XLA_FLAGS')!r}", file=sys.stderr)

    state = jax_twin.init_state(model, args.seed)
    tic = time.perf_counter()
    for _ in range(args.epochs):
        key, order = jax_twin.shuffle(key, N)
        state = (*state[:5], jax.numpy.zeros((), jax.numpy.float32))    # the epoch's summed loss
        for batch in range(full):
            state, _ = step(state, x_all, order, batch, batch_size=BATCH_SIZE)
        if rest:
            state, _ = step(state, x_all, order, full, batch_size=rest)
    jax.block_until_ready(state)
    seconds = time.perf_counter() - tic
    for name, value in jax_twin.to_numpy(state[0]).items():
        model.params[name][...] = value
    return seconds, -float(state[5]) / N


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--impl", choices=IMPLEMENTATIONS, required=True)
    parser.add_argument("--data", default=None, help="MNIST IDX folder (default: embedded subset)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--torch-adam", choices=tuple(TORCH_ADAM), default="default",
                        help="torch: which Adam implementation (default: torch.optim.Adam(params))")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.threads < 1:
        parser.error(f"--epochs and --threads must be at least 1, got {args.epochs} and {args.threads}")
    if {"torch": torch, "jax": jax}.get(args.impl, np) is None:
        sys.exit(f"--impl {args.impl} needs {args.impl} installed (not a minivae dependency); "
                 "see docs/performance.md, 'Twins'")
    thread_settings(args.impl, args.threads)

    data = load_mnist(args.data)
    x_train = np.ascontiguousarray(data.train.x, dtype=np.float32)
    model = VAE(x_train.shape[1], Z_DIM, hidden=HIDDEN, dtype=np.float32, seed=args.seed)
    x_test = fixed_binarization(model.check_data(data.test.x, "x_test"), args.seed)
    trainer = {"minivae": train_minivae, "torch": train_torch, "jax": train_jax}[args.impl]
    seconds, train_elbo = trainer(model, x_train, args)
    test_elbo = evaluate_elbo(model, x_test)
    print(f"{args.impl}: {len(x_train)} training and {len(x_test)} test images ({data.source}), "
          f"numpy {np.__version__}" + (f", torch {torch.__version__} ({args.torch_adam} Adam, "
                                       f"{torch.get_num_threads()} threads)" if args.impl == "torch" else ""),
          file=sys.stderr)
    print(json.dumps({"impl": args.impl, "threads": args.threads, "epochs": args.epochs,
                      "train_seconds": seconds, "final_train_elbo": train_elbo,
                      "test_elbo": test_elbo}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
