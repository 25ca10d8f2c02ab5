"""Diagonal linear networks β = u ⊙ v (THEORY.md §3.3, §8, §9): the conserved quantity, the implicit bias of GD
(hyperbolic entropy), and 1-SAM against GD and n-SAM in the Andriushchenko–Flammarion setup."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ..convergence.implicit_bias import minimize_potential
from ..optim import sgd, usam
from ..optim.msam import msam, nsam
from ..problems import as_jax, diagonal_linear_net, stack_trees
from ..train import run_many
from ..stats import EXACT_TOL, rel_err
from .registry import CheckResult, register
from ..stats import Z_TREND, direction_holds

SLOPE_TOL = 0.1  # conserved_quantity: |fitted slope − 1| ≤ 0.1 (the O(η) correction over the η grid, see detail)
ALPHA = 0.1
AF_LR = 10 / 30  # Andriushchenko–Flammarion step 10/d, d = 30


def _join(values, spec: str) -> str:
    return ", ".join(format(float(x), spec) for x in values)



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


@register("diag_net.conserved_quantity", "bound", "§9")
def conserved_quantity(ctx) -> CheckResult:
    """c = u² − v² under GD: c_{t+1} = c_t(1 − η²g_t²) exactly (so the drift is O(η²) per step and O(η) at a fixed
    time T = ηt); the fitted slope of log drift against log η is 1. Control: n-SAM (ρ > 0) changes c at O(1).

    Per coordinate, u' = u − ηgv, v' = v − ηgu give u'² − v'² = (u² − v²)(1 − η²g²) (the cross terms cancel).
    """
    prob = diagonal_linear_net(seed=ctx.seed, alpha=ALPHA, n_test=0)
    horizon = 20.0
    etas = np.array([0.0025, 0.005, 0.01, 0.02, 0.04]) if ctx.quick else np.geomspace(0.00125, 0.04, 6)
    active = np.round(horizon / etas).astype(int)
    steps, every = int(active.max()), int(np.gcd.reduce(active))
    at = (np.arange(len(etas)), active // every)  # run i read at its own horizon t = active_i
    c0 = ALPHA**2
    # USAM with the full gradient: u + ρ∇_u f = u + ρ g v (the A–F ascent); ρ = 0 is GD exactly (ε = 0·g = 0)
    _, cs, (log_prod, _) = _gd_runs(prob, [usam(lr, rho) for rho in (0.0, 0.1) for lr in etas], steps, every)
    cs = cs.reshape((2, len(etas)) + cs.shape[1:])  # (GD, control) × η × logged t × d
    c_t, log_prod = cs[0][at], log_prod[:len(etas)][at]
    identity_err = max(rel_err(c, c0 * np.exp(lp)) for c, lp in zip(c_t, log_prod))
    drift = np.max(np.abs(c_t - c0), axis=1) / c0
    slope = float(np.polyfit(np.log(etas), np.log(drift), 1)[0])
    drift_sam = np.max(np.abs(cs[1][at] - c0), axis=1) / c0
    slope_sam = float(np.polyfit(np.log(etas), np.log(drift_sam), 1)[0])
    ok = abs(slope - 1) <= SLOPE_TOL and identity_err < EXACT_TOL and abs(slope_sam - 1) > SLOPE_TOL
    detail = (f"diagonal net u⊙v (n=20, d=30, k=3, α={ALPHA}, seed {ctx.seed}), GD for a fixed time T = ηt = "
              f"{horizon:g} at η ∈ {{{', '.join(f'{e:g}' for e in etas)}}}; relative drift max_i|c_i,T − α²|/α² = "
              + ", ".join(f"{d:.3e}" for d in drift) + f"; fitted slope of log drift vs log η = {slope:.4f} "
              f"(pass iff |slope − 1| ≤ {SLOPE_TOL:g}: by the identity below, drift = 1 − Π(1 − η²g_t²) = "
              f"η∫g² dt·(1 + O(drift) + O(η)); the relative correction is at most of the order of the largest drift, "
              f"{drift.max():.3f}, which bends the log–log fit by less than that; the tolerance is about twice it). Exact identity c_T = α²Π(1 − η²g_t²): max "
              f"relative error {identity_err:.1e} (< {EXACT_TOL:g}). Control, full-batch n-SAM ρ = 0.1: drift "
              + ", ".join(f"{d:.3e}" for d in drift_sam) + f", slope {slope_sam:.3f} (≈ 0: c is not conserved, the "
              f"check's criterion rejects it).")
    return CheckResult.legacy(ok, abs(slope - 1), SLOPE_TOL, detail,
                       data={"eta": etas, "drift": drift, "drift_sam": drift_sam, "slope": slope,
                             "slope_sam": slope_sam})


@register("diag_net.implicit_bias_potential", "bound", "§9")
def implicit_bias_potential(ctx) -> CheckResult:
    """The final β of GD from u = α, v = 0 equals argmin_{Xβ=y} φ_c(β) (hyperbolic entropy, c = c_∞ = u_∞² − v_∞²),
    within the first-order effect of the measured discretization remainder; the min-ℓ2 interpolant is far away.

    Derivation and potential: `sam_theory.convergence.implicit_bias` (module docstring): arcsinh(2β_T/c_T) =
    Xᵀν − 2r_T with |r_T| ≤ R = Σ_t |ηg_t|³/(3(1 − η²g_t²)), and Xβ_T = y + δy. Linearizing the optimality system
    at β* (D = diag(√(β*² + c²/4)) = (∇²φ)⁻¹): β_T − β* ≈ D^½(I − Π)D^½ e + DXᵀ(XDXᵀ)⁻¹δy, Π the D-weighted
    projector on range(D^½Xᵀ), |e| ≤ 2R. Tolerance = 2 × that first-order bound (factor 2 for the neglected
    second-order terms) + 1e-9 (the dual Newton solver's error, its residuals ~1e-14).
    """
    lr, steps = (0.05, 400_000) if ctx.quick else (0.025, 1_600_000)
    prob = diagonal_linear_net(seed=ctx.seed, alpha=ALPHA, n_test=0)
    X, y = prob.X, prob.y
    final, _, (_, cubes) = _gd_runs(prob, [sgd(lr)], steps, steps)
    u, v, R = np.asarray(final["u"][0]), np.asarray(final["v"][0]), cubes[0, -1]
    beta, c_inf = u * v, u**2 - v**2
    sol = minimize_potential(X, y, c_inf)
    b = sol.beta
    D = np.sqrt(b**2 + c_inf**2 / 4)
    M = (X * D) @ X.T
    half = np.sqrt(D)
    proj = (half[:, None] * X.T) @ np.linalg.solve(M, X * half[None, :])
    A = half[:, None] * (np.eye(X.shape[1]) - proj) * half[None, :]
    dy = X @ beta - y
    first_order = np.linalg.norm(A, 2) * np.linalg.norm(2 * R) + np.linalg.norm(D * (X.T @ np.linalg.solve(M, dy)))
    tol = 2 * first_order / np.linalg.norm(b) + 1e-9
    err = rel_err(beta, b)
    err_flow = rel_err(beta, minimize_potential(X, y, ALPHA**2).beta)
    beta_l2 = np.linalg.lstsq(X, y, rcond=None)[0]
    err_l2 = rel_err(beta, beta_l2)
    ok = err <= tol and err_l2 > 100 * tol
    detail = (f"diagonal net u⊙v n=20, d=30, k=3, α={ALPHA} (seed {ctx.seed}); GD η={lr:g}, {steps} steps (T = "
              f"{lr * steps:g}), ‖Xβ_T − y‖ = {np.linalg.norm(dy):.1e}, max_i R_i = {R.max():.2e}. β* by the dual "
              f"(Newton, ‖Xβ* − y‖ = {sol.constraint_residual:.1e}, stationarity {sol.stationarity_residual:.1e}). "
              f"‖β_T − β*‖/‖β*‖ = {err:.2e} ≤ tolerance {tol:.2e} (= 2 × first-order bound + 1e-9). With the "
              f"gradient-flow constant c = α² instead of c_∞ (c_∞/α² ∈ [{c_inf.min() / ALPHA**2:.4f}, "
              f"{c_inf.max() / ALPHA**2:.4f}]: the O(η) drift): {err_flow:.2e}. Control: min-ℓ2 interpolant "
              f"X⁺y at relative distance {err_l2:.3f} (must exceed 100 × tolerance).")
    return CheckResult.legacy(ok, err, tol, detail,
                       data={"beta_gd": beta, "beta_potential": b, "beta_l2": beta_l2, "theta_star": prob.theta_star})


def _final_test_losses(probs, make_opt, rhos, *, steps: int):
    """Final test loss of every (ρ, seed): full batch b = n in order, one `run_many` per method (ρ × data set)."""
    data = stack_trees([as_jax(p.data) for p in probs])
    test = stack_trees([as_jax(p.test_data) for p in probs])
    out = run_many(probs[0], [make_opt(r) for r in rhos], jax.random.key(0), data=data, test_data=test,
                   params=probs[0].init(None), axes=("optimizer", "data"), steps=steps, batch_size=probs[0].n,
                   every=steps)
    return np.asarray(out.test_losses)[..., -1], np.asarray(out.losses)[..., -1], np.asarray(out.diverged)


@register("diag_net.one_sam_beats_gd", "trend", "§8, §9")
def one_sam_beats_gd(ctx) -> CheckResult:
    """Andriushchenko–Flammarion setup: 1-SAM's test loss is below GD's (orders of magnitude on most seeds at
    ρ_AF = 0.15); n-SAM is not better than GD (it is slightly worse, more so as ρ grows).

    1-SAM = msam(m=1, normalize=False) on the full batch b = n: ε_k = ρ∇f_k with f_k = ½(x_kᵀβ − y_k)², descent
    (1/n)Σ_k ∇f_k(w + ε_k). A–F's code perturbs u by 2ρ_AF r_k x_k⊙v = 2ρ_AF ∇_u f_k, so ρ = 2ρ_AF. n-SAM =
    nsam(source="full", normalize=False): A–F perturb by ρ_AF ∇L with L = (1/2n)‖Xβ − y‖² (our f), so ρ = ρ_AF.

    Pass: paired log10 GD − log10 1-SAM > 2 SE at ρ_AF = 0.05 (where 1-SAM fits every seed), and paired log10 n-SAM
    − log10 GD > 2 SE at the largest ρ_AF of the grid. The decade gain at ρ_AF = 0.15 is reported, not tested: it
    is heavy-tailed over data seeds (on some seeds 1-SAM at ρ_AF ≥ 0.1 does not fit within 1e4 steps or fits a
    worse interpolator), so its seed mean ± 2 SE does not clear one decade with 12 seeds.
    """
    seeds, steps = (6, 10_000) if ctx.quick else (12, 10_000)
    rho_af = np.array([0.01, 0.05, 0.1, 0.15]) if ctx.quick else np.array([0.01, 0.03, 0.05, 0.1, 0.15, 0.2])
    at = {r: int(np.argmin(np.abs(rho_af - r))) for r in (0.05, 0.15)}
    probs = [diagonal_linear_net(seed=ctx.seed + s, alpha=ALPHA) for s in range(seeds)]
    gd, gd_train, gd_div = _final_test_losses(probs, lambda r: sgd(AF_LR), np.zeros(1), steps=steps)
    ns, ns_train, ns_div = _final_test_losses(probs, lambda r: nsam(AF_LR, r, "full", normalize=False), rho_af,
                                              steps=steps)
    one, one_train, one_div = _final_test_losses(probs, lambda r: msam(AF_LR, 2 * r, 1, normalize=False), rho_af,
                                                 steps=steps)
    lg, ln, lo = np.log10(gd[0]), np.log10(ns), np.log10(one)
    gain_holds, gain = direction_holds(lg - lo[at[0.05]])
    worse_holds, worse = direction_holds(ln[-1] - lg)
    big = lg - lo[at[0.15]]
    finite = not (gd_div.any() or ns_div.any() or one_div.any())
    fmt = functools.partial(_join, spec=".2f")
    detail = (f"n=20, d=30, k=3, α={ALPHA}, η = 10/d, {steps} steps, full batch; {seeds} seeds (data + θ★); test "
              f"loss on 1000 clean points. Mapping to A–F's code: 1-SAM ρ = 2ρ_AF, n-SAM ρ = ρ_AF. Mean log10 test "
              f"loss: GD {lg.mean():.2f} ({10**lg.mean():.1e}); over ρ_AF = [{fmt(rho_af)}]: n-SAM "
              f"[{fmt(ln.mean(1))}], 1-SAM [{fmt(lo.mean(1))}]. Tested: paired log10 GD − log10 1-SAM at ρ_AF = 0.05 "
              f"= {gain} (> {Z_TREND:g} SE: {gain_holds}); paired log10 n-SAM − log10 GD at ρ_AF = {rho_af[-1]:g} = "
              f"{worse} (> {Z_TREND:g} SE: {worse_holds}). Reported: decades gained by 1-SAM at ρ_AF = 0.15 per seed "
              f"[{fmt(big)}] (median {np.median(big):.2f}; ≥ 1 decade on {int(np.sum(big >= 1))}/{seeds} seeds; "
              f"1-SAM final train loss per seed [{', '.join(f'{x:.0e}' for x in one_train[at[0.15]])}]). THEORY.md "
              f"§9 (A–F notebook, their data): GD ≈ 1.6e-2, 1-SAM (ρ=0.3) ≈ 1e-8; on our data sets ρ_AF = 0.3 "
              f"(ρ = 0.6) makes 1-SAM collapse to β ≈ 0 (test loss ≈ 0.5) on most seeds within 1e4 steps; on A–F's "
              f"own draw with their step 5/d, §9's numbers are reproduced (diag_net.af_reference). "
              f"No divergence: {finite}.")
    return CheckResult.legacy(gain_holds and worse_holds and finite, gain.mean, 0.0, detail,
                       data={"rho_af": rho_af, "gd": gd[0], "nsam": ns, "one_sam": one})


# Test losses printed by A–F's notebook (tml-epfl/understanding-sam, diagonal_linear_nets/diag_nets_sam.ipynb, cell
# output): np.random.seed(0) draw, n=20, d=30, k=3, α=0.1, u0 = α1, v0 = 0, γ = 0.167 = 5/d, 10⁴ + 1 steps.
AF_PRINTED_GD = 0.015056044189449159
AF_PRINTED_NSAM = {0.01: 0.015143589149560101, 0.03: 0.01532189739609112, 0.1: 0.01598195225147282,
                   0.3: 0.018241642036376265, 1.0: 0.03606494489010675}
AF_REFERENCE_TOL = 1e-9  # float64 round-off of 10⁴ steps in another summation order (measured ~1e-14, see detail)


@register("diag_net.af_reference", "exact", "§9")
def af_reference(ctx) -> CheckResult:
    """Our GD (`sgd`) and n-SAM (`nsam(source="full", normalize=False)`, ρ = ρ_AF) on A–F's own data draw
    (`diagonal_linear_net(design="af", seed=0)`) reproduce the test losses their notebook prints, to round-off.

    This pins the setup behind THEORY.md §9's reference numbers: step γ = 5/d (the notebook prints γ = 0.167; §9
    says 10/d), init u = α, v = 0, 10⁴ + 1 full-batch steps. 1-SAM (msam m=1, ρ = 2ρ_AF) at ρ_AF = 0.3 is then
    reported against §9's "≈ 1e-8", and on the next A–F draws (seeds 1–5) to show how much the reference depends
    on the draw. Measured: max relative error against the printed values.
    """
    steps, lr = 10_001, 5 / 30
    rho_ns = np.array(sorted(AF_PRINTED_NSAM)) if not ctx.quick else np.array([0.01, 0.3, 1.0])
    probs = [diagonal_linear_net(seed=s, alpha=ALPHA, design="af") for s in range(6)]
    gd, _, gd_div = _final_test_losses(probs, lambda r: sgd(lr), np.zeros(1), steps=steps)
    ns, _, ns_div = _final_test_losses(probs[:1], lambda r: nsam(lr, r, "full", normalize=False), rho_ns,
                                       steps=steps)
    one, one_train, _ = _final_test_losses(probs, lambda r: msam(lr, 2 * r, 1, normalize=False), np.array([0.3]),
                                           steps=steps)
    errors = [rel_err(gd[0, 0], AF_PRINTED_GD)] + [rel_err(ns[i, 0], AF_PRINTED_NSAM[float(r)])
                                                   for i, r in enumerate(rho_ns)]
    err = float(max(errors))
    fmt = functools.partial(_join, spec=".2e")
    detail = (f"A–F draw seed 0 (np.random.seed(0): X, X_test by multivariate_normal, θ★ = |N(0,1)| on the first 3 "
              f"coordinates), n=20, d=30, α={ALPHA}, γ = 5/d, {steps} full-batch steps, float64. GD test loss "
              f"{float(gd[0, 0])!r} vs printed {AF_PRINTED_GD!r}; n-SAM ρ_AF = [{', '.join(f'{r:g}' for r in rho_ns)}]: "
              f"[{fmt(ns[:, 0])}] vs printed [{fmt([AF_PRINTED_NSAM[float(r)] for r in rho_ns])}]; relative errors "
              f"[{_join(errors, '.1e')}]; pass iff all ≤ {AF_REFERENCE_TOL:g} (the iteration is the "
              f"same map; only the summation order differs). Reported, not tested — 1-SAM ρ_AF = 0.3 (ρ = 0.6): test "
              f"loss {one[0, 0]:.2e} on draw 0 (THEORY.md §9: ≈ 1e-8; GD {gd[0, 0]:.2e}, {np.log10(gd[0, 0] / one[0, 0]):.1f} "
              f"decades); on draws 0–5: 1-SAM [{fmt(one[0])}], GD [{fmt(gd[0])}], 1-SAM final train loss "
              f"[{fmt(one_train[0])}]: the 1e-8 of §9 is one draw; 1-SAM at this ρ collapses to β ≈ 0 on other draws.")
    passed = err <= AF_REFERENCE_TOL and not (gd_div.any() or ns_div.any())
    return CheckResult.legacy(passed, err, AF_REFERENCE_TOL, detail)
