"""`minivae bench`: how fast one training step is, and what limits it.

One timed step is the inner loop of :func:`minivae.train`, nothing more: it
calls the same :func:`minivae.training.train_step`::

    xb = x_train[batch indices]                     gather a minibatch of B examples
    train_step(model, opt, xb, rng)                 binarise (fresh draws), loss_and_grads
                                                    (L samples), Adam step, in place

(x_train is validated once, as in minivae.train, so the step does not scan the batch.)

The standard configuration is the model of ``minivae train``: 784-400-20-400-784,
ReLU, Bernoulli likelihood, estimator B (analytic KL), L = 1, minibatch 128,
Adam, float32.  What is measured (all in :func:`run`):

1. **Throughput.**  ``warmup`` untimed steps, then ``repeats`` blocks of
   ``steps`` timed steps; examples/s = steps * B / seconds, one number per
   block, and the median over blocks is reported (medians shrug off the
   other programs that share the CPU).  Each step is also split into its
   three parts (data, loss_and_grads, optimiser) with a clock between them.
2. **Matrix products.**  :func:`matmul_products` lists every product of a
   step with its shape; the FLOP count is 2 m k n each.  Right after each
   block of steps, the same products (same shapes, transposes and dtype, on
   fresh arrays) are run back to back ``steps`` times, each product timed.
   From these: the *peak* FLOP/s at the model's own shapes (the fastest
   time seen for each product), the *share* of a step spent in matrix
   products (median product time / median step time; the rest is
   elementwise work and Python), the *achieved* FLOP/s (products' FLOPs /
   step time) and the *GEMM-only bound*: the examples/s of a step that did
   nothing but its products at peak speed.  ``fraction_of_gemm_bound`` =
   examples/s / bound = achieved FLOP/s / peak FLOP/s.  Interleaving the
   two timings keeps them under the same machine load.
3. **Memory.**  After the timing, one step under :mod:`tracemalloc`, which
   sees every NumPy allocation: the peak of what the step allocates on top
   of the model, optimiser and data (caches, temporaries, gradients); and
   the process's peak resident size from ``resource.getrusage``.
4. **Machine.**  The SIMD extensions NumPy found (its runtime information:
   AVX-512 or AVX2 decides how fast float32 exp, log and log1p are), the BLAS
   kernel and thread count NumPy's OpenBLAS reports (read through ctypes;
   ``None`` if it cannot be found), the thread environment variables and the
   CPU count.  Elementwise NumPy work uses one thread.

docs/performance.md has the numbers of the machine this was developed on.
"""
import math
import os
import platform
import resource
import sys
import time
import tracemalloc

import numpy as np

from minivae import presets
from minivae.utils.blas import blas_kernel, blas_threads, set_blas_threads  # noqa: F401 (re-exported)
from minivae.utils.blocks import MEASURE
from minivae.utils.validation import check_count, check_float_dtype
from minivae.utils.progress import Progress
from minivae.training import train, train_step
from minivae.vae import VAE

STANDARD = presets.BENCH            # the standard model's step (minivae.presets)
EPOCH_EXAMPLES = 60_000          # one epoch of full MNIST
# thread counts, and OpenBLAS's kernel and cache-size overrides (set on some machines)
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                    "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


# ---------------------------------------------------------------------------
# 1. The matrix products of one training step
# ---------------------------------------------------------------------------

def matmul_products(x_dim, hidden, z_dim, batch_size, n_samples):
    """Every matrix product of one training step of a VAE, forward and backward.

    Each affine layer y = x W + b (minivae.nn) with n_in inputs, n_out outputs
    and m rows (B for the encoder, L B for the decoder, which runs on all L
    samples at once) costs up to three products of 2 m n_in n_out FLOPs each
    (one multiply and one add per term)::

        forward           y  = x @ W       (m, n_in) @ (n_in, n_out)
        weight gradient   dW = x.T @ dy    (n_in, m) @ (m, n_out)
        input gradient    dx = dy @ W.T    (m, n_out) @ (n_out, n_in)

    The encoder's first layer has no input gradient: its input is the data.

    Returns a list of dicts with ``name`` (e.g. "decoder.1 forward"),
    ``kind`` ("forward", "weight", "input"), ``rows`` m, ``n_in``, ``n_out``
    and ``flops``.
    """
    hidden = tuple(hidden)
    networks = (("encoder", [x_dim, *hidden, 2 * z_dim], batch_size),
                ("decoder", [z_dim, *reversed(hidden), x_dim], n_samples * batch_size))
    products = []
    for prefix, sizes, rows in networks:
        for k in range(len(sizes) - 1):
            n_in, n_out = sizes[k], sizes[k + 1]
            kinds = ("forward", "weight") if (prefix, k) == ("encoder", 0) else (
                "forward", "weight", "input")
            for kind in kinds:
                products.append({"name": f"{prefix}.{k} {kind}", "kind": kind, "rows": rows,
                                 "n_in": n_in, "n_out": n_out, "flops": 2 * rows * n_in * n_out})
    return products


def _product_operands(product, dtype, rng):
    """Two arrays laid out as in the step (transposes are views, as in nn.affine_backward)."""
    m, n_in, n_out = product["rows"], product["n_in"], product["n_out"]

    def normal(*shape):
        return rng.standard_normal(shape, dtype=dtype)

    if product["kind"] == "forward":
        return normal(m, n_in), normal(n_in, n_out)          # x @ W
    if product["kind"] == "weight":
        return normal(m, n_in).T, normal(m, n_out)           # x.T @ dy
    return normal(m, n_out), normal(n_in, n_out).T           # dy @ W.T


def _time_products(operands, n_steps):
    """Run every product n_steps times, in step order; seconds spent in each product."""
    seconds = np.zeros(len(operands))
    for _ in range(n_steps):
        for i, (a, b) in enumerate(operands):
            tic = time.perf_counter()
            a @ b
            seconds[i] += time.perf_counter() - tic
    return seconds


# ---------------------------------------------------------------------------
# 2. The machine
# ---------------------------------------------------------------------------

def _blas_name():
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas['name']} {blas['version']}"
    except Exception:            # NumPy < 1.26 has no mode="dicts"; the name is only a label
        return "unknown"


def simd_info():
    """The SIMD extensions NumPy found on this CPU (what ``np.show_runtime()`` prints), or None.

    ``level`` names the widest: "AVX-512", "AVX2", or the last one found.  The
    elementwise choices of minivae.nn depend on it (docs/performance.md).
    """
    try:          # NumPy's runtime information; not a public attribute, so guarded
        from numpy._core._multiarray_umath import (__cpu_baseline__, __cpu_dispatch__,
                                                   __cpu_features__)
    except ImportError:
        return None
    found = [name for name in __cpu_dispatch__ if __cpu_features__.get(name)]
    level = ("AVX-512" if __cpu_features__.get("AVX512F") else
             "AVX2" if __cpu_features__.get("AVX2") else (found or ["baseline"])[-1])
    return {"level": level, "baseline": list(__cpu_baseline__), "found": found,
            "not_found": [name for name in __cpu_dispatch__ if not __cpu_features__.get(name)]}


def machine_info():
    """Versions, CPU count, SIMD level, BLAS, its kernel and threads: what comparing numbers needs."""
    return {"python": platform.python_version(), "numpy": np.__version__,
            "machine": platform.machine(), "cpu_count": os.cpu_count(), "simd": simd_info(),
            "blas": _blas_name(), "blas_kernel": blas_kernel(), "blas_threads": blas_threads(),
            "thread_env": {k: os.environ.get(k) for k in THREAD_VARIABLES}}


def machine_lines(mach):
    """The machine's lines of a report: CPUs, SIMD level, BLAS kernel and threads."""
    simd = mach.get("simd") or {}
    return [f"machine    {mach['cpu_count']} CPUs, SIMD {simd.get('level', 'unknown')} "
            f"(NumPy found {', '.join(simd.get('found', [])) or 'none'}), NumPy {mach['numpy']}",
            f"BLAS       {mach['blas']}, kernel {mach.get('blas_kernel') or 'unknown'}, threads "
            f"{mach['blas_threads'] if mach['blas_threads'] is not None else 'unknown'}"]


# ---------------------------------------------------------------------------
# 3. The benchmark
# ---------------------------------------------------------------------------

def run(x_train, *, hidden=STANDARD["hidden"], z_dim=STANDARD["z_dim"],
        batch_size=STANDARD["batch_size"], n_samples=STANDARD["n_samples"],
        dtype=STANDARD["dtype"], steps=STANDARD["steps"], repeats=STANDARD["repeats"],
        warmup=STANDARD["warmup"], seed=STANDARD["seed"], data="", progress=None):
    """Time training steps of a Bernoulli/ReLU/analytic-KL/Adam VAE on ``x_train``.

    Parameters
    ----------
    x_train : array (N, P)
        Grey levels in [0, 1] (dynamic binarisation draws a new binary batch
        every step, as ``minivae.train`` does).
    hidden, z_dim, batch_size, n_samples, dtype
        The model (hidden widths, latent size D), the minibatch B, the
        samples L, and "float32" or "float64".
    steps, repeats, warmup : int
        Timed steps per block, blocks, untimed steps before the first block.
    seed : int
        Seeds the model, the batch order, binarisation and eps.
    data : str
        A label of where x_train came from, copied into the result.
    progress : file, optional
        Where to write progress lines (the CLI passes stderr).

    Returns
    -------
    dict
        Plain numbers, lists and dicts (``json.dumps`` works on it).  The
        fields are listed in docs/performance.md; the main ones are
        ``examples_per_second`` (median over blocks), ``epoch_seconds``,
        ``matmul`` (``flops_per_step``, ``peak_flops``, ``achieved_flops``,
        ``share_of_step``, ``bound_examples_per_second``),
        ``fraction_of_gemm_bound``, ``elementwise_share``, ``phases``,
        ``memory`` and ``machine``.
    """
    batch_size = check_count(batch_size, "batch_size")
    n_samples = check_count(n_samples, "n_samples")
    steps = check_count(steps, "steps")
    repeats = check_count(repeats, "repeats")
    warmup = check_count(warmup, "warmup", 0)
    dtype = check_float_dtype(dtype)

    model = VAE(np.shape(x_train)[-1], z_dim, hidden=hidden, likelihood="bernoulli",
                activation="relu", dtype=dtype, seed=seed)
    x_train = model.check_data(x_train, "x_train")   # validated once, so steps skip the scan
    if batch_size > len(x_train):
        raise ValueError(f"batch_size must be at most the number of examples, {len(x_train)} "
                         f"(it is larger than the data), got {batch_size}")
    rng = np.random.default_rng(seed)
    products = matmul_products(model.x_dim, model.hidden, model.z_dim, batch_size, n_samples)
    operands = [_product_operands(p, dtype, rng) for p in products]

    say = Progress(progress).say
    phases = np.zeros(3)                 # data, loss_and_grads, optimiser: seconds, summed
    losses, used = [], {}
    step_seconds, product_seconds, phase_seconds = [], [], []
    clock = {"tic": time.perf_counter()}
    total_steps = warmup + repeats * steps + 1          # the last one under tracemalloc

    def step(model, opt, xb, rng, beta):
        # train's own step (estimator B, L = n_samples, dynamic binarisation), with its phases
        used["opt"] = opt
        losses.append(train_step(model, opt, xb, rng, n_samples=n_samples, beta=beta,
                                 phase_seconds=phases))
        return losses[-1]

    def timer(model, examples):
        """After each step of train: close a timed block, or start the memory step; stop at the end."""
        clock["steps"] = done = clock.get("steps", 0) + 1
        block_ends = done > warmup and (done - warmup) % steps == 0 and len(step_seconds) < repeats
        if done == warmup:
            _time_products(operands, 2)                 # warm BLAS up too
        elif block_ends:
            step_seconds.append((time.perf_counter() - clock["tic"]) / steps)
            phase_seconds.append(phases / steps)
            product_seconds.append(_time_products(operands, steps) / steps)
            say(f"  block {len(step_seconds)}/{repeats}: {batch_size / step_seconds[-1]:9.0f} examples/s, "
                f"matrix products {1e3 * product_seconds[-1].sum():.3f} ms of "
                f"{1e3 * step_seconds[-1]:.3f} ms per step")
        if done == total_steps - 1:                     # memory: one step under tracemalloc
            tracemalloc.start()
            clock["traced_before"], _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
        elif done == total_steps:
            _, clock["traced_peak"] = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            return True
        if done == warmup or block_ends:                # a block of `steps` steps starts here
            phases[:] = 0
            clock["tic"] = time.perf_counter()
        return False

    say(f"bench: {model!r}, batch {batch_size}, L = {n_samples}, Adam; "
        f"{warmup} warm-up steps, {repeats} x {steps} timed steps")
    if warmup == 0:
        _time_products(operands, 2)
    # the timed steps are minivae.train's own: the same minibatches, step and bookkeeping
    clock["tic"] = time.perf_counter()
    try:
        train(model, x_train, epochs=math.ceil(total_steps * batch_size / len(x_train)),
              batch_size=batch_size, optimizer="adam", lr=1e-3, n_samples=n_samples, seed=seed,
              verbose=False, step=step, on_step=timer)
    finally:
        if tracemalloc.is_tracing():
            tracemalloc.stop()
    opt, traced_before, traced_peak = used["opt"], clock["traced_before"], clock["traced_peak"]
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    max_rss *= 1 if sys.platform == "darwin" else 1024    # bytes on macOS, kilobytes on Linux

    examples_per_second = float(np.median([batch_size / s for s in step_seconds]))
    step_time = batch_size / examples_per_second        # the step time of the median block
    product_seconds = np.array(product_seconds)            # (repeats, products)
    flops = sum(p["flops"] for p in products)
    best = product_seconds.min(axis=0)                     # the fastest time of each product
    matmul_time = float(np.median(product_seconds.sum(axis=1)))
    peak = flops / best.sum()
    for p, seconds in zip(products, best):
        p["peak_flops"] = p["flops"] / seconds
    matmul = {"products": products, "flops_per_step": flops,
              "seconds_per_step": matmul_time, "peak_flops": peak,
              "achieved_flops": flops / step_time, "share_of_step": matmul_time / step_time,
              "bound_examples_per_second": batch_size / best.sum()}
    param_bytes = sum(p.nbytes for p in model.params.values())
    state_bytes = sum(v.nbytes for buffer in opt.state.values() for v in buffer.values())
    return {
        "config": {"x_dim": model.x_dim, "hidden": list(model.hidden), "z_dim": model.z_dim,
                   "batch_size": batch_size, "n_samples": n_samples, "dtype": dtype.name,
                   "likelihood": "bernoulli", "activation": "relu", "estimator": "B",
                   "optimizer": "adam", "lr": 1e-3, "seed": seed,
                   "data": data, "n_train": len(x_train)},
        "steps": steps, "repeats": repeats, "warmup": warmup,
        "examples_per_second": examples_per_second,
        "examples_per_second_runs": [batch_size / s for s in step_seconds],
        "step_seconds": step_time,
        "epoch_seconds": EPOCH_EXAMPLES / examples_per_second,
        "phases": dict(zip(("data", "loss_and_grads", "optimizer"),
                           np.median(phase_seconds, axis=0).tolist())),
        "matmul": matmul,
        "fraction_of_gemm_bound": examples_per_second / matmul["bound_examples_per_second"],
        "elementwise_share": 1.0 - matmul["share_of_step"],
        "memory": {"step_peak_bytes": traced_peak - traced_before, "params_bytes": param_bytes,
                   "optimizer_bytes": state_bytes,
                   "max_rss_bytes": int(max_rss)},
        "optimizer_blocks": block_choice(opt.block_sizes),
        "loss_first": losses[0], "loss_last": losses[-1],
        "machine": machine_info(),
    }


def block_choice(block_sizes):
    """What an optimiser's :class:`~minivae.utils.blocks.BlockSizes` measured: the size it
    chose (None: whole arrays; "measure": still measuring) and each candidate's median seconds
    of the update, keyed by its size as a string ("None" for whole arrays)."""
    return {"chosen": block_sizes.chosen,
            "median_seconds": {str(size): float(np.median(times)) if times else None
                               for size, times in block_sizes.seconds.items()}}


def _block_line(choice):
    def name(size):
        return "whole arrays" if size in (None, "None") else f"blocks of {size}"
    timed = ", ".join(f"{name(size)} {1e3 * t:.3f} ms" for size, t in choice["median_seconds"].items()
                      if t is not None)
    chosen = "still measuring" if choice["chosen"] == MEASURE else name(choice["chosen"])
    return f"optimizer walk       {chosen} (the update's median: {timed or 'not timed'})"


def time_budget(result):
    """Where the step's time goes: (label, seconds) pairs that add up to ``step_seconds``.

    The first is the GEMM-only bound's step (the products at their peak speed), so its
    share of the step is ``fraction_of_gemm_bound``; the rest is what the step spends
    beyond that bound: its products' time above peak (timed back to back), the rest of
    ``loss_and_grads`` (elementwise work and Python), the optimiser, the data, and the
    loop around them.  Under load the parts are timed at different moments, so one of
    them can come out below 0.
    """
    step, phases, m = result["step_seconds"], result["phases"], result["matmul"]
    at_peak = result["config"]["batch_size"] / m["bound_examples_per_second"]
    products = m["seconds_per_step"]
    parts = [("matrix products at peak speed", at_peak),
             ("matrix products above peak", products - at_peak),
             ("loss_and_grads besides products", phases["loss_and_grads"] - products),
             ("optimizer (Adam)", phases["optimizer"]),
             ("data (gather, binarise)", phases["data"])]
    return parts + [("loop and clocks", step - sum(seconds for _, seconds in parts))]


def format_report(result):
    """The human-readable report printed by ``minivae bench``."""
    c, m, mem, mach = result["config"], result["matmul"], result["memory"], result["machine"]
    arch = "-".join(str(n) for n in [c["x_dim"], *c["hidden"], c["z_dim"], *c["hidden"][::-1],
                                     c["x_dim"]])
    phases = result["phases"]
    step = result["step_seconds"]
    mib = 1024 ** 2
    lines = [
        f"model      {arch}, ReLU, Bernoulli, analytic KL, L = {c['n_samples']}, "
        f"batch {c['batch_size']}, Adam, {c['dtype']}",
        f"data       {c['data'] or 'given array'} ({c['n_train']} examples)",
        *machine_lines(mach),
        "",
        f"examples/s           {result['examples_per_second']:10.0f}   (median of "
        f"{result['repeats']} x {result['steps']} steps; runs: "
        + ", ".join(f"{r:.0f}" for r in result["examples_per_second_runs"]) + ")",
        f"step                 {1e3 * step:10.3f} ms: data {1e3 * phases['data']:.3f}, "
        f"loss_and_grads {1e3 * phases['loss_and_grads']:.3f}, "
        f"optimizer {1e3 * phases['optimizer']:.3f}",
        f"epoch of 60,000      {result['epoch_seconds']:10.2f} s",
        _block_line(result["optimizer_blocks"]),
        "",
        f"matrix products      {len(m['products'])} per step, "
        f"{m['flops_per_step'] / 1e6:.1f} MFLOP",
        f"  peak at these shapes  {m['peak_flops'] / 1e9:7.1f} GFLOP/s  (fastest time of each)",
        f"  achieved in the step  {m['achieved_flops'] / 1e9:7.1f} GFLOP/s  "
        f"= {100 * result['fraction_of_gemm_bound']:.0f}% of peak",
        f"  GEMM-only bound       {m['bound_examples_per_second']:7.0f} examples/s; "
        f"this step reaches {100 * result['fraction_of_gemm_bound']:.0f}% of it",
        f"  time in products      {100 * m['share_of_step']:5.1f}% of the step; elementwise "
        f"work and Python {100 * result['elementwise_share']:.1f}%",
        "",
        f"where the time goes   {100 * result['fraction_of_gemm_bound']:.0f}% of the GEMM-only "
        f"bound; the step's {1e3 * step:.3f} ms are",
        *(f"  {label:32s} {1e3 * seconds:7.3f} ms  {100 * seconds / step:5.1f}%"
          for label, seconds in time_budget(result)),
        "",
        f"memory               one step allocates at most {mem['step_peak_bytes'] / mib:.1f} MiB "
        f"(parameters {mem['params_bytes'] / mib:.1f} MiB, Adam's m and v "
        f"{mem['optimizer_bytes'] / mib:.1f} MiB); process peak {mem['max_rss_bytes'] / mib:.0f} MiB",
    ]
    return "\n".join(lines)
