"""m-SAM's cost against SAM: the structured layer path (`sam_theory.optim.structured`) against the generic vmap.

Run: `python benchmarks/msam_cost.py` (float32). Two-layer ReLU MLP d = 64, width 256 (p = 16,640), n = 256,
batch b = 64. Every figure printed is a ratio of two times measured in this one run, interleaved round-robin (best of
``--rounds``), once with the process CPU time (robust to other jobs on a shared machine) and once with wall time.

1. One jitted step on the same batch, each method / the SAM step: 1-SAM (m = 1, unnormalized), m-SAM at m = 1
   (normalized) and m = b/8, by the structured path and by the generic vmap (``path="generic"``); then the
   structured step as m goes b → 1. The two paths are checked equal (float32 rounding) before timing.
2. Through `train` (one jitted `lax.scan` over ``--steps`` steps, batches drawn inside): the same methods / SAM.
3. A profile of the structured 1-SAM step: its pass 1 (per-example output gradients at x: forward and a backward
   to the layer outputs only) and its pass 2 (the perturbed network's gradient), each / the SAM step.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).parent))
import time  # noqa: E402

from _timing import interleaved_times, machine  # noqa: E402

from sam_theory import train  # noqa: E402
from sam_theory.optim import Batch, msam, sam  # noqa: E402
from sam_theory.optim import structured  # noqa: E402
from sam_theory.problems import as_jax, take, two_layer_net  # noqa: E402

LR, RHO = 0.05, 0.05


def methods(b):
    out = {"sam": sam(LR, RHO)}
    for path in ("structured", "generic"):
        out[f"1-sam (m=1, unnormalized), {path}"] = msam(LR, RHO, m=1, normalize=False, path=path)
        out[f"msam (m=1), {path}"] = msam(LR, RHO, m=1, path=path)
        out[f"msam (m={b // 8}), {path}"] = msam(LR, RHO, m=b // 8, path=path)
    return out


def step_costs(prob, b, number, rounds, clock):
    data = as_jax(prob.data)
    params = prob.init(jax.random.key(0))
    batch = Batch(take(data, jnp.arange(b)), prob.batch_loss)
    step = jax.jit(lambda opt, w, batch: opt.step(w, (), batch)[0])
    opts = methods(b)
    for name, opt in opts.items():
        if name.endswith("structured"):
            generic = opts[name.replace("structured", "generic")]
            err = max(float(jnp.max(jnp.abs(x - y)) / jnp.max(jnp.abs(y)))
                      for x, y in zip(jax.tree.leaves(step(opt, params, batch)),
                                      jax.tree.leaves(step(generic, params, batch))))
            assert err < 1e-4, f"{name}: structured and generic differ by {err:.2g}"
    ms = [b >> s for s in range(b.bit_length())]
    calls = {name: (step, (opt, params, batch)) for name, opt in opts.items()}
    calls.update({f"structured m={m}": (step, (msam(LR, RHO, m=m, path="structured"), params, batch)) for m in ms})
    calls.update(profile_calls(prob, b, params, batch))
    t = interleaved_times(calls, rounds=rounds, number=number, clock=clock)
    return {name: v / t["sam"] for name, v in t.items()}


def train_costs(prob, b, steps, rounds, clock):
    key = jax.random.key(0)
    run = lambda opt: train(prob, opt, steps=steps, batch_size=b, key=key, log_every=steps).params
    t = interleaved_times({name: (run, (opt,)) for name, opt in methods(b).items()}, rounds=rounds, clock=clock)
    return {name: v / t["sam"] for name, v in t.items()}


def profile_calls(prob, b, params, batch):
    """Pass 1 of the structured step alone, and one plain batch gradient (module docstring, item 3)."""
    def pass1(w):
        probe = structured._TapOps(w, b)
        shapes = jax.eval_shape(lambda p: (prob.structured_losses(p, batch.examples, probe), probe.taps)[1], w)
        taps = [jnp.zeros(s.shape, s.dtype) for s in shapes]
        return jax.grad(lambda t: jnp.sum(prob.structured_losses(w, batch.examples, structured._TapOps(w, b, t))))(taps)

    plain_grad = lambda w: jax.grad(prob.batch_loss)(w, batch.examples)
    return {"profile: pass 1 (output gradients at x)": (jax.jit(pass1), (params,)),
            "profile: one plain batch gradient": (jax.jit(plain_grad), (params,))}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--number", type=int, default=50, help="calls per timing")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (best of)")
    args = ap.parse_args(argv)
    b = args.batch
    mlp = two_layer_net(256, 64, 256, n_test=0, seed=0)
    print(f"machine: {machine()}; float32; MLP p={mlp.num_params}, b={b}; load average {os.getloadavg()[0]:.2f}")
    for clock_name, clock in (("process CPU time", time.process_time), ("wall time", time.perf_counter)):
        per_step = step_costs(mlp, b, args.number, args.rounds, clock)
        through_train = train_costs(mlp, b, args.steps, args.rounds, clock)
        print(f"[{clock_name}] method / SAM: one jitted step (same batch), and through train ({args.steps} steps)")
        for name in methods(b):
            print(f"   {name:<42} {per_step[name]:>6.2f} {through_train[name]:>8.2f}")
        print("   structured m-SAM step / SAM step, m = b → 1: "
              + ", ".join(f"{k.split()[-1]}: {v:.2f}" for k, v in per_step.items() if k.startswith("structured m=")))
        print("   " + ", ".join(f"{k} {v:.2f}" for k, v in per_step.items() if k.startswith("profile")) + " (/ SAM step)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
