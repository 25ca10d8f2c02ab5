"""The seeds' 1-D regression picture: 10 against 100 ReLU neurons on the 12-point set, GD against SAM.

Setup: `sam_theory.problems.relu_1d` (THEORY.md §3.5; f(x) = Σ_j v_j relu(w_j x + b_j) + c), full-batch GD and
full-batch SAM (ρ = 0.05) from the same init, η(m) = lr_c/m (the NTK diagonal grows ∝ m), a fixed number of steps.

Simplicity measure (stated definition): the total variation of f′ on [x₁, x₁₂],

  TV(f′) = Σ_j |v_j| |w_j| · 1[x₁ < k_j < x₁₂],   k_j = −b_j / w_j   (f″ = Σ_j |v_j w_j|·δ(x − k_j)),

i.e. the summed slope change over the kinks inside the data range; smaller is simpler. It is computed in closed form
from the parameters and cross-checked from forward evaluations of f at the sorted kinks (`tv_pieces`). The reference is the TV(f′)
of the piecewise-linear interpolant of the 12 points (an interpolant with kinks only at the data).
Verdicts: (i) TV(GD) − TV(SAM) > 0 at 100 neurons; (ii) the relative reduction (TV_GD − TV_SAM)/TV_GD is larger at
100 neurons than at 10; both per seed by the 2-SE rule.
"""
from __future__ import annotations

import jax
import numpy as np

from sam_theory.problems import relu_1d
from sam_theory.problems.relu_1d import X_1D, Y_1D

from .common import label, new_figure, save
from .runner import Outcome, fmt, ms, mse, positive, table

NAME = "relu_1d"
SECTION = "§3.5 (the seeds' 1-D regression figure)"
CLAIM = ("[stated in issue 14, not in THEORY.md §10] On the 12-point 1-D regression (THEORY.md §3.5), the "
         "over-parameterized network (100 neurons) trained with SAM learns a simpler function than with GD, while "
         "with 10 (under-parameterized) neurons the two are alike.")
PAPER = "the seeds' 1-D regression figure (10 vs 100 neurons); THEORY.md gives its data set only, no numbers."
SETUP = ("the 12 points of THEORY.md §3.5; one hidden ReLU layer of 10 and of 100 units, w, b ~ N(0, 1), "
         "v ~ N(0, 1/m), c = 0; full-batch GD vs full-batch SAM (ρ = 0.05), η = lr_c/m with lr_c = 1.5, 50,000 "
         "steps (chosen on tuning seeds 0–2: GD then interpolates with 100 neurons; lr_c = 0.5 and 20,000 steps did "
         "not); 3 seeds; float32.")

SETTINGS = {
    "full": {"widths": [10, 100], "lr_c": 1.5, "rho": 0.05, "steps": 50000, "seeds": 3},
    "quick": {"widths": [10, 100], "lr_c": 1.5, "rho": 0.05, "steps": 10, "seeds": 2},
}
METHODS = ("gd", "sam")


def tv_closed_form(params, lo=X_1D[0], hi=X_1D[-1]) -> np.ndarray:
    """Σ_j |v_j w_j| over the kinks k_j = −b_j/w_j inside (lo, hi); leading axes of the leaves are kept."""
    w, b, v = (np.asarray(params[k], dtype=float) for k in ("w", "b", "v"))
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.where(w != 0, -b / w, np.inf)
    inside = (k > lo) & (k < hi)
    return np.sum(np.abs(v * w) * inside, axis=-1)


def forward(params, x) -> np.ndarray:
    """f(x) on a grid x for parameters with leading axes (…, m)."""
    w, b, v, c = (np.asarray(params[k], dtype=float) for k in ("w", "b", "v", "c"))
    pre = w[..., None, :] * x[:, None] + b[..., None, :]
    return np.sum(v[..., None, :] * np.maximum(pre, 0.0), axis=-1) + c[..., None]


def tv_pieces(params, lo=X_1D[0], hi=X_1D[-1]) -> np.ndarray:
    """TV(f′) on [lo, hi] from forward evaluations only: f is linear between consecutive kinks, so with the
    breakpoints lo < k_(1) < … < k_(K) < hi the slopes s_i = (f(p_{i+1}) − f(p_i))/(p_{i+1} − p_i) are exact and
    TV = Σ_i |s_{i+1} − s_i|. Leading axis of the leaves = seeds. Equals `tv_closed_form` unless two kinks coincide
    (then it is the smaller, true value)."""
    out = []
    for i in range(np.shape(params["w"])[0]):
        one = {k: np.asarray(v, dtype=float)[i] for k, v in params.items()}
        with np.errstate(divide="ignore", invalid="ignore"):
            kinks = np.where(one["w"] != 0, -one["b"] / one["w"], np.inf)
        points = np.unique(np.concatenate([[lo, hi], kinks[(kinks > lo) & (kinks < hi)]]))
        f = forward(one, points)
        out.append(np.sum(np.abs(np.diff(np.diff(f) / np.diff(points)))))
    return np.array(out)


def run(ctx, s) -> Outcome:
    widths = s["widths"]
    tv = np.full((len(widths), len(METHODS), ctx.num_seeds), np.nan)
    tv_check = np.full_like(tv, np.nan)
    train = np.full_like(tv, np.nan)
    x_plot = np.linspace(X_1D[0] - 0.3, X_1D[-1] + 0.3, 400)
    curves = {}
    for a, m in enumerate(widths):
        prob = relu_1d(m, seed=ctx.data_seed)
        for j, method in enumerate(METHODS):
            grid = {"lr": [s["lr_c"] / m], **({"rho": [s["rho"]]} if method == "sam" else {})}
            res = ctx.sweep(f"m{m}/{method}", prob, "sam" if method == "sam" else "sgd", grid, steps=s["steps"],
                            batch_size=prob.n, log_every=s["steps"], keep_params=True, track_grad_norm=False)
            params = jax.tree.map(lambda x: np.asarray(x).reshape((ctx.num_seeds,) + np.shape(x)[len(res.axes):]),
                                  res.params)
            tv[a, j] = tv_closed_form(params)
            tv_check[a, j] = tv_pieces(params)
            train[a, j] = res.losses[..., -1].reshape(-1)
            curves[(m, method)] = forward(params, x_plot)
    ref = float(np.sum(np.abs(np.diff(np.diff(Y_1D) / np.diff(X_1D)))))
    rel = (tv[:, 0] - tv[:, 1]) / tv[:, 0]  # (width, seed)
    verdicts = [positive("SAM learns a simpler function than GD at 100 neurons",
                         f"TV(f′) GD − SAM at m = {widths[-1]}", tv[-1, 0] - tv[-1, 1]),
                positive("the simplification is larger over- than under-parameterized",
                         f"relative TV reduction at m = {widths[-1]} minus at m = {widths[0]}", rel[-1] - rel[0])]
    rows = [(m, method.upper(), fmt(*mse(train[a, j])), fmt(*mse(tv[a, j])), fmt(*mse(tv_check[a, j])))
            for a, m in enumerate(widths) for j, method in enumerate(METHODS)]
    measured = table(("neurons", "method", "final train loss", "TV(f′) closed form", "TV(f′) from pieces (check)"),
                     rows)
    measured += (f"\n\nReference: TV(f′) of the piecewise-linear interpolant = {ref:.4g}. Relative reduction "
                 f"(TV_GD − TV_SAM)/TV_GD: " + ", ".join(f"m = {m}: {fmt(*mse(rel[a]))}" for a, m in
                                                        enumerate(widths)) + ".")
    fig, axes = new_figure(len(widths), width=5.0)
    for ax, m in zip(np.atleast_1d(axes), widths):
        for method, color in zip(METHODS, ("tab:blue", "tab:red")):
            for i, curve in enumerate(curves[(m, method)]):
                ax.plot(x_plot, curve, color=color, alpha=0.7, lw=1.2, label=method.upper() if i == 0 else None)
        ax.plot(X_1D, Y_1D, "ko", ms=4, label="data")
        label(ax, xlabel="x", ylabel="f(x)", title=f"{m} neurons: learned functions, {ctx.num_seeds} seeds")
    path = save(fig, ctx.figure_path("relu_1d_functions"))
    results = {"widths": widths, "methods": list(METHODS), "axes": "(width, method)", "tv": ms(tv),
               "tv_pieces_check": ms(tv_check), "train_loss": ms(train), "relative_reduction": ms(rel),
               "tv_piecewise_linear_interpolant": ref,
               "tv_closed_vs_pieces_max_rel_diff": float(np.nanmax(np.abs(tv - tv_check) / np.maximum(tv, 1e-12)))}
    return Outcome(measured, verdicts, results, [path])
