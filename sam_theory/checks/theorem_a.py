"""Theorem A, linear stability of stochastic USAM (THEORY.md §5): the moment identity, exact r(T) against the
Monte Carlo of the linearized recursion and against escape of the nonlinear optimizer, η_c(ρ) decreasing, and
the necessary conditions."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..optim import usam
from ..problems import diagonal_linear_net, linear_regression
from ..curvature import BatchCurvature
from ..stability import (STABILITY_TOL, batch_moment_matrices, critical_learning_rate, curvature_summary, escape_test,
                         mean_step_sharpness, moment_matrix, necessary_conditions, one_dimensional_rate,
                         phase_diagram_data, simulate_linearized, spectral_radius)
from ..testing import commuting_hessians, interpolating_diagonal_net, random_psd_hessians
from .registry import CheckResult, register

EXACT_RTOL = 1e-10
Z_MAX = 4.0  # Monte Carlo agreement: |mean − exact| ≤ 4 SE at every logged t
MAX_SHARE = 0.05  # the SE of a mean is trusted only while no single run carries more than 5% of it
MC_FACTORS = (0.9, 1.05)  # η/η_c on the two sides (the unstable side close: lighter tails of ‖e_t‖²)


def _rel(a, b) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def _enumerated_moment_matrix(Hi, eta, rho, curv) -> np.ndarray:
    """E[B_ξ²] = Σ_ξ w_ξ B_ξ² over every enumerated batch (the reference; NumPy)."""
    idx, w = curv.dist.enumerate()
    out = np.zeros(Hi.shape[1:])
    for rows, wi in zip(idx, w):
        Hx = Hi[rows].mean(0)
        B = np.eye(Hi.shape[1]) - eta * (Hx + rho * Hx @ Hx)
        out += wi * B @ B
    return out


@register("theorem_a.moment_identity", "exact", "§5")
def moment_identity(ctx) -> CheckResult:
    """M = E[(I − ηA_ξ)²] by batch enumeration vs the four-term identity (THEORY.md §5)."""
    n, p = 5, 3
    Hi = random_psd_hessians(n, p, ctx.seed)
    configs = [(1, False), (1, True), (2, False), (2, True), (3, True)]
    if not ctx.quick:
        configs += [(3, False), (4, True), (5, False)]
    hyper = [(0.3, 0.2), (0.9, 0.05), (0.1, 0.6)]
    errors, lines, control = {}, [], 0.0
    for b, rep in configs:
        curv = BatchCurvature.from_hessians(Hi, b, rep)
        for eta, rho in hyper:
            M_exp = _enumerated_moment_matrix(Hi, eta, rho, curv)
            M_for = moment_matrix(curv, eta, rho)
            errors[(b, rep, eta, rho)] = _rel(M_for, M_exp)
        # failing control: the identity without the S_3 term must miss by far more than round-off
        eta, rho = hyper[0]
        S3 = batch_moment_matrices(curv).S3
        without_s3 = moment_matrix(curv, eta, rho) - 2 * eta**2 * rho * S3
        control = max(control, _rel(without_s3, _enumerated_moment_matrix(Hi, eta, rho, curv)))
        lines.append(f"b={b} {'with' if rep else 'without'} replacement: max rel err "
                     f"{max(v for k, v in errors.items() if k[:2] == (b, rep)):.2e}")
    worst = max(errors.values())
    ok = worst < EXACT_RTOL and control > 1e3 * EXACT_RTOL
    detail = (f"n={n}, p={p} random non-commuting PSD H_i = G_iG_iᵀ/p; (η, ρ) ∈ {hyper}. Expectation: Σ_ξ w_ξ B_ξ² "
              f"over all enumerated batches; formula: (I−ηH−ηρH²)² + η(η−2ρ)S_2 + 2η²ρS_3 + η²ρ²S_4 with S_k from "
              f"set partitions (THEORY.md §4.1, no enumeration). Measured: "
              f"max relative error max|ΔM|/max|M| < {EXACT_RTOL:g} (float64 round-off of sums of O(1) terms). "
              + "; ".join(lines) + f". Failing control (S_3 term dropped): rel err {control:.2e} (must be > 1e-7).")
    return CheckResult.legacy(ok, worst, EXACT_RTOL, detail)


def _compare_mc(source, rho, b, steps, runs, key, label):
    """Monte Carlo vs exact tr Σ_t at MC_FACTORS·η_c for one instance; the SGD operator as control."""
    source = source.with_batch(b)
    crit = critical_learning_rate(source, rho)
    curves, lines, zmax, control_z, ok = {}, [], 0.0, np.inf, True
    for factor in MC_FACTORS:
        eta = factor * crit.eta
        r = spectral_radius(source, eta, rho)
        sim = simulate_linearized(source, eta, rho, steps, runs, jax.random.fold_in(key, int(100 * factor)))
        z = np.abs(sim.z)
        sgd = simulate_linearized(source, eta, 0.0, steps, 2, key).exact  # the SGD operator's prediction
        zc = float(np.max(np.abs(sim.mean_sq - sgd)[1:] / sim.se[1:]))
        long = simulate_linearized(source, eta, rho, 400, 2, key).exact  # power iteration on T
        share = float(sim.final.max() / sim.final.sum())  # tail diagnostic: the largest run's share of the mean
        zmax, control_z = max(zmax, float(z.max())), min(control_z, zc)
        ok &= (r.value < 1) == (factor < 1) and share <= MAX_SHARE
        curves[factor] = {"t": sim.t, "mean": sim.mean_sq, "se": sim.se, "exact": sim.exact, "sgd": sgd,
                          "r": r.value, "eta": eta}
        lines.append(f"η={factor}η_c: r(T)={r.value:.4f} (tr Σ_t ratio at t=400: {long[-1] / long[-2]:.4f}), "
                     f"E‖e_{steps}‖² MC {sim.mean_sq[-1]:.4g} ± {sim.se[-1]:.2g} vs exact {sim.exact[-1]:.4g}, "
                     f"max_t |z| = {z.max():.2f}, largest run's share of the mean {share:.1e}; SGD-operator "
                     f"control max |z| = {zc:.1f}")
    text = (f"{label}: η_c={crit.eta:.5f} = {crit.eta / crit.eta_max:.3f}·η_max (η_max = 2/λ_max(E A_ξ)); "
            + "; ".join(lines))
    return ok, zmax, control_z, text, {"curves": curves, "eta_c": crit.eta, "label": label}


@register("theorem_a.exact_vs_simulated", "bound", "§5")
def exact_vs_simulated(ctx) -> CheckResult:
    """The Monte Carlo mean of ‖e_t‖² (linearized USAM, random batches) equals tr Σ_t, Σ_{t+1} = T(Σ_t), within
    Z_MAX standard errors at every t, at 0.9 η_c (stable) and 1.05 η_c (unstable), on two instances: one where
    η_c is near the mean-iterate edge η_max and one (linear regression, b = 2) where batch noise sets η_c far
    below it. The SGD operator (ρ = 0) is the failing control."""
    steps = 12
    runs = 60000 if ctx.quick else 1000000
    key = jax.random.key(ctx.seed)
    # fixed instances (data seed 0): on some data draws the unstable side of B has power-law tails that no
    # Monte Carlo mean resolves (the share criterion then fails the check); ctx.seed drives the batches
    Hi = random_psd_hessians(8, 4, 0, noise=0.2, base=True)
    prob = linear_regression(8, 4, seed=0)
    cases = [(BatchCurvature.from_hessians(Hi), 0.2, 2, "A: n=8, p=4, H_i = C + 0.2·G_iG_iᵀ/p (non-commuting PD), ρ=0.2, b=2"),
             (BatchCurvature.from_problem(prob, prob.init(None), method="matrix_free"), 0.2, 2, "B: linear regression n=8, p=4 via per-example HVPs, ρ=0.2, b=2")]
    ok, zmax, control_z, texts, data = True, 0.0, np.inf, [], {}
    for k, (source, rho, b, label) in enumerate(cases):
        o, z, zc, text, d = _compare_mc(source, rho, b, steps, runs, jax.random.fold_in(key, k), label)
        ok &= o
        zmax, control_z = max(zmax, z), min(control_z, zc)
        texts.append(text)
        data[label[0]] = d
    ok &= zmax <= Z_MAX and control_z > Z_MAX
    detail = (f"Fixed instances (data seed 0), Monte Carlo seed {ctx.seed}. {runs} runs × {steps} steps per η, "
              f"batches without replacement, e_0 uniform on the sphere "
              f"(Σ_0 = I/p, ‖e_0‖ = 1). Pass iff |MC mean − exact tr Σ_t| ≤ {Z_MAX:g} SE at every t, both instances, "
              f"both sides of η_c (4 SE: two-sided p ≈ 6e-5 per t, < 0.4% over the 48 correlated t's for Gaussian "
              f"means; the horizon is short because ‖e_t‖² is a product of random factors whose tail grows with t, "
              f"and the SE is reliable only while no single run dominates the mean: the largest run's share must be ≤ "
              f"{MAX_SHARE:g}, else the comparison is inconclusive and fails), "
              f"r(T) < 1 iff η < η_c, and the SGD operator (ρ = 0) is rejected by > {Z_MAX:g} SE. "
              + " | ".join(texts))
    return CheckResult.legacy(bool(ok), zmax, Z_MAX, detail, data=data)


@register("theorem_a.nonlinear_escape", "bound", "§5")
def nonlinear_escape(ctx) -> CheckResult:
    """USAM started at x* + e_0 (‖e_0‖ = 1e-6) on a diagonal linear net escapes iff r(T) > 1 (η = 0.7η_c, 1.4η_c)."""
    rho, b, eps, steps = 0.05, 1, 1e-6, 1000
    trials = 3 if ctx.quick else 8
    prob, x_star = interpolating_diagonal_net(ctx.seed)
    if not prob.interpolates(x_star, tol=1e-20):
        raise RuntimeError("the constructed x* does not interpolate")
    curv = BatchCurvature.from_problem(prob, x_star, b)
    crit = critical_learning_rate(curv, rho)
    mismatches, lines, traces = 0, [], {}
    for factor in (0.7, 1.4):
        eta = factor * crit.eta
        r = spectral_radius(curv, eta, rho)
        r_mf = spectral_radius(curv, eta, rho, method="matrix_free", num_iters=80)
        unstable = r.value > 1 + STABILITY_TOL  # r = 1 exactly from the null space of H (p > n)
        res = [escape_test(prob, x_star, usam(eta, rho), eps, steps, jax.random.key(1000 * ctx.seed + s),
                           batch_size=b) for s in range(trials)]
        mismatches += sum(e.escaped != unstable for e in res)
        traces[factor] = {"t": res[0].t, "distances": [e.distances for e in res], "r": r.value, "eta": eta}
        lines.append(f"η={factor}η_c: r(T)={r.value:.6f} (matrix-free Lanczos: |Δr| = {abs(r_mf.value - r.value):.1e}, "
                     f"residual {r_mf.residual:.1e}),"
                     f" escaped {sum(e.escaped for e in res)}/{trials}, max distance "
                     f"{[f'{e.max_distance:.2g}' for e in res]}")
    detail = (f"diagonal linear net u⊙v, n={prob.n}, d={prob.d} (p={2 * prob.d}), interpolating x* by construction "
              f"(v = θ★/u); USAM ρ={rho}, b={b} without replacement, η_c={crit.eta:.5f} from r(T) of the per-example "
              f"Hessians (per_example_hvp); the full-batch (mean-iterate) edge is η_max = 2/λ_max(H + ρE H_ξ²) = "
              f"{crit.eta_max:.5f}, so at 1.4·η_c = {1.4 * crit.eta:.5f} the deterministic criterion "
              f"{'would wrongly predict stability' if 1.4 * crit.eta < crit.eta_max else 'also predicts instability'}. "
              f"{trials} trials per η, {steps} steps from ‖e_0‖ = {eps:g}; escaped iff the "
              f"distance to x* exceeds 100·‖e_0‖ (linear stability bounds it by C‖e_0‖ with C = O(1); instability "
              f"grows it geometrically until the nonlinearity takes over). Measured: number of trials whose outcome "
              f"contradicts r(T) ≷ 1 (bound 0). " + "; ".join(lines))
    return CheckResult.legacy(mismatches == 0, float(mismatches), 0.0, detail, data={"traces": traces, "eps": eps})


RHO_GRID = (0.0, 0.05, 0.1, 0.2, 0.4, 0.8)


@register("theorem_a.critical_lr_decreases_with_rho", "bound", "§5")
def critical_lr_decreases_with_rho(ctx) -> CheckResult:
    """η_c(ρ) strictly decreasing over a ρ grid (non-commuting H_i, b = 2)."""
    n, p, b = 8, 4, 2
    Hi = random_psd_hessians(n, p, ctx.seed)
    rhos = RHO_GRID if ctx.quick else RHO_GRID + (1.6, 3.2)
    curv = BatchCurvature.from_hessians(Hi, b)
    crits = [critical_learning_rate(curv, rho) for rho in rhos]
    etas = np.array([c.eta for c in crits])
    rel = np.diff(etas) / etas[:-1]
    bound = -1e-10  # strictly decreasing beyond the bisection width (relative 1e-12) and the tolerance shift
    a = float(np.linalg.eigvalsh(Hi.mean(0))[-1])
    detail = (f"n={n}, p={p}, b={b} without replacement, random non-commuting PSD H_i; η_c by scan + bisection of "
              f"r(T) = 1 + 1e-9 (bracket width ≤ 1e-12·η_c). Measured: max_k (η_c(ρ_k+1) − η_c(ρ_k))/η_c(ρ_k), must be "
              f"< {bound:g}. ρ grid {list(rhos)}: η_c = {[f'{e:.6f}' for e in etas]}; GD edge 2/a = {2 / a:.6f}; "
              f"η_max = 2/λ_max(H + ρE H_ξ²) = {[f'{c.eta_max:.4f}' for c in crits]}.")
    return CheckResult.legacy(bool(rel.max() < bound), float(rel.max()), bound, detail,
                       data={"rho": np.array(rhos), "eta_c": etas})


def _grid_radii(curv, etas, rhos):
    return np.array([[spectral_radius(curv, eta, rho).value for eta in etas] for rho in rhos])


@register("theorem_a.necessary_conditions_hold", "bound", "§5")
def necessary_conditions_hold(ctx) -> CheckResult:
    """Every stable (η, ρ) grid point satisfies the necessary conditions; with commuting H_i, r(T) equals the
    per-eigendirection criterion max_j g_j exactly (THEORY.md §5)."""
    n, p, b = 6, 3, 1
    n_eta, n_rho = (24, 10) if ctx.quick else (60, 24)
    lines, worst, ok = [], 0.0, True
    data = {}
    for label, Hi in (("commuting", commuting_hessians(n, p, ctx.seed)),
                      ("non-commuting", random_psd_hessians(n, p, ctx.seed))):
        curv = BatchCurvature.from_hessians(Hi, b)
        mm = batch_moment_matrices(curv)
        H, S = mm.H, {k: mm.S(k) for k in (2, 3, 4)}
        a, *s_k = curvature_summary(curv)
        s = dict(zip((2, 3, 4), s_k))
        rhos = np.linspace(0.0, 1.0 / a, n_rho)
        etas = np.linspace(0.05, 1.2, n_eta) * 2 / a
        if label == "commuting":
            data = phase_diagram_data(curv, etas, rhos, sim_every=3, key=jax.random.key(ctx.seed))
            radii = data["radii"]
        else:
            radii = _grid_radii(curv, etas, rhos)
        stable = radii <= 1 + 1e-9
        viol, ratio_max, general = 0, 0.0, 0.0
        for i, rho in enumerate(rhos):
            top = mean_step_sharpness(curv, rho)
            for j, eta in enumerate(etas):
                if not stable[i, j]:
                    continue
                general = max(general, top * eta / 2)  # λ_max(H + ρE H_ξ²) ≤ 2/η
                if label == "commuting":  # the a, s_k bounds are derived in the commuting case
                    nc = necessary_conditions(a, s[2], s[3], s[4], eta, rho)
                    viol += len(nc.violated())
                    ratio_max = max(ratio_max, max(nc.values[k] / nc.bounds[k] for k in nc.values if nc.applies[k]))
                else:
                    nc = necessary_conditions(a, 0, 0, 0, eta, rho)
                    viol += not nc.holds["a_plus_rho_a2"]
                    ratio_max = max(ratio_max, nc.values["a_plus_rho_a2"] / nc.bounds["a_plus_rho_a2"])
        ok &= viol == 0 and general <= 1 + 1e-12
        worst = max(worst, ratio_max, general)
        line = (f"{label}: {int(stable.sum())}/{stable.size} stable points, {viol} violated bounds, "
                f"max value/bound {ratio_max:.4f}, max η·λ_max(E A_ξ)/2 {general:.4f}")
        if label == "commuting":
            diag = lambda M: np.diagonal(M)
            g = np.array([[one_dimensional_rate(diag(H), diag(S[2]), diag(S[3]), diag(S[4]), eta, rho).max()
                           for eta in etas] for rho in rhos])
            iff_err = float(np.abs(g - radii).max() / np.abs(radii).max())
            agree = bool(np.all((g <= 1 + 1e-9) == stable))
            ok &= iff_err < 1e-10 and agree
            line += (f"; r(T) vs max_j g_j (per-direction iff): max rel diff {iff_err:.1e} (< 1e-10), verdicts agree: "
                     f"{agree}")
            mc_disagree = sum(grew != pred for _, _, grew, pred in data["sim"])
            line += (f"; linearized Monte Carlo ({data['sim_runs']} runs × {data['sim_steps']} steps) at "
                     f"{len(data['sim'])} grid points: {mc_disagree} disagree with r(T) ≷ 1 (figure only: just above "
                     f"η_c the growth of E‖e_t‖² can be carried by rare batch sequences while E log|1 − ηA_ξ,jj| < 0, "
                     f"i.e. typical paths decay — mean-square vs almost-sure stability — so a finite sample mean "
                     f"misses it)")
        lines.append(line)
    detail = (f"n={n}, p={p}, b={b}; grid {n_eta} η ∈ [0.05, 1.2]·2/a × {n_rho} ρ ∈ [0, 1/a]; "
              f"stable iff r(T) ≤ 1 + 1e-9. "
              f"Commuting (diagonal) H_i: a ≤ (√(1+8ρ/η)−1)/(2ρ), s_2 ≤ 1/√(η(η−2ρ)) (η > 2ρ), s_3 ≤ (2η²ρ)^(−1/3), "
              f"s_4 ≤ (ηρ)^(−1/2) (η ≥ 2ρ, where every term of g is ≥ 0), a + ρa² ≤ 2/η; non-commuting: the general "
              f"a + ρa² ≤ 2/η and λ_max(H + ρE H_ξ²) ≤ 2/η. Slack: relative 1e-12 (round-off). Measured: the "
              f"largest value/bound over stable points (≤ 1). " + "; ".join(lines))
    return CheckResult.legacy(bool(ok), worst, 1.0, detail, data=data)
