"""Step cost of SAM against SGD, and the scan trainer against a Python loop of per-step jitted calls.

Run: `python benchmarks/step_cost.py` (float32, linear regression p = 1000). Every figure printed is a ratio of
two times measured in this one run; `benchmarks/RESULTS.md` records them with the machine.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).parent))
from _timing import best_time, machine  # noqa: E402

from sam_theory import train  # noqa: E402
from sam_theory.optim import Batch, sam, sgd  # noqa: E402
from sam_theory.problems import as_jax, linear_regression, take  # noqa: E402
from sam_theory.train import sample_indices  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--p", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=2000)
    args = ap.parse_args(argv)
    prob = linear_regression(args.n, args.p, seed=0)
    data = as_jax(prob.data)
    w = prob.init(None)
    key = jax.random.key(0)
    batch = Batch(take(data, jnp.arange(args.batch)), prob.batch_loss)

    # 1. one step, jitted, same batch: SAM / SGD
    step = jax.jit(lambda opt, w: opt.step(w, (), batch)[0])
    t_sgd = best_time(step, sgd(0.1), w, number=200)
    t_sam = best_time(step, sam(0.1, 0.05), w, number=200)

    # 2. the scan trainer against a Python loop of per-step jitted calls (official repo's style)
    opt = sam(0.1, 0.05)
    t_scan = best_time(lambda: train(prob, opt, steps=args.steps, batch_size=args.batch, key=key,
                                     log_every=args.steps).params, repeats=3)

    @jax.jit
    def loop_step(w, key):
        key, kb = jax.random.split(key)
        b = Batch(take(data, sample_indices(kb, prob.n, args.batch, False)), prob.batch_loss)
        return opt.step(w, (), b)[0], key

    def python_loop():
        v, k = w, key
        for _ in range(args.steps):
            v, k = loop_step(v, k)
        return v

    t_loop = best_time(python_loop, repeats=3)
    print(f"machine: {machine()}; linear regression n={args.n}, p={args.p}, b={args.batch}, float32")
    print(f"SAM step / SGD step                      : {t_sam / t_sgd:6.2f}  (physical limit ≈ 2: two gradients)")
    print(f"Python loop / scan trainer ({args.steps} steps) : {t_loop / t_scan:6.2f}  "
          f"(scan {t_scan * 1e6 / args.steps:.1f} µs/step, loop {t_loop * 1e6 / args.steps:.1f} µs/step)")


if __name__ == "__main__":
    main()
