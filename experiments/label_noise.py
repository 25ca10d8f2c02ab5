"""§10.2: SAM's gain against label noise, with and without weight decay.

Setup: teacher–student binary classification — x ~ N(0, I_d), clean label sign(teacher(x)) of a random two-layer
ReLU teacher, a fraction r ∈ {0, 0.2, 0.4} of the training labels flipped (test labels clean) — learned by a
two-layer ReLU student with logistic loss at three widths; SGD against SAM (ρ = 0.05) with the same base optimizer,
η(m), steps, batches and init, each with weight decay λ (penalty (λ/2)‖x‖², not perturbed, as in the official
SAM-overparam code) and without. Measured: clean test accuracy; gain = acc(SAM) − acc(SGD) per seed.
Verdicts (per seed, averaged over the widths): (i) gain(r = 0.4) − gain(r = 0) > 0 with weight decay;
(ii) gain with weight decay − gain without, at r = 0.4, > 0; both by the 2-SE rule.
"""
from __future__ import annotations

import numpy as np

from .common import errorbars, label, new_figure, save, sgd_and_sam, synthetic_lr, teacher_student
from .runner import Outcome, fmt, ms, mse, positive, table

NAME = "label_noise"
SECTION = "§10.2"
CLAIM = "The gain is larger with label noise; it needs regularization (weight decay or early stopping) or it vanishes."
PAPER = None
SETUP = ("teacher–student binary classification (d = 20, teacher width 4, n = 200, 1000 clean test points), flipped "
         "training-label fraction r ∈ {0, 0.2, 0.4}; two-layer ReLU student, logistic loss, widths m ∈ {50, 200, 800}; "
         "SGD vs SAM (ρ = 0.05), η(m) = lr_c/(m + d), batch 20; weight decay λ = 5e-3 (not perturbed) vs none; "
         "float32.")

SETTINGS = {
    "full": {"widths": [50, 200, 800], "rates": [0.0, 0.2, 0.4], "weight_decay": 5e-3, "d": 20, "n": 200,
             "n_test": 1000, "teacher_width": 4, "loss": "logistic", "lr_c": 2.0, "rho": 0.05, "batch_size": 20,
             "steps": 2000, "seeds": 5},
    "quick": {"widths": [5], "rates": [0.0, 0.4], "weight_decay": 5e-3, "d": 5, "n": 20, "n_test": 20,
              "teacher_width": 2, "loss": "logistic", "lr_c": 2.0, "rho": 0.05, "batch_size": 4, "steps": 4,
              "seeds": 2},
}


def run(ctx, s) -> Outcome:
    widths, rates, wds = s["widths"], s["rates"], (s["weight_decay"], 0.0)
    acc = np.full((2, len(wds), len(rates), len(widths), ctx.num_seeds), np.nan)  # (method, wd, rate, width, seed)
    for a, wd in enumerate(wds):
        for b, r in enumerate(rates):
            for c, m in enumerate(widths):
                prob = teacher_student(ctx, s, m, label_noise=r, weight_decay=wd)
                out = sgd_and_sam(ctx, f"wd{wd:g}_r{r:g}_m{m}", prob, {**s, "lr": synthetic_lr(s, m)},
                                  "test_accuracy")
                acc[0, a, b, c], acc[1, a, b, c] = out["sgd"], out["sam"]
    gain = acc[1] - acc[0]  # (wd, rate, width, seed)
    noise_effect = (gain[0, -1] - gain[0, 0]).mean(axis=0)
    reg_effect = (gain[0, -1] - gain[1, -1]).mean(axis=0)
    verdicts = [
        positive("the gain is larger with label noise (with weight decay)",
                 f"width-mean gain(r = {rates[-1]:g}) − gain(r = 0)", noise_effect),
        positive("the gain needs regularization", f"width-mean gain with wd − without, at r = {rates[-1]:g}",
                 reg_effect),
        positive("SAM gains without regularization at the highest noise",
                 f"width-mean gain without wd at r = {rates[-1]:g}", gain[1, -1].mean(axis=0)),
    ]
    rows = []
    for a, wd in enumerate(wds):
        for b, r in enumerate(rates):
            for c, m in enumerate(widths):
                rows.append((f"{wd:g}", f"{r:g}", m, fmt(*mse(acc[0, a, b, c])), fmt(*mse(acc[1, a, b, c])),
                             fmt(*mse(gain[a, b, c]))))
    measured = table(("weight decay", "noise r", "width m", "test acc SGD", "test acc SAM", "gain SAM − SGD"), rows)
    fig, axes = new_figure(2, width=5.0)
    for a, (ax, wd) in enumerate(zip(axes, wds)):
        for c, m in enumerate(widths):
            errorbars(ax, np.asarray(rates) + 0.004 * (c - 1), gain[a, :, c], f"width {m}")
        label(ax, xlabel="label-noise rate r", ylabel="test-accuracy gain SAM − SGD",
              title=f"weight decay {wd:g} (mean ± SE)", zero=True)
    path = save(fig, ctx.figure_path("label_noise_gain"))
    results = {"widths": widths, "rates": rates, "weight_decays": list(wds), "axes": "(weight decay, rate, width)",
               "test_accuracy_sgd": ms(acc[0]), "test_accuracy_sam": ms(acc[1]), "gain": ms(gain),
               "noise_effect": ms(noise_effect), "regularization_effect": ms(reg_effect)}
    return Outcome(measured, verdicts, results, [path])
