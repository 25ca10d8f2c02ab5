"""A PyTorch CPU SAM step (the two-call ``first_step``/``second_step`` style of the common PyTorch SAM) against ours.

Run: `python benchmarks/torch_sam.py`. Needs torch; without it the script prints why it skips and exits 0 (the
project's venv has no torch, so RESULTS.md has no row from it yet). Same MLP on both sides: the two-layer ReLU
network of `two_layer_net` (standard parameterization, no biases, f(x) = vᵀrelu(Wx), square loss ½(f − y)²), same
initial weights, same fixed batch, float32, SGD base with lr 0.05 and ρ = 0.05. The trajectories are checked equal
(10 steps) before timing. Figures: torch step time / our jitted step time (one call per step, like torch), and
torch step time / our per-step time inside the `lax.scan` trainer; both ratios of times measured in this run.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

try:
    import torch
except ImportError:  # pragma: no cover - depends on the machine
    torch = None

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _timing import best_time, machine  # noqa: E402

from sam_theory.optim import Batch, sam  # noqa: E402
from sam_theory.problems import as_jax, take, two_layer_net  # noqa: E402
from sam_theory.train import run_many  # noqa: E402

LR, RHO = 0.05, 0.05


def torch_sam_class():
    class SAM(torch.optim.Optimizer):
        """The widely used two-call PyTorch SAM: first_step ascends to x + ρ g/‖g‖, second_step restores x and
        applies the base optimizer to the gradient computed there."""

        def __init__(self, params, base_optimizer, rho=0.05, **kwargs):
            super().__init__(params, dict(rho=rho, **kwargs))
            self.base_optimizer = base_optimizer(self.param_groups, **kwargs)

        @torch.no_grad()
        def first_step(self):
            norm = torch.norm(torch.stack([p.grad.norm(2) for g in self.param_groups for p in g["params"]
                                           if p.grad is not None]), 2)
            for group in self.param_groups:
                scale = group["rho"] / (norm + 1e-12)
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    e_w = p.grad * scale
                    p.add_(e_w)
                    self.state[p]["e_w"] = e_w

        @torch.no_grad()
        def second_step(self):
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.sub_(self.state[p]["e_w"])
            self.base_optimizer.step()

    return SAM


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=500)
    args = ap.parse_args(argv)
    if torch is None:
        print(f"SKIPPED: torch is not installed for {sys.executable}; run this script with a Python that has torch "
              "(CPU build) and the sam_theory dependencies.")
        return 0
    prob = two_layer_net(args.n, args.d, args.width, n_test=0, seed=0)
    params = prob.init(jax.random.key(0))
    X, y = as_jax(prob.data)
    batch = Batch(take((X, y), jnp.arange(args.batch)), prob.batch_loss)
    opt = sam(LR, RHO)

    model = torch.nn.Sequential(torch.nn.Linear(args.d, args.width, bias=False), torch.nn.ReLU(),
                                torch.nn.Linear(args.width, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.from_numpy(np.array(params["W"])))
        model[2].weight.copy_(torch.from_numpy(np.array(params["v"])[None, :]))
    Xt = torch.from_numpy(np.array(X[: args.batch]))
    yt = torch.from_numpy(np.array(y[: args.batch]))
    tsam = torch_sam_class()(model.parameters(), torch.optim.SGD, rho=RHO, lr=LR)
    loss_fn = lambda: 0.5 * ((model(Xt)[:, 0] - yt) ** 2).mean()

    def torch_step():
        loss_fn().backward()
        tsam.first_step()
        tsam.zero_grad()
        loss_fn().backward()
        tsam.second_step()
        tsam.zero_grad()

    step = jax.jit(lambda w: opt.step(w, (), batch)[0])
    w = params
    for _ in range(10):
        torch_step()
        w = step(w)
    np.testing.assert_allclose(model[0].weight.detach().numpy(), np.asarray(w["W"]), rtol=1e-4, atol=1e-6)

    def torch_loop():
        for _ in range(args.steps):
            torch_step()

    def jax_loop():
        v = params
        for _ in range(args.steps):
            v = step(v)
        return v

    # the trainer itself on the same fixed batch: run_many over the batch as data with b = n (full batch, in order)
    scan = lambda w: run_many(prob, opt, jax.random.key(0), data=batch.examples, params=w, steps=args.steps,
                              batch_size=args.batch, every=args.steps).params
    t_torch = best_time(lambda: (torch_loop(), jnp.zeros(()))[1], repeats=3) / args.steps
    t_jax = best_time(jax_loop, repeats=3) / args.steps
    t_scan = best_time(scan, params, repeats=3) / args.steps
    print(f"machine: {machine()}; torch {torch.__version__} ({torch.get_num_threads()} threads); MLP d={args.d}, "
          f"width={args.width}, b={args.batch}, float32; load average {os.getloadavg()[0]:.2f}")
    print(f"torch SAM step (first_step/second_step): {t_torch * 1e6:.1f} µs; ours jitted step: {t_jax * 1e6:.1f} µs; "
          f"ours in lax.scan: {t_scan * 1e6:.1f} µs")
    print(f"torch / ours (jitted step): {t_torch / t_jax:.2f}; torch / ours (scan): {t_torch / t_scan:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
