"""§10.5: SAM's gain for the network against its linearization at initialization (NTK / lazy model).

Setup: `common.DATA_PROCESS` regression at three widths; the network and `sam_theory.problems.Linearized` of the
same network (ŷ(θ₀) + J_θ₀(θ − θ₀) by `jax.linearize`, θ₀ = the network's own init of the same seed), each trained
by SGD and by SAM (ρ = 0.05) with η(m) = lr_c/(m + d), the same steps, batches and init. Gain = test loss(SGD) −
test loss(SAM) per seed. Verdicts (per seed, averaged over widths): (i) gain(network) − gain(linearized) > 0 by the
2-SE rule; (ii) "the linearized gain disappears": holds if the linearized gain is not positive beyond 2 SE
(mean − 2 SE ≤ 0), does not hold if it is.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from sam_theory.problems import Linearized

from .common import (
    DATA_PROCESS, NOISELESS, errorbars, finish, label, new_figure, per_seed, sgd_and_sam_runs, synthetic_lr, teacher_student)
from .runner import FAILS, HOLDS, Outcome, fmt, ms, mse, positive, table

NAME = "ntk"
SECTION = "§10.5"
CLAIM = "Linearized (NTK / lazy) models: SAM's gain disappears."
PAPER = None
SETUP = (DATA_PROCESS + "; d = 20, n = 200, " + NOISELESS + ", 1000 test points; widths m ∈ {50, 200, 800}; network vs its "
         "linearization at init (jax.linearize); SGD vs SAM (ρ = 0.05), η(m) = lr_c/(m + d), batch 20; float32.")

SETTINGS = {
    "full": {"widths": [50, 200, 800], "d": 20, "n": 200, "n_test": 1000, "teacher_width": 4, "label_noise": 0.0,
             "lr_c": 1.0, "rho": 0.05, "batch_size": 20, "steps": 2000, "seeds": 5},
    "quick": {"widths": [4, 8], "d": 5, "n": 20, "n_test": 20, "teacher_width": 2, "label_noise": 0.5,
              "lr_c": 1.0, "rho": 0.05, "batch_size": 4, "steps": 4, "seeds": 2},
}
MODELS = ("network", "linearized")


def run(ctx, s) -> Outcome:
    widths = s["widths"]
    loss = np.full((len(MODELS), 2, len(widths), ctx.num_seeds), np.nan)  # (model, method[sgd, sam], width, seed)
    train = np.full_like(loss, np.nan)
    for c, m in enumerate(widths):
        net = teacher_student(ctx, s, m)
        for a, (model, prob) in enumerate(zip(MODELS, (net, Linearized(net)))):
            runs = sgd_and_sam_runs(ctx, f"{model}_m{m}", prob, {**s, "lr": synthetic_lr(s, m)})
            for b, method in enumerate(("sgd", "sam")):
                loss[a, b, c], train[a, b, c] = per_seed(runs[method]), per_seed(runs[method], "train_loss")
    gain = loss[:, 0] - loss[:, 1]  # (model, width, seed)
    lin = positive("SAM gains on the linearized model", "width-mean linearized gain", gain[1].mean(axis=0))
    vanishes = dataclasses.replace(lin, claim="SAM's gain disappears for the linearized model",
                                 status=FAILS if lin.status == HOLDS else HOLDS,
                                 rule="holds unless the linearized gain is positive beyond 2 SE (mean − 2·SE > 0)")
    verdicts = [positive("the gain is smaller for the linearized model", "width-mean gain(network) − gain(linearized)",
                         (gain[0] - gain[1]).mean(axis=0)), vanishes]
    rows = [(model, m, fmt(*mse(loss[a, 0, c])), fmt(*mse(loss[a, 1, c])), fmt(*mse(gain[a, c])),
             fmt(*mse(train[a, 0, c])), fmt(*mse(train[a, 1, c])))
            for a, model in enumerate(MODELS) for c, m in enumerate(widths)]
    measured = table(("model", "width m", "test loss SGD", "test loss SAM", "gain SGD − SAM", "train loss SGD",
                      "train loss SAM"), rows)
    fig, axes = new_figure(2, width=5.0)
    for a, model in enumerate(MODELS):
        errorbars(axes[0], widths, loss[a, 0], f"{model} SGD", ls="-" if a == 0 else "--")
        errorbars(axes[0], widths, loss[a, 1], f"{model} SAM", ls="-" if a == 0 else "--")
        errorbars(axes[1], widths, gain[a], model)
    label(axes[0], xlabel="width m", ylabel="final test loss", title="test loss (mean ± SE)", xlog=True)
    path = finish(fig, axes[1], ctx.figure_path("ntk_gain"), xlabel="width m", ylabel="gain SGD − SAM",
                  title="SAM gain: network vs linearization at init (mean ± SE)", xlog=True, zero=True)
    results = {"widths": widths, "models": list(MODELS), "axes": "(model, width)", "test_loss_sgd": ms(loss[:, 0]),
               "test_loss_sam": ms(loss[:, 1]), "gain": ms(gain),
               "train_loss_sgd": ms(train[:, 0]), "train_loss_sam": ms(train[:, 1])}
    return Outcome(measured, verdicts, results, [path])

