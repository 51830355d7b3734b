"""`minivae bench --eval`: how fast the importance-sampled log-likelihood is, and what limits it.

One timed run is :func:`minivae.evaluate.log_likelihood` itself, nothing more::

    log_likelihood(model, x, k, batch_size=B, chunk=C)     k decoder passes per example,
                                                           C samples x B examples per pass

on ``n_examples`` images binarised once (as ``minivae evaluate`` does), for the
standard model 784-400-20-400-784 (ReLU, Bernoulli, float32), untrained: the time
does not depend on the weights.  What is measured (all in :func:`run`):

1. **Throughput.**  One untimed warm-up call on one batch, then ``repeats`` timed
   calls; examples/s and decoder passes/s (k per example) of the median call.
2. **Time split.**  Right after each call, the matrix products of that call (the
   decoder's two layers on C B rows, once per chunk, and the encoder's on B
   rows, once per batch: :func:`eval_products`) are run on fresh arrays of the
   same shapes and dtype, as often as the call ran them and as it runs them (one
   worker per BLAS thread, one-thread products).  Their
   time over the call's time is the share in products; the rest is elementwise
   work (softplus, the likelihood, log-densities, logsumexp) and Python.
3. **Memory.**  One call on one batch with two chunks under :mod:`tracemalloc`
   (peak memory does not depend on k or on the number of examples,
   docs/evaluation.md) and the process's peak resident size.
4. **Machine.**  :func:`minivae.bench.step.machine_info`: SIMD level, BLAS and its
   kernel, threads.

docs/performance.md has the numbers of the machines this was measured on.
"""
import resource
import sys
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from minivae import presets
from minivae.bench.step import _time_products, machine_info, machine_lines
from minivae.utils.blas import one_blas_thread
from minivae.utils.validation import check_count, check_float_dtype
from minivae.evaluate import default_chunk, log_likelihood
from minivae.data.preprocessing import fixed_binarization
from minivae.utils.progress import Progress
from minivae.vae import VAE

EVAL_STANDARD = presets.EVAL_BENCH   # the standard model's log-likelihood (minivae.presets)


def eval_products(x_dim, hidden, z_dim, n_examples, k, batch_size, chunk):
    """Every matrix product of one log_likelihood call: shapes, how often, FLOPs.

    Each batch of b <= batch_size examples is encoded once (rows b) and decoded
    on c b rows per chunk of c <= chunk samples.  Returns a list of dicts with
    ``name``, ``rows``, ``n_in``, ``n_out``, ``count`` (times run in the call)
    and ``flops`` (2 rows n_in n_out, per run).
    """
    shapes = {}
    for start in range(0, n_examples, batch_size):
        b = min(batch_size, n_examples - start)
        passes = [("encoder", [x_dim, *hidden, 2 * z_dim], b)]
        for done in range(0, k, chunk):
            passes.append(("decoder", [z_dim, *reversed(hidden), x_dim], min(chunk, k - done) * b))
        for prefix, sizes, rows in passes:
            for i in range(len(sizes) - 1):
                key = (f"{prefix}.{i}", rows, sizes[i], sizes[i + 1])
                shapes[key] = shapes.get(key, 0) + 1
    return [{"name": name, "rows": rows, "n_in": n_in, "n_out": n_out, "count": count,
             "flops": 2 * rows * n_in * n_out} for (name, rows, n_in, n_out), count in shapes.items()]


def _products_seconds(products, dtype, rng):
    """Wall seconds the products of one call take on fresh arrays, run as the evaluation runs
    them: one worker per BLAS thread, each product on one thread, each shape ``count`` times
    in all, the runs shared between the workers."""
    operands = [(rng.standard_normal((p["rows"], p["n_in"]), dtype=dtype),
                 rng.standard_normal((p["n_in"], p["n_out"]), dtype=dtype)) for p in products]

    def share(worker, workers):
        for (a, W), p in zip(operands, products):
            _time_products([(a, W)], len(range(worker, p["count"], workers)))

    with one_blas_thread() as workers, ThreadPoolExecutor(workers) as pool:
        tic = time.perf_counter()
        list(pool.map(share, range(workers), [workers] * workers))
        return time.perf_counter() - tic


def run(x_test, *, hidden=EVAL_STANDARD["hidden"], z_dim=EVAL_STANDARD["z_dim"],
        k=EVAL_STANDARD["k"], n_examples=EVAL_STANDARD["n_examples"],
        batch_size=EVAL_STANDARD["batch_size"], chunk=None, dtype=EVAL_STANDARD["dtype"],
        repeats=3, seed=0, data="", progress=None):
    """Time ``log_likelihood`` of a Bernoulli/ReLU VAE on the first n_examples rows of x_test.

    Parameters
    ----------
    x_test : array (N, P)
        Grey levels in [0, 1]; binarised once with ``seed`` (``fixed_binarization``).
    hidden, z_dim, dtype
        The model.
    k, n_examples, batch_size, chunk
        Samples per example, examples, and the evaluation's batch and chunk
        (default chunk: :func:`minivae.evaluate.default_chunk`).
    repeats : int
        Timed calls; the median is reported.
    seed : int
        Seeds the model, the binarisation and the noise.
    data : str
        A label of where x_test came from, copied into the result.
    progress : file, optional
        Where to write progress lines (the CLI passes stderr).

    Returns
    -------
    dict
        Plain numbers, lists and dicts (``json.dumps`` works on it): ``config``,
        ``examples_per_second``, ``passes_per_second``, ``seconds`` (median call)
        and ``seconds_runs``, ``matmul`` (``products``, ``flops``, ``seconds``,
        ``share``, ``flops_per_second``), ``elementwise_share``, ``memory``
        (``peak_bytes`` of one call, ``max_rss_bytes``), ``mean_log_likelihood``
        and ``machine``.
    """
    k, repeats = check_count(k, "k"), check_count(repeats, "repeats")
    n_examples, batch_size = check_count(n_examples, "n_examples"), check_count(batch_size, "batch_size")
    dtype = check_float_dtype(dtype)
    model = VAE(np.shape(x_test)[-1], z_dim, hidden=hidden, likelihood="bernoulli",
                activation="relu", dtype=dtype, seed=seed)
    x = model.check_data(x_test, "x_test")[:n_examples]
    x = fixed_binarization(x, seed)
    n_examples = len(x)
    if chunk is None:
        chunk = default_chunk(model, k, min(batch_size, n_examples))
    chunk = check_count(chunk, "chunk")
    products = eval_products(model.x_dim, model.hidden, model.z_dim, n_examples, k, batch_size, chunk)
    rng = np.random.default_rng(seed)
    say = Progress(progress).say
    say(f"bench --eval: {model!r}; log_likelihood k = {k}, {n_examples} examples, batch "
        f"{batch_size}, chunk {chunk}; {repeats} timed calls")

    def call(xs, k_call):
        return log_likelihood(model, xs, k_call, rng=np.random.default_rng(seed),
                              batch_size=batch_size, chunk=chunk)

    call(x[:batch_size], min(k, 2 * chunk))                  # warm-up: BLAS threads, caches
    seconds, product_seconds = [], []
    for r in range(repeats):
        tic = time.perf_counter()
        estimate = call(x, k)
        seconds.append(time.perf_counter() - tic)
        product_seconds.append(_products_seconds(products, dtype, rng))
        say(f"  call {r + 1}/{repeats}: {seconds[-1]:.2f} s, {n_examples / seconds[-1]:.1f} "
            f"examples/s; its matrix products alone {product_seconds[-1]:.2f} s")

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        call(x[:batch_size], min(k, 2 * chunk))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    max_rss *= 1 if sys.platform == "darwin" else 1024    # bytes on macOS, kilobytes on Linux

    median = float(np.median(seconds))
    matmul_seconds = float(np.median(product_seconds))
    flops = sum(p["flops"] * p["count"] for p in products)
    return {
        "config": {"x_dim": model.x_dim, "hidden": list(model.hidden), "z_dim": model.z_dim,
                   "k": k, "n_examples": n_examples, "batch_size": batch_size, "chunk": chunk,
                   "dtype": dtype.name, "likelihood": "bernoulli", "activation": "relu",
                   "seed": seed, "data": data},
        "repeats": repeats,
        "seconds": median, "seconds_runs": seconds,
        "examples_per_second": n_examples / median,
        "passes_per_second": n_examples * k / median,
        "matmul": {"products": products, "flops": flops, "seconds": matmul_seconds,
                   "share": matmul_seconds / median, "flops_per_second": flops / matmul_seconds},
        "elementwise_share": 1.0 - matmul_seconds / median,
        "memory": {"peak_bytes": peak, "max_rss_bytes": int(max_rss)},
        "mean_log_likelihood": float(np.mean(estimate)),
        "machine": machine_info(),
    }


def format_report(result):
    """The human-readable report printed by ``minivae bench --eval``."""
    c, m, mem = result["config"], result["matmul"], result["memory"]
    arch = "-".join(str(n) for n in [c["x_dim"], *c["hidden"], c["z_dim"], *c["hidden"][::-1],
                                     c["x_dim"]])
    mib = 1024 ** 2
    lines = [
        f"model      {arch}, ReLU, Bernoulli, {c['dtype']} (untrained)",
        f"evaluate   log_likelihood, k = {c['k']}, {c['n_examples']} binarised images of "
        f"{c['data'] or 'the given array'}, batch {c['batch_size']}, chunk {c['chunk']} "
        f"({c['chunk'] * c['batch_size']} decoder rows per pass)",
        *machine_lines(result["machine"]),
        "",
        f"examples/s           {result['examples_per_second']:10.1f}   (median of "
        f"{result['repeats']} calls: " + ", ".join(f"{s:.2f}" for s in result["seconds_runs"])
        + " s)",
        f"decoder passes/s     {result['passes_per_second']:10.0f}   "
        f"({1e6 / result['passes_per_second']:.2f} us per pass)",
        f"full test split      {10_000 / result['examples_per_second'] / 60:10.1f} min for "
        f"10,000 images at this k",
        f"matrix products      {m['flops'] / 1e12:.3f} TFLOP at {m['flops_per_second'] / 1e9:.1f} "
        f"GFLOP/s: {100 * m['share']:.1f}% of the time; elementwise work and Python "
        f"{100 * result['elementwise_share']:.1f}%",
        f"memory               one call allocates at most {mem['peak_bytes'] / mib:.1f} MiB; "
        f"process peak {mem['max_rss_bytes'] / mib:.0f} MiB",
        f"mean log-likelihood  {result['mean_log_likelihood']:.2f} nats (untrained model)",
    ]
    return "\n".join(lines)

