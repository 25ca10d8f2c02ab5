"""Theorem A (iv), THEORY.md §5: SAM selects flatter, more uniform minima than SGD, and more so when wider.

Both checks train SGD and stochastic USAM (same batch for ascent and descent, §5) from the same init and the same
batch sequence per seed (`sam_theory.stability.selection.minima_moments`), to a near-interpolating point, and compare
the Hessian moments there: a = λ_max(H), s_k = λ_max(S_k)^{1/k}, S_k = E_ξ[H_ξ^k] − H^k with the training batch
size b = 1 (§4). "SGD" is USAM with ρ = 0 — the same update x − η∇f_ξ(x) (§5: "ρ = 0 is SGD"); running both as one
optimizer kind vmaps them in one compile, and tests/test_stability_selection.py checks that `sgd(η)` and
`usam(η, 0)` give identical moments. s_3 is the real cube root of λ_max(S_3), which may be negative when the H_i do
not commute; "smaller" is as a signed number, the quantity that enters the necessary condition via 2η²ρ s_3³.

Linear regression is useless here (its Hessian is the same at every interpolating minimum, §5), so the problems are a
diagonal linear network, a two-layer ReLU network and matrix factorization, in regimes where SGD is stable (no
divergence, near-interpolation) and USAM's extra term ηρH_ξ² matters. Each setting's (η, ρ, steps) is in `SETTINGS`.
"""
from __future__ import annotations

import numpy as np

from ..optim import usam
from ..problems import diagonal_linear_net, matrix_factorization, two_layer_net
from ..stability.selection import MOMENTS, minima_moments
from .registry import CheckResult, register
from ..stats import Z_TREND, direction_holds, mean_se

BATCH = 1
MAX_EXAMPLE_LOSS = 1e-4  # near-interpolation: every f_i(x_T) ≤ 1e-4 (|residual| ≤ 1.4e-2) for every seed and run


def _diagonal(d, seed):
    return diagonal_linear_net(n=20, d=d, k=3, alpha=0.1, n_test=0, seed=seed)


# name: (problem factory(seed), η, ρ, steps quick, steps full, description)
SETTINGS = {
    "diagonal_net": (lambda seed: _diagonal(120, seed), 0.05, 0.1, 4000, 8000,
                     "diagonal linear net u⊙v, n=20, d=120, k=3, α=0.1"),
    "two_layer_net": (lambda seed: two_layer_net(20, 5, 32, teacher_width=4, n_test=0, seed=seed), 0.02, 0.05,
                      30000, 60000, "two-layer ReLU net, n=20, input d=5, width m=32, teacher width 4, standard param."),
    "matrix_factorization": (lambda seed: matrix_factorization(6, 6, 2, 8, init_scale=0.5, seed=seed), 0.1, 0.2,
                             12000, 24000, "matrix factorization 6×6, r★=2, inner rank r=8, init scale 0.5, all 36 "
                             "entries observed"),
}
# The overparameterization sweeps: name: (knob, values, problem factory(value, seed), η, ρ, steps, description)
WIDTH_SETTINGS = {
    "diagonal_net": ("d", (30, 60, 120), _diagonal, 0.05, 0.1, 20000,
                     "diagonal linear net u⊙v, n=20, k=3, α=0.1, p = 2d"),
    "matrix_factorization": ("r", (2, 4, 8, 16),
                             lambda r, seed: matrix_factorization(6, 6, 2, r, init_scale=0.5, seed=seed), 0.1, 0.2,
                             12000, "matrix factorization 6×6, r★=2, inner rank r (r = r★: no overparameterization), "
                             "init scale 0.5, p = 12r"),
}


def _run(problem, eta, rho, seeds, steps):
    return minima_moments(problem, {"SGD": usam(eta, 0.0), "SAM": usam(eta, rho)}, seeds=seeds, steps=steps,
                          batch_size=BATCH, method="dense")


def _interpolation(res) -> tuple[bool, str]:
    """Whether every run converged (no divergence, max_i f_i ≤ MAX_EXAMPLE_LOSS), and the figures."""
    ok, parts = True, []
    for name in res.names:
        ok &= not res.diverged[name].any() and bool(np.all(res.max_example_loss[name] <= MAX_EXAMPLE_LOSS))
        parts.append(f"{name}: f(x_T) max {np.max(res.final_loss[name]):.2g}, max_i f_i {np.max(res.max_example_loss[name]):.2g}"
                     f", diverged {int(res.diverged[name].sum())}")
    return ok, f"f(x_0) mean {np.mean(res.initial_loss):.3g}; " + "; ".join(parts)


@register("theorem_a.sam_minima_flatter", "trend", "§5")
def sam_minima_flatter(ctx) -> CheckResult:
    """Paired (same init, same batches) SGD − SAM differences of a, s_2, s_3, s_4 > 2 SE on each problem."""
    num_seeds = 8 if ctx.quick else 16
    seeds = np.arange(num_seeds) + 1000 * ctx.seed
    ok, zs, lines, data = True, [], [], {}
    for label, (factory, eta, rho, steps_q, steps_f, desc) in SETTINGS.items():
        steps = steps_q if ctx.quick else steps_f
        res = _run(factory(ctx.seed), eta, rho, seeds, steps)
        conv, conv_text = _interpolation(res)
        ok &= conv
        parts = []
        for m in MOMENTS:
            holds, s = direction_holds(res.paired_gap(m, "SGD", "SAM"))
            ok &= holds
            zs.append(s.z)
            sgd_m, sam_m = (_fmt(res.moment(k, m)) for k in ("SGD", "SAM"))
            parts.append(f"{m}: SGD {sgd_m}, SAM {sam_m}, SGD−SAM {s} (z={s.z:.1f}{'' if holds else ', FAILS'})")
        lines.append(f"[{label}] {desc}, p={res.p}, η={eta}, ρ={rho}, {steps} steps, b={BATCH}: "
                     + "; ".join(parts) + f". Interpolation{'' if conv else ' NOT reached'}: {conv_text}")
        data[label] = res
    detail = (f"{num_seeds} seeds; per seed SGD (= USAM ρ=0) and USAM from the same init and batch sequence, b={BATCH} "
              f"without replacement; moments by dense per-example Hessians at x_T with S_k for b={BATCH} (§4); s_3 "
              f"compared as the signed real cube root of λ_max(S_3). Pass iff for every problem and moment the paired "
              f"mean difference SGD − SAM exceeds {Z_TREND:g} SE and every run reaches max_i f_i(x_T) ≤ "
              f"{MAX_EXAMPLE_LOSS:g} without divergence. Measured: the smallest z = mean/SE. " + " | ".join(lines))
    return CheckResult.legacy(ok, float(min(zs)), Z_TREND, detail, data={"results": data})


def _relative_gap(res, m):
    """(SGD − SAM)/SGD per seed: the fraction of the SGD minimum's moment that SAM removes."""
    return res.paired_gap(m, "SGD", "SAM", relative=True)


@register("theorem_a.gap_grows_with_width", "trend", "§5")
def gap_grows_with_width(ctx) -> CheckResult:
    """On each sweep of `WIDTH_SETTINGS`, the relative gap (SGD − SAM)/SGD of each moment is larger at the largest
    knob value than at the smallest, by > 2 SE; monotonicity across the middle values is reported."""
    num_seeds = 8 if ctx.quick else 16
    seeds = np.arange(num_seeds) + 1000 * ctx.seed
    ok, zs, parts, panels = True, [], [], []
    for label, (knob, values, factory, eta, rho, steps, desc) in WIDTH_SETTINGS.items():
        results, lines = {}, []
        for v in values:
            res = _run(factory(v, ctx.seed), eta, rho, seeds, steps)
            conv, conv_text = _interpolation(res)
            ok &= conv
            results[v] = res
            gaps = ", ".join(f"{m}: {_fmt(_relative_gap(res, m))}" for m in MOMENTS)
            lines.append(f"{knob}={v} (p={res.p}): rel. gaps {gaps}; interpolation{'' if conv else ' NOT reached'}: "
                         f"{conv_text}")
        growth = []
        for m in MOMENTS:
            (m_lo, se_lo), (m_hi, se_hi) = (mean_se(_relative_gap(results[v], m)) for v in (values[0], values[-1]))
            diff, se = float(m_hi - m_lo), float(np.hypot(se_lo, se_hi))
            z = diff / se if se > 0 else np.inf * np.sign(diff)
            zs.append(z)
            ok &= bool(diff - Z_TREND * se > 0)
            means = [float(mean_se(_relative_gap(results[v], m))[0]) for v in values]
            mono = "monotone" if np.all(np.diff(means) > 0) else "NOT monotone"
            growth.append(f"{m}: {diff:.4g} ± {se:.2g} (z={z:.1f}{'' if z > Z_TREND else ', FAILS'}; {mono})")
        parts.append(f"[{label}] {desc}, knob {knob} ∈ {list(values)}, η={eta}, ρ={rho}, {steps} steps. Growth "
                     f"{knob}={values[-1]} minus {knob}={values[0]}: " + "; ".join(growth) + ". " + " | ".join(lines))
        panels.append({"label": label, "knob": knob, "results": results, "eta": eta, "rho": rho})
    detail = (f"{num_seeds} seeds per knob value, b={BATCH}, SGD and USAM from the same init and batches within a seed. "
              f"Gap = relative (SGD − SAM)/SGD per seed, because the moments themselves change with the knob (an "
              f"absolute gap could grow with the curvature scale alone); growth = mean rel. gap at the largest knob − "
              f"at the smallest, SE = √(SE²+SE²) (different problems: unpaired). Pass iff growth > {Z_TREND:g} SE for "
              f"all of a, s2, s3, s4 on every sweep and every run interpolates (max_i f_i ≤ {MAX_EXAMPLE_LOSS:g}). "
              + " || ".join(parts))
    return CheckResult.legacy(ok, float(min(zs)), Z_TREND, detail, data={"panels": panels})


def _fmt(x) -> str:
    m, se = mean_se(x)
    return f"{float(m):.3g} ± {float(se):.2g}"
