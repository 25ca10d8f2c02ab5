"""Cost of `Problem.losses` (vmapped per-example losses) at n = 10⁴, width = 10³ on a two-layer net.

Run: `python benchmarks/problems.py`. Prints the time of one jitted `losses(params)` call after compile and its
ratio to a dense batched forward pass written by hand (the floor: vmap should cost about the same).
"""
from __future__ import annotations

import sys
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).parent))
from _timing import best_time, machine  # noqa: E402

from sam_theory.problems import as_jax, two_layer_net  # noqa: E402


def main(n: int = 10_000, d: int = 20, width: int = 1_000):
    prob = two_layer_net(n, d, width, n_test=0, seed=0)
    params = prob.init(jax.random.key(0))
    X, y = as_jax(prob.data)
    losses = jax.jit(prob.batch_losses)
    dense = jax.jit(lambda p, X, y: 0.5 * (jax.nn.relu(X @ p["W"].T) @ p["v"] - y) ** 2)
    t_vmap = best_time(losses, params, (X, y), repeats=7)
    t_dense = best_time(dense, params, X, y, repeats=7)
    print(f"machine: {machine()}; two_layer_net n={n}, d={d}, width={width}, float32")
    print(f"losses(params) after compile: {t_vmap * 1e3:.1f} ms; vmapped / hand-batched forward: {t_vmap / t_dense:.2f}")


if __name__ == "__main__":
    main()
