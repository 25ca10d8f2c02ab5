"""Cost of Theorem A's exact criterion (THEORY.md §5), warm (compiled) timings in float64.

Run: `python benchmarks/stability.py`. Prints, for `benchmarks/RESULTS.md`:
1. r(T) on a diagonal linear net at an interpolating minimum, b = 1: dense eigh on symmetric matrices
   (p(p+1)/2 unknowns) vs matrix-free Lanczos (60 steps on vec Σ, per-example HVPs inside T), against p.
2. η_c(ρ) (48-point scan + 41 bisection steps, dense) and one Monte Carlo run of the linearized recursion.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _timing import machine  # noqa: E402

from sam_theory.testing import interpolating_diagonal_net  # noqa: E402
from sam_theory.curvature import BatchCurvature, per_example_hessians  # noqa: E402
from sam_theory.precision import float64  # noqa: E402
from sam_theory.stability import critical_learning_rate, simulate_linearized, spectral_radius  # noqa: E402


def warm(fn, repeats=3):
    fn()
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main():
    print(f"machine: {machine()}")
    with float64():
        print("| p | n | dense r(T) [ms] | matrix-free r(T), 60 Lanczos [ms] | |Δr| | Lanczos residual |")
        for d in (8, 12, 16):
            prob, x = interpolating_diagonal_net(0, n=5, d=d)
            Hi = np.asarray(per_example_hessians(prob, x))
            eta = 1.0 / np.linalg.eigvalsh(Hi.mean(0))[-1]
            dense, free = BatchCurvature.from_hessians(Hi), BatchCurvature.from_problem(prob, x, method="matrix_free")
            rd = spectral_radius(dense, eta, 0.1, method="dense")
            rm = spectral_radius(free, eta, 0.1, method="matrix_free")
            td = warm(lambda: spectral_radius(dense, eta, 0.1, method="dense"))
            tm = warm(lambda: spectral_radius(free, eta, 0.1, method="matrix_free"))
            print(f"| {2 * d} | 5 | {1e3 * td:.1f} | {1e3 * tm:.1f} | {abs(rd.value - rm.value):.1e} | "
                  f"{rm.residual:.1e} |")
        prob, x = interpolating_diagonal_net(0)
        curv = BatchCurvature.from_problem(prob, x)
        tc = warm(lambda: critical_learning_rate(curv, 0.05))
        ts = warm(lambda: simulate_linearized(curv, 0.05, 0.05, 100, 10000, jax.random.key(0)))
        print(f"η_c (p=16, n=5, b=1, scan 48 + bisection 41, dense): {1e3 * tc:.1f} ms; "
              f"Monte Carlo 10⁴ runs × 100 steps (p=16): {1e3 * ts:.1f} ms")


if __name__ == "__main__":
    main()
