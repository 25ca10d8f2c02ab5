"""m-sharpness trend (THEORY.md §8, §9, §10.7): smaller micro-batches m make m-SAM reach flatter minima with a
better test loss — on the Andriushchenko–Flammarion diagonal linear network.

Flatness is measured by tr ∇²f(x_T): for β = u⊙v at an interpolating point, tr H = Σ_i G_ii (u_i² + v_i²) with
G = XᵀX/n, a weighted ℓ2 norm of (u, v) that equals 2 Σ_i G_ii |β_i| when |u| = |v| — the ℓ1-type quantity the
implicit bias of §9 acts on. λ_max(H) is reported as well; on this problem it does not follow m (see `detail`).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..curvature import eigvalsh, hessian
from ..optim import msam
from ..plots.sweep import MSharpnessData, plot_msharpness
from ..problems import as_jax, diagonal_linear_net, stack_trees
from ..train import run_many
from .registry import CheckResult, above, at_most, register
from ..stats import Z_TREND, direction_holds, summarize

N, D, K, ALPHA = 20, 30, 3, 0.1
LR = 10 / D  # their step 10/d
RHO = 0.1  # ours; = 2ρ_AF with ρ_AF = 0.05 (tests/test_parity.py: their f_k carries no ½). Chosen on the tuning
#           block (data sets 0–7, 2·10⁴ steps): at ρ = 0.2 and 0.3, 1-SAM stalls on data sets 6 and 7 (f ≈ 1e-2.2 …
#           1e-4, test loss 1e-0.3 … 1e-1.4, worse than m = b); at ρ = 0.6 (their ρ_AF = 0.3) 1-SAM stalls at
#           f ≈ 0.4 on every data set tried. The verdict is for ρ = 0.1; ρ = 0.6 is run and reported.
THEORY_RHO = 0.6  # THEORY.md §9's ρ_AF = 0.3 in our convention (1-SAM: ρ = 2ρ_AF)


def msam_runs(problems, m: int, *, rho: float, steps: int, log_every: int):
    """Full-batch (b = n) unnormalized m-SAM on every data set at once (one vmap over data sets, one compile).

    Returns the final training and test losses, λ_max and tr of ∇²f(x_T) (dense Hessian, p = 2d) and divergence.
    """
    ref = problems[0]
    data = stack_trees([as_jax(p.data) for p in problems])
    test = stack_trees([as_jax(p.test_data) for p in problems])
    out = run_many(ref, msam(LR, rho, m=m, normalize=False), jax.random.key(0), data=data, test_data=test,
                   params=ref.init(None), axes=("data",), every=log_every, steps=steps, batch_size=ref.n)

    def curvature(params, d):  # at the final points only (not a run_many observable: no Hessian at t = 0)
        H = hessian(lambda p: ref.batch_loss(p, d), params)
        return eigvalsh(H)[-1], jnp.trace(H)

    lam, trace = jax.jit(jax.vmap(curvature))(out.params, data)
    return tuple(np.asarray(x) for x in (out.losses[:, -1], out.test_losses[:, -1], lam, trace, out.diverged))


@register("msharpness.smaller_m_flatter", "trend", "§8", figure=plot_msharpness, plot="m-sharpness",
          mutants=("gd_in_place_of_one_sam", "one_sam_side_runs_m_b"))
def smaller_m_flatter(ctx) -> CheckResult:
    """m = b minus m = 1 (paired over data sets) in final tr ∇²f and in final log10 test loss must both be > 2 SE.

    Settings rule: THEORY.md §9's net and step (n = 20, d = 30, k = 3, α = 0.1, η = 10/d), full batch b = n,
    2·10⁴ steps; ρ = 0.1 (ρ_AF = 0.05) is the largest ρ at which 1-SAM fit every tuning-block data set (0–7), see
    `RHO`; fixed before any evaluation seed. At §9's ρ_AF = 0.3 (ρ = 0.6) the same comparison is run and reported
    as a labelled outcome, not tuned away. λ_max(∇²f(x_T)) is reported as a labelled outcome (THEORY.md's "flatter"
    is tested with tr ∇²f, the quantity §9's implicit bias acts on).
    Divergence: none tolerated at ρ = 0.1 (full batch, η = 10/d is A–F's stable step); the runs at §9's ρ = 0.6
    are reported with their divergence count. Data set s from this --seed's block.
    Mutants: m = 1 run with ρ = 0 (GD); the m = 1 side run with m = b.
    """
    seeds, steps, ms = (8, 20_000, (1, 5, 20)) if ctx.quick else (24, 20_000, (1, 2, 4, 5, 10, 20))
    problems = [diagonal_linear_net(N, D, K, alpha=ALPHA, seed=s) for s in ctx.seeds(seeds)]
    keys = ("train", "test", "lam", "trace", "diverged")

    def runs(m, rho):
        if m == ms[0] and ctx.mutated("one_sam_side_runs_m_b"):
            m = ms[-1]
        if m == ms[0] and ctx.mutated("gd_in_place_of_one_sam"):
            rho = 0.0
        return dict(zip(keys, msam_runs(problems, m, rho=rho, steps=steps, log_every=steps)))

    res = {m: runs(m, RHO) for m in ms}
    theory = {m: runs(m, THEORY_RHO) for m in (ms[0], ms[-1])}
    diverged = sum(int(r["diverged"].sum()) for r in res.values())  # the runs behind the criteria (ρ = RHO)
    b, one = ms[-1], ms[0]
    diff = lambda out, key, f=lambda x: x: f(out[b][key]) - f(out[one][key])  # noqa: E731
    _, s_trace = direction_holds(diff(res, "trace"))
    _, s_test = direction_holds(diff(res, "test", np.log10))
    lam_holds, s_lam = direction_holds(diff(res, "lam"))
    th_trace_holds, th_trace = direction_holds(diff(theory, "trace"))
    th_test_holds, th_test = direction_holds(diff(theory, "test", np.log10))
    word = lambda ok: "holds" if ok else "does NOT hold"  # noqa: E731
    return CheckResult(
        [above(f"paired tr ∇²f(x_T): m={b} − m={one}, mean − 2 SE", s_trace.mean - Z_TREND * s_trace.se, 0.0,
               "> 0 over data sets"),
         above(f"paired log10 test loss: m={b} − m={one}, mean − 2 SE", s_test.mean - Z_TREND * s_test.se, 0.0,
               "> 0 over data sets"),
         at_most(f"diverged runs at ρ = {RHO:g}", diverged, 0, "declared tolerance 0 (full batch, A–F's step)")],
        {"net": f"u⊙v n={N}, d={D}, k={K}, α={ALPHA}, full batch b=n, unnormalized m-SAM η=10/d",
         "rho": RHO, "steps": steps, "data sets": seeds, "m": list(ms),
         f"tr ∇²f m={b} − m={one}": str(s_trace), f"log10 test m={b} − m={one}": str(s_test),
         f"λ_max(∇²f) m={b} − m={one} (reported, not claimed)": f"{s_lam}: {word(lam_holds)} beyond 2 SE",
         f"THEORY.md §9 ρ_AF = 0.3 (ρ = {THEORY_RHO:g}): tr ∇²f m={b} − m={one}":
             f"{th_trace}: {word(th_trace_holds)} beyond 2 SE",
         f"THEORY.md §9 ρ_AF = 0.3 (ρ = {THEORY_RHO:g}): log10 test m={b} − m={one}":
             f"{th_test}: {word(th_test_holds)} beyond 2 SE",
         f"log10 train loss m={one} at ρ = {THEORY_RHO:g}": str(summarize(np.log10(theory[one]["train"]))),
         f"diverged runs at ρ = {THEORY_RHO:g} (reported) per m": {m: int(r["diverged"].sum()) for m, r in theory.items()},
         "per m": [f"m={m}: tr H={summarize(r['trace'])}, λ_max={summarize(r['lam'])}, "
                   f"log10 test={summarize(np.log10(r['test']))}, log10 train={summarize(np.log10(r['train']))}"
                   for m, r in res.items()]},
        MSharpnessData(list(ms), {m: r["trace"] for m, r in res.items()}, {m: r["test"] for m, r in res.items()},
                       f"m-SAM on the diagonal net (ρ={RHO:g}, {steps} steps, {seeds} data sets)"))
