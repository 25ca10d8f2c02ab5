"""Batch moments by set partitions (THEORY.md §4.1) against batch enumeration, and the scale of r(T) (§5).

Run: `python benchmarks/batch_moments.py [--quick]`. Every ratio is measured in one run on one machine. Prints, for
`benchmarks/RESULTS.md`:
1. S_3, S_4 at n = 20, b = 4: partition formula vs enumerating the C(20, 4) = 4845 batches. Matrix-free (one
   product S_k v, linear regression p = 400, per-example HVPs) and dense (the full S_k matrix, p = 100: at p = 400
   the enumeration alone would take minutes on this machine).
2. The README curvature example: `hessian_moments` at n = 20, p = 400, b = 4, matrix-free, cold (compile included)
   and warm.
3. Per-partition cost of one matrix-free product E_σ v, in units of one per-example HVP sweep (all n examples).
4. The largest n (b = n/8) for which r(T) completes in 60 s cold, dense and matrix-free (p = 6).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

sys.path.insert(0, str(Path(__file__).parent))
from _timing import best_time, machine  # noqa: E402

from sam_theory.curvature import (BatchCurvature, expected_product, hessian_moments,  # noqa: E402
                                  partition_term, set_partitions)
from sam_theory.precision import float64  # noqa: E402
from sam_theory.problems import linear_regression  # noqa: E402
from sam_theory.problems.tanh_net import TanhNet  # noqa: E402
from sam_theory.stability import spectral_radius  # noqa: E402
from sam_theory.testing import random_psd_hessians  # noqa: E402


@jax.jit
def _enumerated_power(curv, idx, w, V, k_onehot):
    """Σ_ξ w_ξ H_ξ^k V over the enumerated batches (the old algorithm, kept here as the comparator)."""
    def body(acc, inputs):
        rows, wi = inputs
        out, U = 0.0, V
        for j in range(4):
            U = curv.batch_apply(rows, U)
            out = out + k_onehot[j] * U
        return acc + wi * out, None
    return lax.scan(body, jnp.zeros_like(V), (idx, w))[0]


def enumerated(curv, k, V):
    idx, w = curv.dist.enumerate(10**6)
    onehot = jnp.zeros(4).at[k - 1].set(1.0)
    return _enumerated_power(curv, jnp.asarray(idx), jnp.asarray(w), V, onehot)


def bench_partition_vs_enumeration():
    print("## 1. S_3, S_4 at n = 20, b = 4 (4845 batches): partition formula vs enumeration")
    print("| path | k | partition [ms] | enumeration [ms] | ratio | max rel diff |")
    prob = linear_regression(20, 400, seed=0, n_test=0)
    w = np.zeros(400)
    free = BatchCurvature.from_problem(prob, w, 4, method="matrix_free")
    v = jax.random.normal(jax.random.key(0), (400, 1))
    for k in (3, 4):
        part = lambda: expected_product(free, ("H",) * k, V=v)  # noqa: E731
        t_p = best_time(part, repeats=3)
        t_e = best_time(lambda: enumerated(free, k, v), repeats=2)
        diff = float(jnp.abs(part() - enumerated(free, k, v)).max() / jnp.abs(part()).max())
        print(f"| matrix-free, one product S_k v, p = 400 | {k} | {1e3 * t_p:.1f} | {1e3 * t_e:.1f} | "
              f"{t_e / t_p:.0f}× | {diff:.1e} |")
    prob = linear_regression(20, 100, seed=0, n_test=0)
    dense = BatchCurvature.from_problem(prob, np.zeros(100), 4, method="dense")
    eye = jnp.eye(100)
    for k in (3, 4):
        part = lambda: expected_product(dense, ("H",) * k)  # noqa: E731
        t_p = best_time(part, repeats=2)
        t_e = best_time(lambda: enumerated(dense, k, eye), repeats=1)
        diff = float(jnp.abs(part() - enumerated(dense, k, eye)).max() / jnp.abs(part()).max())
        print(f"| dense, full S_k matrix, p = 100 | {k} | {1e3 * t_p:.1f} | {1e3 * t_e:.1f} | {t_e / t_p:.0f}× | "
              f"{diff:.1e} |")


def bench_readme():
    print("## 2. README curvature example: hessian_moments, n = 20, p = 400, b = 4, matrix-free")
    prob = linear_regression(20, 400, seed=0, n_test=0)
    params = jnp.zeros(400)
    t0 = time.perf_counter()
    curv = BatchCurvature.from_problem(prob, params, batch_size=4, method="matrix_free")
    jax.block_until_ready(hessian_moments(curv).a)
    cold = time.perf_counter() - t0
    warm = best_time(lambda: hessian_moments(BatchCurvature.from_problem(prob, params, 4, method="matrix_free")).a,
                     repeats=2)
    print(f"cold (compile included) {cold:.2f} s, warm {warm:.2f} s")


def bench_per_partition():
    print("## 3. One matrix-free product E_σ v against one per-example HVP sweep (tanh net, n = 32, p = 408)")
    prob = TanhNet(n=32, d=16, width=24, seed=0)
    params = prob.init(jax.random.key(0))
    curv = BatchCurvature.from_problem(prob, params, method="matrix_free")
    v = jax.random.normal(jax.random.key(1), (curv.size, 1))
    # the unit: E_σ v for the word ("H",), σ = {1}: one sweep of the n per-example HVPs and their mean, through
    # the same code path (jit entry, state handling) as every term below
    t_sweep = best_time(lambda: partition_term(curv, ("H",), ((0,),), V=v), repeats=7)
    print(f"one sweep (H v = mean of n = 32 per-example HVPs): {1e3 * t_sweep:.2f} ms")
    print("| k | σ | kind | E_σ v [ms] | sweeps |")
    from sam_theory.curvature.batches import is_crossing
    for k in (3, 4):
        for sigma in set_partitions(k):
            interval = all(list(b) == list(range(b[0], b[-1] + 1)) for b in sigma)
            kind = "interval" if interval else ("crossing" if is_crossing(sigma) else "nested")
            t = best_time(lambda: partition_term(curv, ("H",) * k, sigma, V=v), repeats=7)
            print(f"| {k} | {sigma} | {kind} | {1e3 * t:.2f} | {t / t_sweep:.1f} |")


def bench_scale(limit=60.0):
    print(f"## 4. Largest n (b = n/8) with r(T) in {limit:.0f} s, cold, p = 6")
    print("| method | n | b | seconds | r(T) |")
    for method in ("dense", "matrix_free"):
        n = 100
        while n <= 3200:
            Hi = random_psd_hessians(n, 6, 0, noise=0.5, base=True)
            curv = BatchCurvature.from_hessians(Hi, n // 8)
            jax.clear_caches()
            t0 = time.perf_counter()
            r = spectral_radius(curv, 0.5, 0.1, method=method).value
            t = time.perf_counter() - t0
            print(f"| {method} | {n} | {n // 8} | {t:.1f} | {r:.6f} |")
            if t > limit:
                break
            n *= 2


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="1234")
    args = parser.parse_args()
    print(f"machine: {machine()}; 2-core CPU container shared with other jobs, no GPU")
    with float64():
        if "1" in args.only:
            bench_partition_vs_enumeration()
        if "2" in args.only:
            bench_readme()
        if "3" in args.only:
            bench_per_partition()
        if "4" in args.only:
            bench_scale()


if __name__ == "__main__":
    main()
