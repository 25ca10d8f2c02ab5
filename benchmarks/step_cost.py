"""Step cost of every method of the SAM family against SGD, m-SAM's cost against m, and the scan trainer.

Run: `python benchmarks/step_cost.py` (float32). Every figure printed is a ratio of two times measured in this one
run; `benchmarks/RESULTS.md` records them with the machine and its load average.

1. One jitted step on the same batch, each method / SGD, on linear regression (p = 1000) and on a two-layer ReLU
   MLP (d = 64, width 256). One-ascent methods (SAM, USAM, n-SAM, ASAM, F-SAM, LightSAM) compute two gradients, so
   their physical floor is ≈ 2×; RW-SAM adds per-sample gradients (a vmap over the batch).
2. m-SAM as m goes from b down to 1: the vmapped micro-batch step (ours) against a sequential reference written
   here, a `lax.scan` over the b/m micro-batches (one perturbation and one descent gradient per micro-batch,
   accumulated); both over the SAM step. The two are checked equal before timing.
3. The scan trainer against a Python loop of per-step jitted calls (the official repositories' style).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).parent))
from _timing import best_time, machine  # noqa: E402

from sam_theory import train  # noqa: E402
from sam_theory.optim import (Batch, asam, fsam, lightsam, msam, nsam, rwsam, sam, sam_perturbation,  # noqa: E402
                              sgd, usam)
from sam_theory.optim.core import split_micro_batches  # noqa: E402
from sam_theory.problems import as_jax, linear_regression, take, two_layer_net  # noqa: E402
from sam_theory.train import sample_indices  # noqa: E402
from sam_theory.tree import tree_add_scaled  # noqa: E402

LR, RHO = 0.05, 0.05


def methods(batch_size):
    return {
        "sgd": sgd(LR), "sam": sam(LR, RHO), "usam": usam(LR, RHO),
        f"msam (m={batch_size // 8})": msam(LR, RHO, m=batch_size // 8),
        "nsam (full)": nsam(LR, RHO, source="full"), "nsam (indep. batch)": nsam(LR, RHO, source="independent_batch"),
        "asam": asam(LR, RHO), "fsam": fsam(LR, RHO), "lightsam (adagrad_norm)": lightsam(LR, RHO),
        "lightsam (adam)": lightsam(LR, RHO, variant="adam"), "rwsam (grad_norm)": rwsam(LR, RHO),
    }


def step_fn():
    return jax.jit(lambda opt, w, s, batch: opt.step(w, s, batch)[0])


def method_costs(prob, batch_size, number):
    data = as_jax(prob.data)
    params = prob.init(jax.random.key(0))
    batch = Batch(take(data, jnp.arange(batch_size)), prob.batch_loss, full=data,
                  extra=take(data, jnp.arange(batch_size, 2 * batch_size) % prob.n))
    step = step_fn()
    times = {name: best_time(step, opt, params, opt.init(params), batch, number=number)
             for name, opt in methods(batch_size).items()}
    return {name: t / times["sgd"] for name, t in times.items()}


def sequential_msam_step(lr, rho, m, params, batch):
    """Reference m-SAM step (THEORY.md §2): a `lax.scan` over the b/m micro-batches, one at a time."""
    micro = split_micro_batches(batch.examples, m)
    k = jax.tree.leaves(micro)[0].shape[0]

    def body(acc, examples):
        g = jax.grad(batch.loss_fn)(params, examples)
        g_adv = jax.grad(batch.loss_fn)(tree_add_scaled(params, sam_perturbation(g, rho), 1.0), examples)
        return jax.tree.map(jnp.add, acc, g_adv), None

    total, _ = jax.lax.scan(body, jax.tree.map(jnp.zeros_like, params), micro)
    return jax.tree.map(lambda x, g: x - lr * g / k, params, total)


def msam_costs(prob, batch_size, number):
    data = as_jax(prob.data)
    params = prob.init(jax.random.key(0))
    batch = Batch(take(data, jnp.arange(batch_size)), prob.batch_loss)
    step = step_fn()
    t_sam = best_time(step, sam(LR, RHO), params, (), batch, number=number)
    seq = jax.jit(sequential_msam_step, static_argnums=2)
    rows = []
    m = batch_size
    while m >= 1:
        opt = msam(LR, RHO, m=m, path="generic")
        ours, ref = step(opt, params, (), batch), seq(LR, RHO, m, params, batch)
        err = max(float(jnp.max(jnp.abs(a - b)) / (jnp.max(jnp.abs(b)) + 1e-30))
                  for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(ref)))
        assert err < 1e-4, f"m={m}: vmapped and sequential m-SAM differ by {err:.2g}"
        t_vmap = best_time(step, opt, params, (), batch, number=number)
        t_seq = best_time(seq, LR, RHO, m, params, batch, number=number)
        rows.append((m, t_vmap / t_sam, t_seq / t_sam, t_seq / t_vmap))
        m //= 4 if m > 4 else 2
    return rows


def scan_vs_loop(steps):
    prob = linear_regression(256, 1000, seed=0)
    data = as_jax(prob.data)
    w = prob.init(None)
    key = jax.random.key(0)
    opt = sam(0.1, 0.05)
    t_scan = best_time(lambda: train(prob, opt, steps=steps, batch_size=64, key=key, log_every=steps).params,
                       repeats=3)

    @jax.jit
    def loop_step(w, key):
        key, kb = jax.random.split(key)
        b = Batch(take(data, sample_indices(kb, prob.n, 64, False)), prob.batch_loss)
        return opt.step(w, (), b)[0], key

    def python_loop():
        v, k = w, key
        for _ in range(steps):
            v, k = loop_step(v, k)
        return v

    t_loop = best_time(python_loop, repeats=3)
    return t_loop / t_scan, t_scan / steps, t_loop / steps


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--number", type=int, default=100, help="calls per timing")
    args = ap.parse_args(argv)
    b = args.batch
    lin = linear_regression(256, 1000, seed=0)
    mlp = two_layer_net(256, 64, 256, n_test=0, seed=0)
    print(f"machine: {machine()}; float32; batch b={b}; load average {os.getloadavg()[0]:.2f} (1 min)")
    print("1. one jitted step / SGD step (same batch)")
    costs = {"linear regression p=1000": method_costs(lin, b, args.number),
             f"two-layer MLP p={mlp.num_params}": method_costs(mlp, b, args.number)}
    names = list(next(iter(costs.values())))
    print(f"   {'method':<26}" + "".join(f"{k:>28}" for k in costs))
    for name in names:
        print(f"   {name:<26}" + "".join(f"{c[name]:>28.2f}" for c in costs.values()))
    print("   (floor ≈ 2 for one-ascent methods: two gradients per step)")
    print(f"2. m-SAM step / SAM step as m goes b={b} → 1 (two-layer MLP); sequential = lax.scan over b/m micro-batches")
    print(f"   {'m':>4} {'vmapped/SAM':>12} {'sequential/SAM':>15} {'sequential/vmapped':>19}")
    for m, v, s, r in msam_costs(mlp, b, args.number):
        print(f"   {m:>4} {v:>12.2f} {s:>15.2f} {r:>19.2f}")
    ratio, t_scan, t_loop = scan_vs_loop(args.steps)
    print(f"3. Python loop / scan trainer ({args.steps} SAM steps, linear regression): {ratio:.2f} "
          f"(scan {t_scan * 1e6:.1f} µs/step, loop {t_loop * 1e6:.1f} µs/step)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
