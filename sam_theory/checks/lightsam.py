"""LightSAM never diverges over a wide (η, ρ) grid where SAM does (THEORY.md §10.6, §2).

LightSAM-AdaGradNorm scales both its perturbation and its step by accumulated gradient norms, ε = ρ g/√u_t and
x ← x − η ĝ/√v_t, so no η is too large for it; SAM with a fixed step diverges once η exceeds about 2/λ_max. Its
convergence theory gives min_{t≤T} ‖∇f(x_t)‖ → 0 at the rate log T/√T (§10.6).
"""
from __future__ import annotations

import jax
import numpy as np

from ..curvature import eigvalsh, hessian
from ..plots.sweep import LightSAMGridData, plot_lightsam_grid
from ..problems import two_layer_net
from ..stats import Z_TREND, mean_se, summarize
from ..sweep import sweep
from .registry import CheckResult, above, at_least, at_most, register

N, D, WIDTH, BATCH = 32, 5, 16, 8
FIT_FROM = 0.1  # the log-log slope is fitted over t ∈ [FIT_FROM·T, T]


def running_min(x, axis=-1):
    """min_{s ≤ t} x_s along ``axis`` (NaN-free input)."""
    return np.minimum.accumulate(x, axis=axis)


def loglog_slopes(t, y):
    """Least-squares slope of log y against log t along the last axis of ``y``."""
    lt, ly = np.log(t), np.log(y)
    lt = lt - lt.mean()
    return ((ly - ly.mean(axis=-1, keepdims=True)) * lt).sum(axis=-1) / (lt ** 2).sum()


def reference_slope(t):
    """The log-log slope of log t/√t over the same window: fitted exactly like the data."""
    return float(loglog_slopes(t, np.log(t) / np.sqrt(t)))


@register("lightsam.no_divergence_grid", "trend", "§10.6", figure=plot_lightsam_grid,
          mutants=("sam_in_place_of_lightsam", "lightsam_in_place_of_sam"))
def no_divergence_grid(ctx) -> CheckResult:
    """LightSAM never diverges on a 3-decade (η, ρ) grid; SAM diverges at large η; LightSAM's min ‖∇f‖ decays.

    Settings rule (THEORY.md §10.6: a grid of 3–4 decades around SAM's divergence edge 2/λ_max): η ∈ 10^[−2, 1] in
    half decades (brackets 2/λ_max(∇²f(x₀)), computed here per seed and reported), ρ ∈ 10^[−3, 0] in decades, a
    small ReLU net (n = 32, d = 5, width 16, b = 8), 400 steps (quick) / 4000 (full); the decay slope is fitted
    over t ∈ [0.1T, T] (`FIT_FROM`). Divergence is the outcome under test: LightSAM tolerates 0 diverged runs; SAM
    must diverge in every run at the largest η and in none at the smallest.
    Data: this --seed's block, index 0; init and batches: indices 1…seeds.
    Mutants: SAM in place of LightSAM; LightSAM in place of SAM (the divergence side of the comparison).
    """
    steps, seeds = (400, 4) if ctx.quick else (4000, 8)
    log_every = steps // 100
    lrs, rhos = np.logspace(-2, 1, 7), np.logspace(-3, 0, 4)  # η in half decades: brackets 2/λ_max
    prob = two_layer_net(N, D, WIDTH, n_test=0, seed=ctx.seed_block(0))  # no test set: not used here
    grid = {"lr": lrs, "rho": rhos, "seed": np.array(ctx.seeds(seeds, 1))}
    kw = dict(steps=steps, batch_size=BATCH, log_every=log_every, progress=False)
    if ctx.mutated("sam_in_place_of_lightsam"):
        light = sweep(prob, "sam", grid, **kw)
    else:
        light = sweep(prob, "lightsam", grid, variant="adagrad_norm", **kw)
    if ctx.mutated("lightsam_in_place_of_sam"):
        sam = sweep(prob, "lightsam", grid, variant="adagrad_norm", track_grad_norm=False, **kw)
    else:
        sam = sweep(prob, "sam", grid, track_grad_norm=False, **kw)
    lam0 = np.asarray(jax.jit(jax.vmap(lambda k: eigvalsh(
        hessian(prob.loss, prob.init(jax.random.key(k))))[-1]))(grid["seed"]))
    edge = 2.0 / lam0  # 2/λ_max(∇²f(x_0)) per seed

    sam_div = np.asarray(sam.diverged)  # (lr, rho, seed)
    first_div = np.array([[lrs[np.argmax(sam_div[:, j, s])] if sam_div[:, j, s].any() else np.nan
                           for s in range(seeds)] for j in range(len(rhos))])  # (rho, seed)
    ratio = first_div / edge[None, :]

    # LightSAM: running min of ‖∇f(x_t)‖ over the logged steps, log-log slope over t ∈ [0.1 T, T].
    t = light.steps
    window = (t >= FIT_FROM * steps) & (t > 0)
    rmin = running_min(np.asarray(light.grad_norms), axis=-1)
    slopes = loglog_slopes(t[window], rmin[..., window])  # (lr, rho, seed)
    mean, se = mean_se(slopes, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        z_cells = np.nan_to_num(-mean / se, nan=-np.inf)  # a NaN slope (diverged or flat) fails
    worst = np.unravel_index(np.argmin(z_cells), z_cells.shape)
    ref = reference_slope(t[window])
    return CheckResult(
        [above("min over (η, ρ) cells of −slope/SE (LightSAM running min ‖∇f‖ vs t)", float(z_cells.min()),
               Z_TREND, "> 2: decays beyond 2 SE at every cell"),
         at_most("LightSAM diverged runs", int(np.sum(light.diverged)), 0, "declared tolerance 0 (the claim)"),
         at_least(f"SAM fraction diverged at η = {lrs[-1]:g}", float(sam_div[-1].mean()), 1.0, "every run"),
         at_most(f"SAM fraction diverged at η = {lrs[0]:g}", float(sam_div[0].mean()), 0.0, "no run")],
        {"net": f"two_layer_net relu n={N}, d={D}, width={WIDTH} (p={prob.num_params}), b={BATCH} w/o repl.",
         "steps": steps, "seeds (init and batches)": seeds, "eta grid": [float(v) for v in lrs],
         "rho grid": [float(v) for v in rhos], "2/λ_max(x₀) per seed": [float(v) for v in edge],
         "SAM diverged runs": f"{int(sam_div.sum())}/{sam_div.size}",
         "SAM fraction diverged per η (ascending)": [float(v) for v in sam_div.mean(axis=(1, 2))],
         "smallest diverging η / (2/λ_max) over (ρ, seed)":
             str(summarize(ratio[np.isfinite(ratio)])) if np.isfinite(ratio).any() else "none",
         "weakest cell": f"η={lrs[worst[0]]:g}, ρ={rhos[worst[1]]:g}: slope {mean[worst]:.3f} ± {se[worst]:.2g}",
         "median slope": float(np.nanmedian(mean)),
         "reference slope of log t/√t on the window (an upper-bound rate)": ref},
        LightSAMGridData(lrs, rhos, np.asarray(light.diverged).mean(-1), sam_div.mean(-1), edge, t, rmin, window,
                         f"two-layer net, {steps} steps, {seeds} seeds"))
