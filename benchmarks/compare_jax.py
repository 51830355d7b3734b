"""minivae against JAX (jit) on the CPU: the same training step, back to back, same machine.

The JAX twin of ``compare_torch.py``'s step comparison.  The step is the inner loop of
``minivae.train``: gather a minibatch, binarise it afresh, forward and backward through a VAE
with estimator B (analytic KL), one Adam update.  Model 784-400-20-400-784, ReLU, Bernoulli,
L = 1, batch 128, float32, Adam(lr=1e-3, beta1 0.9, beta2 0.999, eps 1e-8), on the embedded
MNIST subset (or --data).

Each round runs ``minivae bench --json`` in a fresh process (OPENBLAS_NUM_THREADS /
OMP_NUM_THREADS = --threads), then times the JAX twin (``jax_twin.py``: the model and Adam
written by hand in jax.numpy, the whole step under one ``jax.jit``) in this process with the
same warm-up (which includes the compilation), blocks and steps: examples/s is the median over
blocks, as in ``minivae.bench.step``.  Before timing, the JAX model is given minivae's initial
parameters and both compute, for one batch with the same noise, the loss and its gradient, and
both optimisers take three Adam steps from the same gradients: equal numbers show that both
sides compute the same thing.

Threads: XLA reads XLA_FLAGS when its CPU backend starts, so this script re-executes itself
with them set.  --threads 1: ``--xla_cpu_multi_thread_eigen=false
intra_op_parallelism_threads=1`` (XLA has no flag for N threads).  These flags alone did not
keep jax 0.10.2 on one thread (two of its Eigen threads still ran at once), so the process (and
the minivae bench it starts, which inherits it) is also restricted to N CPUs by its affinity
whenever the machine has more than N.  The CPU seconds per wall second of the JAX blocks are
printed: at most 1 with one thread.

JAX is not a dependency of minivae.  Install it in a separate virtualenv (CPU build):

    python -m venv /tmp/jaxvenv
    /tmp/jaxvenv/bin/pip install jax==0.10.2 numpy scipy matplotlib     # the version it was written with
    /tmp/jaxvenv/bin/pip install -e .
    /tmp/jaxvenv/bin/python benchmarks/compare_jax.py --rounds 3 --threads 2

docs/performance.md ("Twins") says how the comparisons are run.
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

try:
    import jax
except ImportError:
    sys.exit("compare_jax.py needs JAX (not a minivae dependency); see the docstring for "
             "installing it into a separate virtualenv")

import jax_twin
from step_args import add_step_arguments, run_minivae_bench
import minivae
from minivae.data.preprocessing import bernoulli_binarize
from minivae.optim import make_optimizer
from minivae.vae import VAE


def thread_settings(threads):
    """Re-execute this script with the thread environment for ``threads`` unless it is set."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               XLA_FLAGS=jax_twin.xla_flags(threads))
    if any(os.environ.get(k) != env[k] for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "XLA_FLAGS")):
        os.sched_setaffinity(0, jax_twin.cpu_affinity(threads))     # inherited through exec
        os.execve(sys.executable, [sys.executable, *sys.argv], env)


def check_same_model(model, x_train, n_samples):
    """minivae and JAX on one batch with the same noise: loss, gradients, three Adam steps.

    Returns (minivae's loss, JAX's loss, largest gradient difference relative to the largest
    gradient, largest parameter difference after three Adam steps from the same gradients).
    """
    rng = np.random.default_rng(1)
    x = bernoulli_binarize(x_train[:64], rng)
    eps = rng.standard_normal((n_samples, 64, model.z_dim), dtype=np.float32)
    ours, our_grads = model.loss_and_grads(x, eps=eps)
    params = jax_twin.params_from_minivae(model)
    theirs, their_grads = jax.value_and_grad(jax_twin.loss_fn)(params, x, eps, model.n_layers)
    grad_gap = max(float(np.max(np.abs(our_grads[k] - np.asarray(their_grads[k])))) for k in our_grads)
    grad_gap /= max(float(np.max(np.abs(g))) for g in our_grads.values())

    # Adam: the same three gradients (of three batches) to both optimisers, on copies
    ours_adam = VAE(model.x_dim, model.z_dim, hidden=model.hidden, dtype=np.float32, seed=model.seed)
    opt = make_optimizer("adam", ours_adam.params, lr=jax_twin.ADAM["lr"])
    m, v, t = jax_twin.adam_init(params)
    for batch in range(3):
        xb = bernoulli_binarize(x_train[64 * (batch + 1):64 * (batch + 2)], rng)
        _, grads = ours_adam.loss_and_grads(xb, eps=eps)
        opt.step(grads)
        params, m, v, t = jax_twin.adam_update(params, {k: jax.numpy.asarray(g) for k, g in grads.items()},
                                               m, v, t)
    adam_gap = max(float(np.max(np.abs(ours_adam.params[k] - np.asarray(params[k]))))
                   for k in params)
    return ours, float(theirs), grad_gap, adam_gap


def time_jax(x_train, model, args):
    """Examples/s of the jitted step: warm-up (with compilation), median over blocks.

    Returns (median, per-block rates, CPU seconds per wall second over the blocks).
    """
    step = jax_twin.make_step(model.n_layers, model.z_dim, args.samples)
    state = jax_twin.init_state(model, args.seed)
    x_all = jax.numpy.asarray(x_train)
    M = args.batch_size
    n_batches = len(x_train) // M
    key = jax.random.PRNGKey(args.seed + 1)             # the batch order's own stream
    key, order = jax_twin.shuffle(key, len(x_train))
    position = 0

    def run(n_steps):
        nonlocal state, key, order, position
        for _ in range(n_steps):
            if position == n_batches:
                key, order = jax_twin.shuffle(key, len(x_train))
                position = 0
            state, _ = step(state, x_all, order, position, batch_size=M)
            position += 1
        jax.block_until_ready(state)

    run(args.warmup)
    rates, cpu, wall = [], 0.0, 0.0
    for _ in range(args.repeats):
        tic, cpu_tic = time.perf_counter(), time.process_time()
        run(args.steps)
        seconds = time.perf_counter() - tic
        rates.append(args.steps * M / seconds)
        cpu, wall = cpu + time.process_time() - cpu_tic, wall + seconds
    return statistics.median(rates), rates, cpu / wall


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_step_arguments(parser, "JAX")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    thread_settings(args.threads)

    data = minivae.load_mnist(args.data)
    x_train = np.ascontiguousarray(data.train.x, dtype=np.float32)
    model = VAE(x_train.shape[1], 20, hidden=(400,), dtype=np.float32, seed=args.seed)
    ours, theirs, grad_gap, adam_gap = check_same_model(model, x_train, args.samples)
    print(f"same model: loss of one batch, same noise: minivae {ours:.5f}, JAX {theirs:.5f}; "
          f"gradients differ by at most {grad_gap:.1e} of the largest; after 3 Adam steps from "
          f"the same gradients, parameters by at most {adam_gap:.1e}")
    if abs(ours - theirs) > 1e-4 * abs(ours) or grad_gap > 1e-4 or adam_gap > 1e-3 * jax_twin.ADAM["lr"]:
        sys.exit("the two models disagree; the comparison would be meaningless")
    print(f"threads {args.threads} (XLA_FLAGS {os.environ.get('XLA_FLAGS') or 'unset'!r}, "
          f"CPUs {sorted(os.sched_getaffinity(0))}), {jax_twin.versions()}, numpy {np.__version__}, "
          f"data: {data.source}")

    rounds = []
    print()
    for r in range(args.rounds):
        ours = run_minivae_bench(args)
        theirs, runs, cpu_per_wall = time_jax(x_train, model, args)
        row = {"minivae": ours["examples_per_second"], "minivae_runs": ours["examples_per_second_runs"],
               "minivae_blas_threads": ours["machine"]["blas_threads"],
               "jax": theirs, "jax_runs": runs, "jax_cpu_per_wall": cpu_per_wall,
               "ratio": ours["examples_per_second"] / theirs}
        rounds.append(row)
        print(f"round {r + 1}: minivae {row['minivae']:8.0f} ex/s (BLAS threads "
              f"{row['minivae_blas_threads']}) | JAX {theirs:8.0f} ex/s (CPU {cpu_per_wall:.2f} s "
              f"per s) | ratio {row['ratio']:.2f}x", flush=True)

    ratios = [row["ratio"] for row in rounds]
    print(f"minivae / JAX jit: median {statistics.median(ratios):.2f}x over {len(ratios)} rounds ("
          + ", ".join(f"{x:.2f}" for x in ratios) + ")")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "jax": jax.__version__, "numpy": np.__version__,
                       "xla_flags": os.environ.get("XLA_FLAGS"), "config": vars(args),
                       "rounds": rounds}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
