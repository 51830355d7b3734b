"""How fast could one core run Adam's step? A lower bound from memory traffic.

Prints, for the parameters of the standard model (652,824 float32 numbers):

* the speed of one pass over all of them (copy, in place, a sum of two arrays);
* minivae's Adam step: the gradient check, then Adam._update (its formula, 12 NumPy passes,
  the intermediates in temporaries) over whole arrays and over blocks of 16k-128k elements
  (minivae.utils.blocks.BLOCK_ELEMENTS);
* the same 12 passes written into one preallocated scratch array with out= (what the
  optimiser did before the formula was written plainly);
* three in-place passes that read p, g, m, v and write p, m, v once each: the memory
  traffic an Adam step cannot avoid, written with NumPy; a fused kernel (one pass,
  what NumPy cannot express) would take about this long or less.

Used by docs/performance.md, "What the targets would take".  Run it on a quiet machine:

    python benchmarks/adam_bound.py
"""
import time

import numpy as np

from minivae.optim import Adam
from minivae.utils import blocks
from minivae.vae import VAE


def median_seconds(f, repeats=200):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main():
    model = VAE(784, 20, hidden=(400,), dtype=np.float32)
    params = {k: v.copy() for k, v in model.params.items()}
    n = sum(p.size for p in params.values())
    rng = np.random.default_rng(0)
    grads = {k: (1e-3 * rng.standard_normal(p.shape)).astype(np.float32) for k, p in params.items()}
    opt = Adam(params)
    p_, g_ = list(params.values()), [grads[k] for k in params]
    m_, v_ = [opt.state["m"][k] for k in params], [opt.state["v"][k] for k in params]
    s_ = [np.empty_like(p) for p in p_]

    def copy():
        for g, s in zip(g_, s_):
            np.copyto(s, g)

    def in_place():
        for s in s_:
            s *= 1.0

    def add():
        for g, m, s in zip(g_, m_, s_):
            np.add(g, m, out=s)

    def adam_passes():
        for k, p in params.items():
            opt._update(p, grads[k], opt.state["m"][k], opt.state["v"][k])

    def out_passes():
        b1, b2, lr_t, eps_t = 0.9, 0.999, 1e-3, 1e-8
        for p, g, m, v, tmp in zip(p_, g_, m_, v_, s_):
            m *= b1
            np.multiply(g, 1 - b1, out=tmp)
            m += tmp
            v *= b2
            np.square(g, out=tmp)
            tmp *= 1 - b2
            v += tmp
            np.sqrt(v, out=tmp)
            tmp += eps_t
            np.divide(m, tmp, out=tmp)
            tmp *= lr_t
            p -= tmp

    def least_traffic():
        for p, g, m, v in zip(p_, g_, m_, v_):
            np.add(m, g, out=m)
            np.add(v, g, out=v)
            np.add(p, m, out=p)

    print(f"{n} float32 parameters, {len(params)} arrays")
    for name, f, bytes_per_number in (("one pass: copy g -> s", copy, 8),
                                      ("one pass: s *= 1 in place", in_place, 8),
                                      ("one pass: s = g + m", add, 12)):
        t = median_seconds(f)
        print(f"{name:45s} {t * 1e3:6.3f} ms  {n * bytes_per_number / t / 1e9:5.1f} GB/s")
    opt.t = 1
    for size in (None, 2 ** 14, 2 ** 15, 2 ** 16, 2 ** 17):
        blocks.BLOCK_ELEMENTS = size
        name = f"Adam.step, blocks of {size or 'whole arrays'}"
        print(f"{name:45s} {median_seconds(lambda: opt.step(grads)) * 1e3:6.3f} ms")
    blocks.BLOCK_ELEMENTS = None
    print(f"{'Adam._update only: the formula':45s} {median_seconds(adam_passes) * 1e3:6.3f} ms")
    print(f"{'the 12 passes into a scratch array (out=)':45s} {median_seconds(out_passes) * 1e3:6.3f} ms")
    print(f"{'read p, g, m, v, write p, m, v (3 passes)':45s} {median_seconds(least_traffic) * 1e3:6.3f} ms")


if __name__ == "__main__":
    main()
