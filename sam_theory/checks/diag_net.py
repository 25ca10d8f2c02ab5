"""Diagonal linear networks β = u ⊙ v (THEORY.md §3.3, §8, §9): the conserved quantity, the implicit bias of GD
(hyperbolic entropy), and 1-SAM against GD and n-SAM in the Andriushchenko–Flammarion setup."""
from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np

from ..convergence.implicit_bias import minimize_potential
from ..optim import sgd, usam
from ..optim.msam import msam, nsam
from ..plots.diag_net import (ConservedQuantityData, DiagNetRhoData, ImplicitBiasData, plot_conserved_quantity,
                              plot_diag_net_vs_rho, plot_implicit_bias)
from ..problems import as_jax, diagonal_linear_net, stack_trees
from ..stats import EXACT_TOL, Z_TREND, direction_holds, rel_err
from ..train import run_many
from .registry import CheckResult, above, at_most, below, register

SLOPE_TOL = 0.1  # conserved_quantity: |fitted slope − 1| ≤ 0.1 (the O(η) correction over the η grid, see detail)
ALPHA = 0.1
AF_LR = 10 / 30  # Andriushchenko–Flammarion step 10/d, d = 30


def _floats(values) -> list:
    return [float(x) for x in np.ravel(values)]


def _remainders(params, member):
    """Per coordinate, log(1 − η²g_t²) and |ηg_t|³/(3(1 − η²g_t²)) at x_t (g = ∇_βL, η = the run's lr): summed over
    steps by `run_many` (``accumulate``), exp(Σ log) · α² is c_T for GD exactly and Σ of the second bounds the
    artanh remainder of `implicit_bias_potential`."""
    X, y = member.data
    g = X.T @ (X @ (params["u"] * params["v"]) - y) / X.shape[0]
    eg = member.optimizer.lr * g
    return jnp.log1p(-eg**2), jnp.abs(eg) ** 3 / (3 * (1 - eg**2))


def _c(params, member):
    return params["u"] ** 2 - params["v"] ** 2


def _gd_runs(prob, opts, steps, every):
    """Full-batch runs of ``opts`` on u⊙v from u = α, v = 0 (`run_many`, one compile per optimizer kind): final
    params, c = u² − v² and the accumulated `_remainders` at t = 0, every, …, steps."""
    out = run_many(prob, opts, jax.random.key(0), params=prob.init(None), observe=_c, accumulate=_remainders,
                   every=every, steps=steps, batch_size=prob.n)
    return out.params, np.asarray(out.observed), tuple(np.asarray(a) for a in out.accumulated)


@register("diag_net.conserved_quantity", "bound", "§9", figure=plot_conserved_quantity,
          mutants=("sam_in_place_of_gd", "identity_sign_flipped", "control_is_gd"))
def conserved_quantity(ctx) -> CheckResult:
    """c = u² − v² under GD: c_{t+1} = c_t(1 − η²g_t²) exactly (so the drift is O(η²) per step and O(η) at a fixed
    time T = ηt); the fitted slope of log drift against log η is 1. Control: n-SAM (ρ > 0) changes c at O(1).

    Per coordinate, u' = u − ηgv, v' = v − ηgu give u'² − v'² = (u² − v²)(1 − η²g²) (the cross terms cancel).

    Settings rule: THEORY.md §9's net (n = 20, d = 30, k = 3, α = 0.1); a fixed time T = ηt = 20 and η in factor-2
    steps up to 0.04, so the largest relative drift stays a few percent: drift = η∫g²dt·(1 + O(drift) + O(η)),
    whose relative correction is at most of the order of the largest drift and bends the log–log slope by less;
    SLOPE_TOL = 0.1 is about twice that (the largest drift is reported). Control ρ = 0.1 (n-SAM).
    Divergence: none tolerated (η ≤ 0.04 ≪ 2/λ_max). Data: this --seed's block, index 0.
    Mutants: n-SAM in place of GD; the exact identity's reference with the sign of the exponent flipped; the
    control run as GD.
    """
    prob = diagonal_linear_net(seed=ctx.seed_block(0), alpha=ALPHA, n_test=0)
    horizon, rho_control = 20.0, 0.1
    etas = np.array([0.0025, 0.005, 0.01, 0.02, 0.04]) if ctx.quick else np.geomspace(0.00125, 0.04, 6)
    active = np.round(horizon / etas).astype(int)
    steps, every = int(active.max()), int(np.gcd.reduce(active))
    at = (np.arange(len(etas)), active // every)  # run i read at its own horizon t = active_i
    c0 = ALPHA**2
    # USAM with the full gradient: u + ρ∇_u f = u + ρ g v (the A–F ascent); ρ = 0 is GD exactly (ε = 0·g = 0)
    rho_gd = rho_control if ctx.mutated("sam_in_place_of_gd") else 0.0
    rho_ctl = 0.0 if ctx.mutated("control_is_gd") else rho_control
    _, cs, (log_prod, _) = _gd_runs(prob, [usam(lr, rho) for rho in (rho_gd, rho_ctl) for lr in etas], steps, every)
    cs = cs.reshape((2, len(etas)) + cs.shape[1:])  # (GD, control) × η × logged t × d
    c_t, log_prod = cs[0][at], log_prod[:len(etas)][at]
    sign = -1.0 if ctx.mutated("identity_sign_flipped") else 1.0
    identity_err = max(rel_err(c, c0 * np.exp(sign * lp)) for c, lp in zip(c_t, log_prod))
    drift = np.max(np.abs(c_t - c0), axis=1) / c0
    slope = float(np.polyfit(np.log(etas), np.log(drift), 1)[0])
    drift_sam = np.max(np.abs(cs[1][at] - c0), axis=1) / c0
    slope_sam = float(np.polyfit(np.log(etas), np.log(drift_sam), 1)[0])
    diverged = int(np.sum(~np.isfinite(c_t).all(axis=1)) + np.sum(~np.isfinite(drift_sam)))
    return CheckResult(
        [at_most("|fitted slope of log drift vs log η − 1| (GD)", abs(slope - 1), SLOPE_TOL, "≤ 0.1"),
         below("max rel. error of c_T = α²Π(1 − η²g_t²) (GD)", identity_err, EXACT_TOL, "< 1e-10 (exact identity)"),
         above("|fitted slope − 1| (n-SAM control)", abs(slope_sam - 1), SLOPE_TOL, "> 0.1: c is not conserved"),
         at_most("diverged runs", diverged, 0, "declared tolerance 0 (η ≤ 0.04)")],
        {"net": f"u⊙v n=20, d=30, k=3, α={ALPHA}", "data seed": ctx.seed_block(0), "T = ηt": horizon,
         "eta": _floats(etas), "relative drift max_i|c_i,T − α²|/α² (GD)": _floats(drift),
         "largest drift (bounds the relative correction)": float(drift.max()), "slope (GD)": slope,
         "control rho": rho_control, "drift (n-SAM)": _floats(drift_sam), "slope (n-SAM)": slope_sam},
        ConservedQuantityData(etas, drift, drift_sam, slope, slope_sam, rho_control))


@register("diag_net.implicit_bias_potential", "bound", "§9", figure=plot_implicit_bias,
          mutants=("flow_constant", "small_c_potential", "remainder_term_dropped"))
def implicit_bias_potential(ctx) -> CheckResult:
    """The final β of GD from u = α, v = 0 equals argmin_{Xβ=y} φ_c(β) (hyperbolic entropy, c = c_∞ = u_∞² − v_∞²),
    within the first-order effect of the measured discretization remainder; the min-ℓ2 interpolant is far away.

    Derivation and potential: `sam_theory.convergence.implicit_bias` (module docstring): arcsinh(2β_T/c_T) =
    Xᵀν − 2r_T with |r_T| ≤ R = Σ_t |ηg_t|³/(3(1 − η²g_t²)), and Xβ_T = y + δy. Linearizing the optimality system
    at β* (D = diag(√(β*² + c²/4)) = (∇²φ)⁻¹): β_T − β* ≈ D^½(I − Π)D^½ e + DXᵀ(XDXᵀ)⁻¹δy, Π the D-weighted
    projector on range(D^½Xᵀ), |e| ≤ 2R. Tolerance = 2 × that first-order bound (factor 2 for the neglected
    second-order terms) + 1e-9 (the dual Newton solver's error, its residuals ~1e-14).

    Settings rule: THEORY.md §9's net (n = 20, d = 30, k = 3, α = 0.1); η = 0.05 (quick) / 0.025 (full), small
    enough that the remainder R (∝ η² per unit time) keeps the tolerance far below the distance to the min-ℓ2
    interpolant (the control: > 100 × tolerance), and T = ηt = 2·10⁴ (4·10⁴ full) so that the residual δy is at
    round-off. Divergence: none tolerated. Data: this --seed's block, index 0.
    Mutants: β* computed with gradient flow's c = α² instead of c_∞; with c_∞/1000 (towards min ℓ1); the tolerance
    without its discretization-remainder term (the check must see the O(η) remainder).
    """
    lr, steps = (0.05, 400_000) if ctx.quick else (0.025, 1_600_000)
    prob = diagonal_linear_net(seed=ctx.seed_block(0), alpha=ALPHA, n_test=0)
    X, y = prob.X, prob.y
    final, _, (_, cubes) = _gd_runs(prob, [sgd(lr)], steps, steps)
    u, v, R = np.asarray(final["u"][0]), np.asarray(final["v"][0]), cubes[0, -1]
    beta, c_inf = u * v, u**2 - v**2
    finite = bool(np.all(np.isfinite(beta)))
    c_ref = ALPHA**2 * np.ones_like(c_inf) if ctx.mutated("flow_constant") else c_inf
    sol = minimize_potential(X, y, c_ref / 1000 if ctx.mutated("small_c_potential") else c_ref)
    b = sol.beta
    D = np.sqrt(b**2 + c_inf**2 / 4)
    M = (X * D) @ X.T
    half = np.sqrt(D)
    proj = (half[:, None] * X.T) @ np.linalg.solve(M, X * half[None, :])
    A = half[:, None] * (np.eye(X.shape[1]) - proj) * half[None, :]
    dy = X @ beta - y
    remainder = 0.0 if ctx.mutated("remainder_term_dropped") else np.linalg.norm(A, 2) * np.linalg.norm(2 * R)
    first_order = remainder + np.linalg.norm(D * (X.T @ np.linalg.solve(M, dy)))
    tol = 2 * first_order / np.linalg.norm(b) + 1e-9
    err = rel_err(beta, b)
    beta_l2 = np.linalg.lstsq(X, y, rcond=None)[0]
    err_l2 = rel_err(beta, beta_l2)
    return CheckResult(
        [at_most("‖β_T − β*‖/‖β*‖", err, tol, "≤ 2 × first-order bound + 1e-9"),
         above("‖β_T − X⁺y‖/‖X⁺y‖ (control: min-ℓ2 interpolant)", err_l2, 100 * tol, "> 100 × tolerance"),
         at_most("diverged runs", 0 if finite else 1, 0, "declared tolerance 0")],
        {"net": f"u⊙v n=20, d=30, k=3, α={ALPHA}", "data seed": ctx.seed_block(0), "eta": lr, "steps": steps,
         "T": lr * steps, "‖Xβ_T − y‖": float(np.linalg.norm(dy)), "max_i R_i": float(R.max()),
         "dual residuals (constraint, stationarity)": [float(sol.constraint_residual),
                                                       float(sol.stationarity_residual)],
         "c_∞/α² range": [float(c_inf.min() / ALPHA**2), float(c_inf.max() / ALPHA**2)],
         "‖β_T − β*(c = α²)‖/‖β*‖ (gradient-flow constant)": rel_err(beta, minimize_potential(X, y, ALPHA**2).beta)},
        ImplicitBiasData(beta, b, beta_l2, prob.theta_star))


def _final_test_losses(probs, make_opt, rhos, *, steps: int):
    """Final test loss of every (ρ, seed): full batch b = n in order, one `run_many` per method (ρ × data set)."""
    data = stack_trees([as_jax(p.data) for p in probs])
    test = stack_trees([as_jax(p.test_data) for p in probs])
    out = run_many(probs[0], [make_opt(r) for r in rhos], jax.random.key(0), data=data, test_data=test,
                   params=probs[0].init(None), axes=("optimizer", "data"), steps=steps, batch_size=probs[0].n,
                   every=steps)
    return np.asarray(out.test_losses)[..., -1], np.asarray(out.losses)[..., -1], np.asarray(out.diverged)


THEORY_RHO_AF = 0.3  # THEORY.md §9's 1-SAM setting (ρ_AF = 0.3, step 10/d)
TESTED_RHO_AF = 0.05  # the pre-registered ρ_AF of the [trend] criterion (see one_sam_beats_gd's docstring)


@register("diag_net.one_sam_beats_gd", "trend", "§8, §9", figure=plot_diag_net_vs_rho, plot="diag-net",
          mutants=("gd_in_place_of_one_sam", "gd_in_place_of_nsam"))
def one_sam_beats_gd(ctx) -> CheckResult:
    """Andriushchenko–Flammarion setup: 1-SAM's test loss is below GD's; n-SAM is not better than GD (it is worse,
    more so as ρ grows).

    1-SAM = msam(m=1, normalize=False) on the full batch b = n: ε_k = ρ∇f_k with f_k = ½(x_kᵀβ − y_k)², descent
    (1/n)Σ_k ∇f_k(w + ε_k). A–F's code perturbs u by 2ρ_AF r_k x_k⊙v = 2ρ_AF ∇_u f_k, so ρ = 2ρ_AF. n-SAM =
    nsam(source="full", normalize=False): A–F perturb by ρ_AF ∇L with L = (1/2n)‖Xβ − y‖² (our f), so ρ = ρ_AF.

    Criteria: paired log10 GD − log10 1-SAM > 2 SE at ρ_AF = 0.05; paired log10 n-SAM − log10 GD > 2 SE at the
    largest ρ_AF below §9's 0.3 (0.15 quick, 0.2 full: the largest of the grid before 0.3 joined it); no diverged
    run. Reported as labelled outcomes, not criteria: both comparisons at THEORY.md §9's own ρ_AF = 0.3, and the
    decades gained at ρ_AF = 0.15.

    Settings rule: THEORY.md §9's net, init and step (n = 20, d = 30, k = 3, α = 0.1, η = 10/d, u = α, v = 0; 10⁴
    full-batch steps); ρ_AF = 0.05 is the largest grid value at which 1-SAM fit every tuning-block data set
    (seeds 0–11; at ρ_AF ≥ 0.1 it does not fit some within 10⁴ steps), fixed before any evaluation seed. At §9's
    ρ_AF = 0.3 on random draws 1-SAM mostly collapses to β ≈ 0: that is reported, never tuned away.
    Divergence: none tolerated in the runs behind the criteria (GD, 1-SAM at 0.05, n-SAM at the tested ρ_AF; full
    batch, η = 10/d is A–F's stable step); the other grid runs (incl. §9's ρ_AF = 0.3) are reported with their
    divergence counts. Data: data set s (design, θ★, test set) from this --seed's block, index s.
    Mutants: GD (ρ = 0) in place of 1-SAM; GD in place of n-SAM.
    """
    seeds, steps = (6, 10_000) if ctx.quick else (12, 10_000)
    rho_af = (np.array([0.01, 0.05, 0.1, 0.15, 0.3]) if ctx.quick
              else np.array([0.01, 0.03, 0.05, 0.1, 0.15, 0.2, 0.3]))
    at = {r: int(np.argmin(np.abs(rho_af - r))) for r in (TESTED_RHO_AF, 0.15, THEORY_RHO_AF)}
    probs = [diagonal_linear_net(seed=s, alpha=ALPHA) for s in ctx.seeds(seeds)]
    one_factor = 0.0 if ctx.mutated("gd_in_place_of_one_sam") else 2.0
    ns_factor = 0.0 if ctx.mutated("gd_in_place_of_nsam") else 1.0
    gd, _, gd_div = _final_test_losses(probs, lambda r: sgd(AF_LR), np.zeros(1), steps=steps)
    ns, _, ns_div = _final_test_losses(probs, lambda r: nsam(AF_LR, ns_factor * r, "full", normalize=False),
                                       rho_af, steps=steps)
    one, one_train, one_div = _final_test_losses(probs, lambda r: msam(AF_LR, one_factor * r, 1, normalize=False),
                                                 rho_af, steps=steps)
    lg, ln, lo = np.log10(gd[0]), np.log10(ns), np.log10(one)
    _, gain = direction_holds(lg - lo[at[TESTED_RHO_AF]])
    _, worse = direction_holds(ln[-2] - lg)  # the largest ρ_AF below §9's 0.3: pre-registered before 0.3 joined
    _, worse_theory = direction_holds(ln[-1] - lg)
    theory_holds, theory_gain = direction_holds(lg - lo[at[THEORY_RHO_AF]])
    big = lg - lo[at[0.15]]
    # the declared tolerance covers the runs behind the criteria; the rest of the grid (incl. §9's ρ_AF = 0.3) is
    # reported, its divergences counted per ρ_AF
    diverged = int(gd_div.sum() + ns_div[-2].sum() + one_div[at[TESTED_RHO_AF]].sum())
    return CheckResult(
        [above(f"paired log10 GD − log10 1-SAM at ρ_AF = {TESTED_RHO_AF:g}, mean − 2 SE",
               gain.mean - Z_TREND * gain.se, 0.0, "> 0 over data sets"),
         above(f"paired log10 n-SAM − log10 GD at ρ_AF = {rho_af[-2]:g}, mean − 2 SE",
               worse.mean - Z_TREND * worse.se, 0.0, "> 0 over data sets"),
         at_most("diverged runs behind the criteria", diverged, 0, "declared tolerance 0 (full batch, A–F's step)")],
        {"net": f"u⊙v n=20, d=30, k=3, α={ALPHA}, η=10/d, {steps} full-batch steps, test set 1000 clean points",
         "diverged runs per ρ_AF (reported): n-SAM": [int(v) for v in ns_div.sum(1)],
         "diverged runs per ρ_AF (reported): 1-SAM": [int(v) for v in one_div.sum(1)],
         "data sets": seeds, "rho_af grid": _floats(rho_af), "mapping": "1-SAM ρ = 2ρ_AF, n-SAM ρ = ρ_AF",
         "mean log10 test loss GD": float(lg.mean()), "mean log10 test loss n-SAM per ρ_AF": _floats(ln.mean(1)),
         "mean log10 test loss 1-SAM per ρ_AF": _floats(lo.mean(1)),
         f"gain GD − 1-SAM at ρ_AF = {TESTED_RHO_AF:g}": str(gain), f"n-SAM − GD at ρ_AF = {rho_af[-2]:g}": str(worse),
         f"THEORY.md §9 setting ρ_AF = {THEORY_RHO_AF:g}: n-SAM − GD (decades)": str(worse_theory),
         f"THEORY.md §9 setting ρ_AF = {THEORY_RHO_AF:g}: paired gain GD − 1-SAM (decades)": str(theory_gain),
         f"THEORY.md §9 setting ρ_AF = {THEORY_RHO_AF:g}: 1-SAM beats GD beyond 2 SE":
             "holds" if theory_holds else "does NOT hold on these random draws",
         f"1-SAM final train loss per data set at ρ_AF = {THEORY_RHO_AF:g}": _floats(one_train[at[THEORY_RHO_AF]]),
         "decades gained at ρ_AF = 0.15 per data set (reported)": _floats(big),
         "data sets with ≥ 1 decade at ρ_AF = 0.15": int(np.sum(big >= 1))},
        DiagNetRhoData(rho_af, gd[0], ns, one))


# THEORY.md §9 (A–F notebook tml-epfl/understanding-sam, diagonal_linear_nets/diag_nets_sam.ipynb): the γ = 10/d
# cell, np.random.seed(0) draw, n=20, d=30, k=3, α=0.1, u0 = α1, v0 = 0, 10⁴ + 1 full-batch steps.
AF_GD_10 = 0.015747762611708224
AF_ONE_SAM_10 = 1.316634050881677e-08  # 1-SAM at ρ_AF = 0.3 (ours: msam m=1, ρ = 0.6)
# The notebook's other cell (γ = 5/d, same draw) prints GD and n-SAM test losses: a second, independent pin.
AF_PRINTED_GD_5 = 0.015056044189449159
AF_PRINTED_NSAM_5 = {0.01: 0.015143589149560101, 0.03: 0.01532189739609112, 0.1: 0.01598195225147282,
                     0.3: 0.018241642036376265, 1.0: 0.03606494489010675}
ROUNDOFF_SAFETY = 10.0  # af_reference: safety factor on the forward round-off model (see its docstring)


def loss_roundoff_tolerance(loss, lam_max, steps: int, beta_norm: float, d: int) -> float:
    """Relative tolerance of a test loss L = ½ eᵀΣ̂e (e = β − θ★, Σ̂ = X_testᵀX_test/n_test) reproduced by another
    float64 implementation of the same iteration.

    Forward round-off model: each step adds at most ~d·ε·‖β‖ to β (d-term sums), and the iteration near its
    limit does not amplify it, so ‖δβ‖ ≤ B = ROUNDOFF_SAFETY·T·d·ε·‖β‖. Then
    |δL| ≤ √(2Lλ_max(Σ̂))·B + ½λ_max(Σ̂)B². Relative to L this grows like 1/√L: a loss near round-off (1-SAM's
    1.3e-8) has a proportionally looser relative tolerance than GD's 1.6e-2, for the same β accuracy.
    """
    B = ROUNDOFF_SAFETY * steps * d * np.finfo(float).eps * beta_norm
    return float((np.sqrt(2 * loss * lam_max) * B + 0.5 * lam_max * B**2) / loss)


@register("diag_net.af_reference", "exact", "§9", mutants=("rho_af_not_doubled", "step_5_over_d"))
def af_reference(ctx) -> CheckResult:
    """Our GD (`sgd`) and 1-SAM (`msam(m=1, normalize=False)`, ρ = 2ρ_AF) on A–F's own data draw
    (`diagonal_linear_net(design="af", seed=0)`, γ = 10/d, 10⁴ + 1 full-batch steps) reproduce THEORY.md §9's
    numbers: GD test loss 0.015747762611708224 and 1-SAM at ρ_AF = 0.3 1.316634050881677e-08.

    Tolerance (`loss_roundoff_tolerance`): the same map in another summation order differs by round-off in β; a
    test loss is a quadratic in β − θ★, so its relative error scales like ‖δβ‖/√L and a loss near 1e-8 cannot be
    matched to 1e-10 relative even when β is. Second pin, the notebook's γ = 5/d cell: GD and n-SAM (`nsam(source=
    "full", normalize=False)`, ρ = ρ_AF) against its printed test losses, with the same tolerance rule.
    Reported: 1-SAM at ρ_AF = 0.3 on the next A–F draws (seeds 1–5): §9's 1e-8 is one draw.
    The data draw is A–F's fixed np.random.seed(0), so it does not vary with --seed (a reference value).
    Mutants: 1-SAM with ρ = ρ_AF (the convention not doubled); step 5/d in place of §9's 10/d.
    """
    steps = 10_001
    lr = 5 / 30 if ctx.mutated("step_5_over_d") else 10 / 30
    one_rho = 1.0 if ctx.mutated("rho_af_not_doubled") else 2.0
    probs = [diagonal_linear_net(seed=s, alpha=ALPHA, design="af") for s in range(6)]
    gd, _, gd_div = _final_test_losses(probs[:1], lambda r: sgd(lr), np.zeros(1), steps=steps)
    one, one_train, one_div = _final_test_losses(probs, lambda r: msam(lr, one_rho * r, 1, normalize=False),
                                                 np.array([THEORY_RHO_AF]), steps=steps)
    rho_ns = np.array(sorted(AF_PRINTED_NSAM_5)) if not ctx.quick else np.array([0.01, 0.3, 1.0])
    gd5, _, gd5_div = _final_test_losses(probs[:1], lambda r: sgd(5 / 30), np.zeros(1), steps=steps)
    ns5, _, ns5_div = _final_test_losses(probs[:1], lambda r: nsam(5 / 30, r, "full", normalize=False), rho_ns,
                                         steps=steps)
    Xt = np.asarray(probs[0].test_data[0])
    lam = float(np.linalg.eigvalsh(Xt.T @ Xt / Xt.shape[0])[-1])
    beta_norm = 2 * float(np.linalg.norm(probs[0].theta_star))  # ‖β‖ along the path, with a factor 2 of headroom
    tol = lambda L: loss_roundoff_tolerance(L, lam, steps, beta_norm, probs[0].d)  # noqa: E731
    err_gd, err_one = rel_err(gd[0, 0], AF_GD_10), rel_err(one[0, 0], AF_ONE_SAM_10)
    err5 = max([rel_err(gd5[0, 0], AF_PRINTED_GD_5)] + [rel_err(ns5[i, 0], AF_PRINTED_NSAM_5[float(r)])
                                                        for i, r in enumerate(rho_ns)])
    tol5 = min(tol(L) for L in [AF_PRINTED_GD_5] + list(AF_PRINTED_NSAM_5.values()))
    implied = abs(one[0, 0] - AF_ONE_SAM_10) / np.sqrt(2 * AF_ONE_SAM_10 * lam)
    diverged = int(gd_div.sum() + one_div[:, 0].sum() + gd5_div.sum() + ns5_div.sum())
    return CheckResult(
        [at_most("rel. error GD test loss vs §9 (γ = 10/d)", err_gd, tol(AF_GD_10), "≤ round-off tolerance"),
         at_most("rel. error 1-SAM test loss at ρ_AF = 0.3 vs §9 (γ = 10/d)", err_one, tol(AF_ONE_SAM_10),
                 "≤ round-off tolerance (loss near round-off: ∝ 1/√L)"),
         at_most("max rel. error GD, n-SAM vs the notebook's γ = 5/d cell", err5, tol5, "≤ round-off tolerance"),
         at_most("diverged runs", diverged, 0, "declared tolerance 0")],
        {"draw": "A–F np.random.seed(0): X, X_test multivariate normal, θ★ = |N(0,1)| on 3 coordinates",
         "net": f"n=20, d=30, α={ALPHA}, u=α, v=0, {steps} full-batch steps, float64",
         "GD test loss (γ = 10/d)": float(gd[0, 0]), "§9 GD": AF_GD_10,
         "1-SAM test loss (ρ_AF = 0.3, ρ = 0.6)": float(one[0, 0]), "§9 1-SAM": AF_ONE_SAM_10,
         "λ_max(Σ̂_test)": lam, "tolerance rule": f"B = {ROUNDOFF_SAFETY:g}·T·d·ε·2‖θ★‖, rel. tol = "
                                                  "(√(2Lλ)B + ½λB²)/L",
         "implied ‖δβ‖ from the 1-SAM difference": float(implied),
         "n-SAM ρ_AF (γ = 5/d)": _floats(rho_ns), "n-SAM test loss (γ = 5/d)": _floats(ns5[:, 0]),
         "1-SAM ρ_AF = 0.3 test loss on A–F draws 0–5 (reported)": _floats(one[0]),
         "1-SAM final train loss on draws 0–5": _floats(one_train[0])})
