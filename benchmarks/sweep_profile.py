"""Profile of one vmapped `run_many` SAM step at theorem-check size, by ablation (issue 16, sweep target).

Run: `python benchmarks/sweep_profile.py` (float32, as `sweep_throughput.py`; `--quick` for a smoke run). Size: the
row "p = 176" of sweep_throughput.py — two-layer net n = 64, d = 10, width 16 (p = 176), b = 8 without replacement,
1,000 configurations (10 η × 10 ρ × 10 seeds, optimizer and seed stacks zipped, as `sweep` calls `run_many`).

Rows, all timed in one run, interleaved round-robin (best of ``--rounds``), process CPU time (all threads of this
process) and wall time per configuration-step:
  - `run_many` as `sweep` calls it (grad norm recorded at the 10 logged steps), and without the grad norm;
  - ablations of the step body, each a vmapped `lax.scan` of `train.run`'s step with one part removed: the full
    step ("replica", checked to give `run_many`'s final parameters), without the batch draw (fixed indices, key
    splits kept), without the key splits too, the draw computed but the batch not gathered by it, a random window
    (one hash, a dynamic gather) instead of the draw, without the divergence masking, SGD (one gradient pass)
    instead of SAM, and an empty body (the scan's own cost);
  - one configuration alone (no vmap), per step.
The FLOP count per configuration-step is XLA's cost analysis of the compiled full step (one configuration),
next to the count by hand; achieved GFlop/s = FLOPs / (CPU µs per configuration-step).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _timing import machine  # noqa: E402

from sam_theory.optim import Batch, sam, sgd  # noqa: E402
from sam_theory.problems import as_jax, take, two_layer_net  # noqa: E402
from sam_theory.train import run_many, sample_indices, stack_optimizers  # noqa: E402
from sam_theory.tree import tree_all_finite  # noqa: E402

N, D, WIDTH, B = 64, 10, 16, 8


def configs(num: int):
    """``num`` SAM configurations (η, ρ geometric grids × seeds, flattened as `sweep` does) and their keys."""
    lrs, rhos = np.geomspace(0.01, 0.3, 10), np.geomspace(1e-3, 0.1, 10)
    seeds = np.arange(max(1, num // 100))
    lr, rho, seed = (g.ravel() for g in np.meshgrid(lrs, rhos, seeds, indexing="ij"))
    return lr, rho, jax.vmap(jax.random.key)(jnp.asarray(seed))


def ablated_run(prob, opts, keys, params, *, steps, draw=True, splits=True, mask=True, empty=False):
    """The step of `train.run` (key split, batch draw, optimizer step, divergence masking) with parts removed,
    vmapped over the zipped optimizer/seed stacks; returns the final parameters."""
    data, n, loss_fn = as_jax(prob.data), prob.n, prob.batch_loss

    def one(opt, key, params):
        def step(carry, _):
            params, state, key, diverged = carry
            if empty:
                return (params, state, key, diverged), None
            k_batch = k_opt = key
            if splits:
                key, k_batch, _, k_opt = jax.random.split(key, 4)
            fixed = jnp.arange(B)
            if draw == "window":  # a dynamic gather of b consecutive examples at a random offset (one hash)
                idx = (fixed + jax.random.bits(k_batch, (), jnp.uint32).astype(jnp.int32)) % n
            else:
                idx = sample_indices(k_batch, n, B, False) if draw else fixed
            examples = take(data, fixed if draw == "no_gather" else idx)
            if draw == "no_gather":  # the draw is computed (kept alive through the flag) but not gathered
                diverged = diverged | (jnp.sum(idx) < 0)
            new_params, new_state = opt.step(params, state, Batch(examples, loss_fn), k_opt)
            if not mask:
                return (new_params, new_state, key, diverged), None
            diverged = diverged | ~tree_all_finite(new_params)
            keep = lambda old, new: jnp.where(diverged, old, new)
            return (jax.tree.map(keep, params, new_params), jax.tree.map(keep, state, new_state), key,
                    diverged), None

        carry = (params, opt.init(params), key, jnp.array(False))
        return jax.lax.scan(step, carry, None, length=steps)[0][0]

    return jax.vmap(one)(opts, keys, params)


def flops_per_step(prob, opt, key, params) -> float:
    """XLA's FLOP count of one compiled full step (batch draw + SAM step), one configuration."""
    fn = jax.jit(lambda o, k, p: ablated_run(prob, jax.tree.map(lambda x: x[None], o), k[None],
                                             jax.tree.map(lambda x: x[None], p), steps=1))
    cost = fn.lower(opt, key, params).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost.get("flops", float("nan")))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run, not for RESULTS.md)")
    ap.add_argument("--configs", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    num, steps = (100, 50) if args.quick else (args.configs, args.steps)
    prob = two_layer_net(N, D, WIDTH, n_test=0, seed=0)
    lr, rho, keys = configs(num)
    num = len(lr)
    opts = stack_optimizers([sam(float(a), float(r)) for a, r in zip(lr, rho)])
    sgds = stack_optimizers([sgd(float(a)) for a in lr])
    params = jax.vmap(prob.init)(keys)
    kw = dict(steps=steps, batch_size=B, axes=(("optimizer", "seed"),))
    abl = {name: jax.jit(lambda o, k, p, f=flags: ablated_run(prob, o, k, p, steps=steps, **f))
           for name, flags in [("replica", {}), ("no_draw", dict(draw=False)),
                               ("no_draw_no_split", dict(draw=False, splits=False)), ("no_mask", dict(mask=False)),
                               ("no_gather", dict(draw="no_gather")), ("window", dict(draw="window")),
                               ("empty", dict(empty=True))]}
    calls = {
        "run_many (as sweep: grad norm at 10 logs)": (lambda: run_many(prob, opts, keys, every=steps // 10,
                                                                       track_grad_norm=True, **kw).params, num),
        "run_many, no grad norm": (lambda: run_many(prob, opts, keys, every=steps // 10, **kw).params, num),
        "replica of the step (split, draw, SAM, mask)": (lambda: abl["replica"](opts, keys, params), num),
        "  without the batch draw (fixed indices)": (lambda: abl["no_draw"](opts, keys, params), num),
        "  without the draw and the key splits": (lambda: abl["no_draw_no_split"](opts, keys, params), num),
        "  draw computed, not gathered (fixed batch)": (lambda: abl["no_gather"](opts, keys, params), num),
        "  random window instead of the draw (gather kept)": (lambda: abl["window"](opts, keys, params), num),
        "  without the divergence masking": (lambda: abl["no_mask"](opts, keys, params), num),
        "  SGD instead of SAM (one gradient pass)": (lambda: abl["replica"](sgds, keys, params), num),
        "  empty scan body": (lambda: abl["empty"](opts, keys, params), num),
        "one configuration alone (run_many, no vmap)": (
            lambda: run_many(prob, jax.tree.map(lambda x: x[0], opts), keys[0], every=steps // 10,
                             steps=steps, batch_size=B).params, 1),
    }
    ref = run_many(prob, opts, keys, every=steps, **kw).params
    rep = abl["replica"](opts, keys, params)
    same = all(bool(jnp.array_equal(a, b)) for a, b in zip(jax.tree.leaves(ref), jax.tree.leaves(rep)))
    for fn, _ in calls.values():  # compile
        jax.block_until_ready(fn())
    best = {name: (np.inf, np.inf) for name in calls}
    load = [os.getloadavg()[0]]
    for _ in range(args.rounds):
        for name, (fn, _) in calls.items():
            w, c = time.perf_counter(), time.process_time()
            jax.block_until_ready(fn())
            best[name] = (min(best[name][0], time.perf_counter() - w), min(best[name][1], time.process_time() - c))
        load.append(os.getloadavg()[0])
    one = jax.tree.map(lambda x: x[0], opts)
    flops = flops_per_step(prob, one, keys[0], jax.tree.map(lambda x: x[0], params))
    hand = 2 * 3 * B * (2 * WIDTH * D + 3 * WIDTH)  # SAM: 2 gradient passes ≈ 3× a forward of b examples each
    print(f"machine: {machine()}, {os.cpu_count()} cores; float32; load average {min(load):.2f}–{max(load):.2f}; "
          f"two_layer_net n={N}, d={D}, width={WIDTH} (p={prob.num_params}), b={B}, {num} configs × {steps} SAM "
          f"steps; replica's final params == run_many's: {same}")
    print(f"FLOPs per configuration-step: {flops:,.0f} (XLA cost analysis of one full step), ≈ {hand:,} by hand "
          f"(2 gradient passes of b = {B})")
    print("| step | CPU µs / config-step | wall µs / config-step | GFlop/s (CPU time) |")
    print("|---|---|---|---|")
    for name, (fn, members) in calls.items():
        wall, cpu = (1e6 * t / (members * steps) for t in best[name])
        print(f"| {name} | {cpu:.3f} | {wall:.3f} | {flops / cpu / 1e3:.2f} |")


if __name__ == "__main__":
    main()
