"""Sweep throughput and the cost of observables, all through `sam_theory.train.run_many` (issue 16).

Run: `python benchmarks/sweep_throughput.py` (float32; `--quick` for a smoke run). Every figure is a ratio of two
times measured in this run, both warm (compiled once beforehand):

1. vmapped `sweep` against a Python loop over `train` (one call per configuration; `train` reuses its compiled
   function across configurations because hyperparameters are array leaves), at three sizes: theorem-check size
   (two-layer net p = 176, 1,000 configurations × 1,000 SAM steps), p = 1,056 and p = 10,140 (fewer
   configurations and steps there, stated in the output). The loop is timed on a subset of the configurations
   and scaled (its cost is linear in the number of calls); the sweep members are checked against the loop's.
2. `observe` with λ_max (Lanczos, ``--lanczos`` iterations on the full training set) every 50 steps against the
   same `run_many` without it, SAM on a two-layer net with p = 10,140: full batch (b = n, the edge-of-stability
   setting of THEORY.md §7) and mini-batch b = n/4.
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
from _timing import best_wall_and_cpu, machine  # noqa: E402

import sam_theory  # noqa: E402
from sam_theory import train  # noqa: E402
from sam_theory.curvature import hvp, top_eigenvalues  # noqa: E402
from sam_theory.optim import sam  # noqa: E402
from sam_theory.problems import two_layer_net  # noqa: E402
from sam_theory.train import run_many  # noqa: E402

LANCZOS_ITERS = [8]


def lam_max(params, member):
    """λ_max(∇²f(params)) on the run's training data by a few Lanczos iterations (a `run_many` observable)."""
    return top_eigenvalues(hvp(member.loss, params), 1, num_iters=LANCZOS_ITERS[0], key=jax.random.key(0)).values[0]


def sweep_vs_loop(prob, num_configs: int, steps: int, batch: int, loop_configs: int, repeats: int) -> dict:
    lrs, rhos = np.geomspace(0.01, 0.3, 10), np.geomspace(1e-3, 0.1, 10)
    seeds = np.arange(max(1, num_configs // 100))
    grid = {"lr": lrs, "rho": rhos, "seed": seeds}
    total = len(lrs) * len(rhos) * len(seeds)
    kw = dict(steps=steps, batch_size=batch, log_every=max(1, steps // 10))
    start = time.perf_counter()
    res = sam_theory.sweep(prob, "sam", grid, progress=False, **kw)
    t_first = time.perf_counter() - start
    t_sweep, c_sweep = best_wall_and_cpu(lambda: sam_theory.sweep(prob, "sam", grid, progress=False, **kw).losses,
                                         repeats=repeats)
    pick = np.random.default_rng(0).choice(total, size=min(loop_configs, total), replace=False)
    configs = [np.unravel_index(i, res.shape) for i in pick]

    def loop():
        return [train(prob, sam(float(lrs[i]), float(rhos[j])), key=jax.random.key(int(seeds[s])),
                      track_grad_norm=True, **kw).losses for i, j, s in configs]

    t_loop, c_loop = (t * total / len(configs) for t in best_wall_and_cpu(loop, repeats=repeats))
    for (i, j, s), losses in zip(configs, loop()):  # float32: same runs; compared over the first tenth (the
        # sensitive members, near the stability edge, drift apart later by float32 round-off)
        np.testing.assert_allclose(res.losses[i, j, s, :2], losses[:2], rtol=2e-3, atol=1e-6)
    return {"p": prob.num_params, "configs": total, "steps": steps, "batch": batch, "t_sweep": t_sweep,
            "t_loop": t_loop, "t_first": t_first, "loop_configs": len(configs), "c_sweep": c_sweep, "c_loop": c_loop}


def observe_cost(prob, steps: int, batch: int, every: int, repeats: int) -> dict:
    opt, key = sam(0.05, 0.05), jax.random.key(0)
    kw = dict(steps=steps, batch_size=batch, every=every)
    plain = lambda: run_many(prob, opt, key, **kw)
    observed = lambda: run_many(prob, opt, key, observe=lam_max, **kw)
    jax.block_until_ready((plain(), observed()))  # compile both
    best = {"plain": (float("inf"),) * 2, "obs": (float("inf"),) * 2}
    for _ in range(repeats):  # interleaved, best of each: the shared machine's load drifts
        for name, fn in (("plain", plain), ("obs", observed)):
            best[name] = tuple(map(min, best[name], best_wall_and_cpu(fn, repeats=1)))
    (t_plain, c_plain), (t_obs, c_obs) = best["plain"], best["obs"]
    return {"p": prob.num_params, "n": prob.n, "batch": batch, "steps": steps, "every": every,
            "t_plain": t_plain, "t_obs": t_obs, "c_plain": c_plain, "c_obs": c_obs}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run, not for RESULTS.md)")
    ap.add_argument("--lanczos", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)
    LANCZOS_ITERS[0] = args.lanczos
    q = args.quick
    print(f"machine: {machine()}; float32; load average {os.getloadavg()[0]:.2f}", flush=True)
    sizes = [  # (problem, configs, steps, batch, configs timed in the loop)
        (two_layer_net(64, 10, 16, n_test=0, seed=0), 100 if q else 1000, 100 if q else 1000, 8, 20 if q else 100),
        (two_layer_net(256, 32, 32, n_test=0, seed=0), 100 if q else 200, 100 if q else 1000, 32, 10 if q else 40),
        (two_layer_net(256, 64, 156, n_test=0, seed=0), 100, 50 if q else 200, 32, 5 if q else 10),
    ]
    for prob, configs, steps, batch, loop_configs in sizes:
        r = sweep_vs_loop(prob, configs, steps, batch, loop_configs, args.repeats)
        work = r["configs"] * r["steps"]
        print(f"sweep vs loop: two_layer_net p={r['p']}, b={r['batch']}, {r['configs']} configs × {r['steps']} SAM "
              f"steps: sweep {r['t_sweep']:.2f} s ({work / r['t_sweep']:,.0f} config·steps/s), loop over train "
              f"{r['t_loop']:.2f} s (timed on {r['loop_configs']} configs, scaled; {work / r['t_loop']:,.0f} "
              f"config·steps/s); loop/sweep = {r['t_loop'] / r['t_sweep']:.1f} (wall), "
              f"{r['c_loop'] / r['c_sweep']:.1f} (process CPU time: {r['c_sweep']:.2f} s vs {r['c_loop']:.2f} s); "
              f"first sweep call incl. compile "
              f"{r['t_first']:.2f} s; load {os.getloadavg()[0]:.2f}", flush=True)
    big = two_layer_net(256, 64, 156, n_test=0, seed=0)
    for batch in (big.n, big.n // 4):
        r = observe_cost(big, 200 if q else 1000, batch, 50, args.repeats)
        print(f"observe λ_max (Lanczos {args.lanczos} its, full data) every {r['every']} steps: two_layer_net "
              f"p={r['p']}, n={r['n']}, b={r['batch']}, {r['steps']} SAM steps: with {r['t_obs']:.2f} s, without "
              f"{r['t_plain']:.2f} s, ratio {r['t_obs'] / r['t_plain']:.2f} (wall), {r['c_obs'] / r['c_plain']:.2f} (process "
              f"CPU time); load {os.getloadavg()[0]:.2f}",
              flush=True)


if __name__ == "__main__":
    main()
