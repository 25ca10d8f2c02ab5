"""§10.7: m-SAM test loss against the micro-batch size m, and RW-SAM against SAM and 1-SAM.

Setup: `common.DATA_PROCESS` regression, one width; batch b; m-SAM (normalized, ρ = 0.05; `sam_theory.optim.msam`:
one perturbation per micro-batch of size m, m ∈ {1, 2, 4, …, b}; m = b is SAM, m = 1 is 1-SAM), RW-SAM [recon]
(`sam_theory.optim.rwsam`: one batch-level perturbation of the Gibbs-reweighted batch, temperature T = 1, proxy
‖∇f_i‖; the library default, not tuned) and SGD, all with η = lr_c/(m_width + d), the same steps, batches and init.
Verdicts: (i) the per-seed OLS slope of test loss over log2 m is positive (smaller m, lower loss) beyond 2 SE;
(ii) RW-SAM beats SAM: loss(SAM) − loss(RW-SAM) > 0 beyond 2 SE; the recovered fraction
(loss_SAM − loss_RW)/(loss_SAM − loss_1SAM) is reported.
"""
from __future__ import annotations

import numpy as np

from .common import (
    DATA_PROCESS, NOISELESS, errorbars, finish, new_figure, per_seed, run_method, synthetic_lr, teacher_student)
from .runner import Outcome, fmt, ms, mse, positive, slopes, table

NAME = "msharpness"
SECTION = "§10.7"
CLAIM = "m-SAM gains grow as m shrinks; RW-SAM recovers part of the small-m gain with one batch-level perturbation."
PAPER = None
SETUP = (DATA_PROCESS + "; d = 20, n = 200, " + NOISELESS + ", 1000 test points; width 200; batch b = 32; m-SAM (ρ = 0.05) "
         "for m ∈ {1, 2, 4, 8, 16, 32}, RW-SAM (T = 1, grad-norm proxy, untuned library default), SGD; "
         "η = lr_c/(200 + d); float32.")

SETTINGS = {
    "full": {"width": 200, "ms": [1, 2, 4, 8, 16, 32], "d": 20, "n": 200, "n_test": 1000, "teacher_width": 4,
             "label_noise": 0.0, "lr_c": 1.0, "rho": 0.05, "temperature": 1.0, "batch_size": 32, "steps": 2000,
             "seeds": 5},
    "quick": {"width": 4, "ms": [1, 2, 4], "d": 5, "n": 20, "n_test": 20, "teacher_width": 2, "label_noise": 0.5,
              "lr_c": 1.0, "rho": 0.05, "temperature": 1.0, "batch_size": 4, "steps": 4, "seeds": 2},
}


def run(ctx, s) -> Outcome:
    prob = teacher_student(ctx, s, s["width"])
    step = {**s, "lr": synthetic_lr(s, s["width"])}
    ms_ = list(s["ms"])
    loss = np.array([per_seed(run_method(ctx, "msam", prob, step, "msam", rho=s["rho"], m=m)) for m in ms_])
    rw = per_seed(run_method(ctx, "rwsam", prob, step, "rwsam", rho=s["rho"], temperature=s["temperature"]))
    sgd = per_seed(run_method(ctx, "sgd", prob, step, "sgd"))
    sam, one = loss[-1], loss[0]
    slope = slopes(np.log2(ms_), loss)
    verdicts = [positive("m-SAM's test loss falls as m shrinks", "slope of test loss over log2 m", slope),
                positive("RW-SAM beats SAM (m = b)", "test loss SAM − RW-SAM", sam - rw)]
    recovered = (sam - rw) / (sam - one)
    rows = [(f"m-SAM m = {m}" + (" (1-SAM)" if m == 1 else " (SAM)" if m == s["batch_size"] else ""),
             fmt(*mse(loss[i])), fmt(*mse(sgd - loss[i]))) for i, m in enumerate(ms_)]
    rows += [("RW-SAM", fmt(*mse(rw)), fmt(*mse(sgd - rw))), ("SGD", fmt(*mse(sgd)), "0")]
    measured = table(("method", "final test loss", "gain over SGD"), rows)
    measured += (f"\n\nSlope of test loss over log2 m: {fmt(*mse(slope))}. RW-SAM's recovered fraction of the "
                 f"1-SAM gain, (SAM − RW)/(SAM − 1-SAM), seed mean: {np.mean(recovered):.3g} (median "
                 f"{np.median(recovered):.3g}); 1-SAM gain over SAM: {fmt(*mse(sam - one))}.")
    fig, axes = new_figure(1, width=6.0)
    errorbars(axes, ms_, loss, "m-SAM")
    for value, name, color in ((rw, "RW-SAM", "tab:green"), (sgd, "SGD", "tab:grey")):
        mean, se = mse(value)
        axes.axhline(mean, color=color, ls="--", label=f"{name} (± SE band)")
        axes.axhspan(mean - se, mean + se, color=color, alpha=0.15)
    axes.set_xscale("log", base=2)
    path = finish(fig, axes, ctx.figure_path("msharpness"), xlabel="micro-batch size m (b = m: SAM)",
                  ylabel="final test loss", title="m-sharpness: test loss against m (mean ± SE)")
    results = {"ms": ms_, "test_loss_msam": ms(loss), "test_loss_rwsam": ms(rw), "test_loss_sgd": ms(sgd),
               "slope_log2m": ms(slope), "recovered_fraction": ms(recovered)}
    return Outcome(measured, verdicts, results, [path])
