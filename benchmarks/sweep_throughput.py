"""Sweep throughput: the vmapped `sam_theory.sweep` against a Python loop over configurations calling `train`.

Run: `python benchmarks/sweep_throughput.py` (float32). Throughput is configurations × steps per second; the
figure reported is the ratio of the two times measured in this run, both warm (compiled once beforehand: `train`
reuses its compiled function across configurations because hyperparameters are array leaves, and `sweep` caches
its compiled function). The first (compiling) sweep call is reported too.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _timing import best_time, machine  # noqa: E402

import sam_theory  # noqa: E402
from sam_theory import train  # noqa: E402
from sam_theory.optim import sam  # noqa: E402
from sam_theory.problems import two_layer_net  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args(argv)
    prob = two_layer_net(256, 16, 64, n_test=256, seed=0)
    grid = {"lr": np.logspace(-2, 0, 4), "rho": np.logspace(-3, -1, 4), "seed": [0, 1]}
    configs = [(lr, rho, s) for lr in grid["lr"] for rho in grid["rho"] for s in grid["seed"]]
    kw = dict(steps=args.steps, batch_size=args.batch, log_every=args.steps // 10)

    start = time.perf_counter()
    res = sam_theory.sweep(prob, "sam", grid, progress=False, **kw)
    t_first = time.perf_counter() - start
    t_sweep = best_time(lambda: sam_theory.sweep(prob, "sam", grid, progress=False, **kw).losses, repeats=3)

    def loop():
        return [train(prob, sam(float(lr), float(rho)), key=jax.random.key(int(s)), track_grad_norm=True,
                      **kw).losses for lr, rho, s in configs]

    t_loop = best_time(loop, repeats=3)
    ref = np.array(loop()).reshape(res.losses.shape)
    np.testing.assert_allclose(res.losses, ref, rtol=2e-4, equal_nan=True)  # float32: same runs, same results
    work = len(configs) * args.steps
    print(f"machine: {machine()}; float32; two_layer_net n=256, d=16, width=64 (p={prob.num_params}), b={args.batch}; "
          f"{len(configs)} configs × {args.steps} steps; load average {os.getloadavg()[0]:.2f}")
    print(f"vmapped sweep (warm): {work / t_sweep:,.0f} config·steps/s; Python loop over train (warm): "
          f"{work / t_loop:,.0f} config·steps/s; loop / sweep time: {t_loop / t_sweep:.2f}")
    print(f"first sweep call incl. compile: {t_first:.2f} s = {t_first / t_sweep:.1f} × the warm call")


if __name__ == "__main__":
    main()
