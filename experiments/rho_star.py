"""§10.4: the best SAM radius ρ* against width.

Setup: `common.DATA_PROCESS` regression at four widths; normalized SAM over a log grid of ρ (one vmapped sweep per
width), η(m) = lr_c/(m + d). Measured: final test loss over (ρ, seed); ρ*_s(m) = the grid ρ of least test loss
for seed s. Verdict: the per-seed OLS slope of log10 ρ* over log10 m is positive beyond 2 SE.
"""
from __future__ import annotations

import numpy as np

from .common import DATA_PROCESS, NOISELESS, errorbars, finish, label, new_figure, synthetic_lr, teacher_student
from .runner import Outcome, fmt, ms, mse, positive, slopes, table

NAME = "rho_star"
SECTION = "§10.4"
CLAIM = "The best ρ grows with width."
PAPER = None
SETUP = (DATA_PROCESS + "; d = 20, n = 200, " + NOISELESS + ", 1000 test points; widths m ∈ {25, 100, 400, 1600}; SAM with "
         "ρ ∈ {0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1}, η(m) = lr_c/(m + d), batch 20; float32.")

SETTINGS = {
    "full": {"widths": [25, 100, 400, 1600], "rhos": [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0], "d": 20,
             "n": 200, "n_test": 1000, "teacher_width": 4, "label_noise": 0.0, "lr_c": 1.0, "batch_size": 20,
             "steps": 2000, "seeds": 5},
    "quick": {"widths": [4, 8], "rhos": [0.01, 0.1], "d": 5, "n": 20, "n_test": 20, "teacher_width": 2,
              "label_noise": 0.0, "lr_c": 1.0, "batch_size": 4, "steps": 4, "seeds": 2},
}


def run(ctx, s) -> Outcome:
    widths, rhos = s["widths"], np.asarray(s["rhos"], dtype=float)
    loss = []
    for m in widths:
        res = ctx.sweep(f"m{m}", teacher_student(ctx, s, m), "sam",
                        {"lr": [synthetic_lr(s, m)], "rho": rhos.tolist()}, steps=s["steps"],
                        batch_size=s["batch_size"], log_every=s["steps"], track_grad_norm=False)
        loss.append(res.test_losses[0, ..., -1])  # (rho, seed)
    loss = np.array(loss)  # (width, rho, seed)
    filled = np.where(np.isfinite(loss), loss, np.inf)
    rho_star = rhos[np.argmin(filled, axis=1)]  # (width, seed)
    slope = slopes(np.log10(widths), np.log10(rho_star))
    verdicts = [positive("ρ* grows with width", "slope of log10 ρ* over log10 m", slope)]
    mean_curve = np.nanmean(loss, axis=-1)
    rows = [(m, fmt(*mse(np.log10(rho_star[i]))), f"{10 ** np.mean(np.log10(rho_star[i])):.3g}",
             f"{rhos[np.nanargmin(mean_curve[i])]:g}", fmt(*mse(np.nanmin(filled[i], axis=0))))
            for i, m in enumerate(widths)]
    measured = table(("width m", "log10 ρ* (per seed)", "geometric-mean ρ*", "argmin of seed-mean curve",
                      "best test loss"), rows)
    edge = {m: int(np.sum((rho_star[i] == rhos.max()) | (rho_star[i] == rhos.min()))) for i, m in enumerate(widths)}
    measured += (f"\n\nSlope of log10 ρ* over log10 m: {fmt(*mse(slope))}. Diverged (ρ, seed) runs: "
                 f"{int(np.sum(~np.isfinite(loss)))}. Seeds whose ρ* sits on an end of the grid (so the true ρ* may "
                 f"lie beyond it), per width: {edge}. An SE of 0 means every seed picked the same grid point.")
    fig, axes = new_figure(2, width=5.0)
    for i, m in enumerate(widths):
        errorbars(axes[0], rhos, loss[i], f"width {m}")
    label(axes[0], xlabel="ρ", ylabel="final test loss", title="test loss against ρ (mean ± SE)", xlog=True)
    errorbars(axes[1], widths, np.log10(rho_star), "log10 ρ* (per-seed argmin)")
    path = finish(fig, axes[1], ctx.figure_path("rho_star"), xlabel="width m", ylabel="log10 ρ*",
                  title="best ρ against width (mean ± SE)", xlog=True)
    results = {"widths": widths, "rhos": rhos.tolist(), "axes": "(width, rho)", "test_loss": ms(loss),
               "log10_rho_star": ms(np.log10(rho_star)), "slope": ms(slope), "seeds_at_grid_end": edge}
    return Outcome(measured, verdicts, results, [path])
