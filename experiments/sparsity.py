"""§10.3: at a fixed parameter budget, a wide sparse network against a small dense one, under SGD and SAM.

Setup: `common.DATA_PROCESS` regression; a dense student of width m₀ against a student of width k·m₀ whose weights
are masked at initialization to sparsity 1 − 1/k (the same number of trainable weights, m₀(d + 1)), with the
official repo's three pruners (`sam_theory.problems.masks`: random, magnitude, SNIP; one global ranking over all
weights). The mask is computed at the very initialization that is trained: every run starts from the problem's reference
init θ₀ (drawn from the data seed, masked), so magnitude and SNIP scores belong to the trained weights; the seeds
vary the batches only (one compile per arm and method).
All runs use η = lr_c/(m₀ + d) (the dense net's step), the same steps and batches. Measured: final test loss.
Verdict per pruner: loss(dense, SAM) − loss(sparse, SAM) > 0 by the 2-SE rule (paired by seed).
"""
from __future__ import annotations

import jax
import numpy as np

from sam_theory.precision import float64
from sam_theory.problems import PRUNERS

from .common import DATA_PROCESS, NOISELESS, label, new_figure, per_seed, run_method, save, teacher_student
from .runner import Outcome, fmt, ms, mse, positive, table

NAME = "sparsity"
SECTION = "§10.3"
CLAIM = ("At a fixed parameter budget, a wider but sparse network (random or magnitude pruning mask at init) beats a "
         "small dense one under SAM.")
PAPER = None
SETUP = (DATA_PROCESS + "; d = 20, n = 200, " + NOISELESS + ", 1000 test points; dense width m₀ = 50 (1,050 weights) vs "
         "width 400 at sparsity 7/8 (1,050 kept); pruners random, magnitude, SNIP at init; every run from the one "
         "masked reference init θ₀ (data seed; the weights the mask was scored on), seeds vary the batches; SGD vs "
         "SAM (ρ = 0.05), η = lr_c/(m₀ + d), batch 20; float32.")

SETTINGS = {
    "full": {"dense_width": 50, "factor": 8, "d": 20, "n": 200, "n_test": 1000, "teacher_width": 4,
             "label_noise": 0.0, "lr_c": 1.0, "rho": 0.05, "batch_size": 20, "steps": 2000, "seeds": 5},
    "quick": {"dense_width": 4, "factor": 2, "d": 5, "n": 20, "n_test": 20, "teacher_width": 2, "label_noise": 0.5,
              "lr_c": 1.0, "rho": 0.05, "batch_size": 4, "steps": 4, "seeds": 2},
}
METHODS = ("sgd", "sam")


def run(ctx, s) -> Outcome:
    m0, k = s["dense_width"], s["factor"]
    step = {**s, "lr": s["lr_c"] / (m0 + s["d"])}
    arms = [("dense", m0, 0.0, "random")] + [(p, k * m0, 1.0 - 1.0 / k, p) for p in PRUNERS]
    loss = np.full((len(arms), len(METHODS), ctx.num_seeds), np.nan)
    kept, per_layer = {}, {}
    for a, (arm, width, sparsity, pruner) in enumerate(arms):
        prob = teacher_student(ctx, s, width, sparsity=sparsity, pruner=pruner)
        kept[arm] = prob.num_effective_params
        per_layer[arm] = {k: int(np.sum(v)) for k, v in (prob.mask or {}).items()}
        with float64():  # the very weights the mask was scored on (`Problem._configure` draws them in float64)
            theta0 = jax.tree.map(np.asarray, prob.init(jax.random.key(ctx.data_seed)))
        for j, method in enumerate(METHODS):
            res = run_method(ctx, arm, prob, step, method, params=theta0,
                             **({"rho": s["rho"]} if method == "sam" else {}))
            loss[a, j] = per_seed(res)
    verdicts = [positive(f"wide sparse ({arm}) beats small dense under SAM",
                         f"test loss dense − sparse[{arm}], SAM", loss[0, 1] - loss[a, 1])
                for a, (arm, *_) in enumerate(arms) if a > 0]
    rows = [(arm, width, f"{sp:.3f}", kept[arm], fmt(*mse(loss[a, 0])), fmt(*mse(loss[a, 1])),
             fmt(*mse(loss[a, 0] - loss[a, 1])), fmt(*mse(loss[0, 1] - loss[a, 1])) if a else "-")
            for a, (arm, width, sp, _) in enumerate(arms)]
    measured = table(("arm", "width", "sparsity", "kept weights", "test loss SGD", "test loss SAM",
                      "SAM gain (SGD − SAM)", "dense − this (SAM)"), rows)
    measured += ("\n\nKept weights per layer (one global ranking over all weights): "
                 + "; ".join(f"{arm}: {layers}" for arm, layers in per_layer.items() if layers)
                 + ". A layer with 0 kept weights makes the network's output identically 0 (no gradient reaches the "
                 "other layer), so SGD and SAM then end at the same loss, ½·E[y²] on the test set.")
    fig, axes = new_figure(1, width=6.0)
    x = np.arange(len(arms))
    for j, method in enumerate(METHODS):
        stats = ms(loss[:, j])
        axes.errorbar(x + 0.1 * (j - 0.5), stats["mean"], yerr=stats["se"], fmt="o", capsize=3,
                      label=method.upper())
    axes.set_xticks(x, [f"{arm}\n(m = {w})" for arm, w, *_ in arms])
    label(axes, xlabel="arm (same number of trainable weights)", ylabel="final test loss",
          title="fixed budget: dense vs wide sparse (mean ± SE)")
    path = save(fig, ctx.figure_path("sparsity"))
    results = {"arms": [a[0] for a in arms], "widths": [a[1] for a in arms], "sparsity": [a[2] for a in arms],
               "kept_weights": kept, "kept_per_layer": per_layer, "axes": "(arm, method[sgd, sam])", "test_loss": ms(loss),
               "sam_dense_minus_sparse": ms(loss[0, 1][None] - loss[1:, 1])}
    return Outcome(measured, verdicts, results, [path])
