"""m-sharpness (THEORY.md §8): the expected USAM direction with micro-batch size m is the n-SAM direction plus the
gradient of the variance term (ρ c_m/2) tr Σ_g — exact in expectation for quadratic per-sample losses."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..curvature import batch_distribution
from ..optim import Batch, nsam, usam
from ..plots.msharpness_drift import DriftData, plot_drift_identity
from ..problems import as_jax, linear_regression, take
from ..stats import EXACT_TOL, rel_err
from .registry import CheckResult, above, below, register

CONTROL_MIN = 1e-3  # the wrong sampling factor must miss by more than this (relative)


def trace_gradient_covariance(problem, params, data):
    """tr Σ_g(x) = (1/n) Σ_i ‖∇f_i(x) − ∇f(x)‖² (THEORY.md §1), per-example gradients by one vmap."""
    grads = jax.vmap(jax.grad(problem.per_example_loss), in_axes=(None, 0))(params, data)
    return jnp.mean(jnp.sum((grads - grads.mean(axis=0)) ** 2, axis=1))


def drift_case(problem, x, rho, m, replace, max_batches=20000, *, opt_rho=None):
    """Both identities of §8 for one (m, sampling): returns relative errors and the vectors compared.

    measured  E_ξ[ĝ_ξ], ĝ_ξ = ∇f_ξ(x + ρ∇f_ξ(x)) from our `usam` update on every batch ξ of size m (one vmap over
      the enumerated batches, weights = their probabilities; with replacement: multisets, multinomial weights);
    reference 1: ∇f + ρ E_ξ[H_ξ ∇f_ξ] with the dense closed forms H_ξ = A_ξᵀA_ξ/m, ∇f_ξ = A_ξᵀ(A_ξx − y_ξ)/m;
    reference 2: excess over n-SAM, E_ξ[ĝ_ξ] − ∇f(x + ρ∇f(x)) (n-SAM from our `nsam`), against
      (ρ c_m/2) ∇ tr Σ_g(x) by autodiff (no enumeration), c_m = (n−m)/(m(n−1)) without, 1/m with replacement.
    ``opt_rho`` is the ρ given to the optimizer under test (default ``rho``; mutation testing changes it).
    """
    data = as_jax(problem.data)
    dist = batch_distribution(problem.n, m, replace)
    idx, weights = dist.enumerate(max_batches)
    batches = take(data, jnp.asarray(idx))  # leading axes (B, m)
    opt = usam(1.0, rho if opt_rho is None else opt_rho)
    directions = jax.vmap(lambda ex: -opt.update(x, (), Batch(ex, problem.batch_loss))[0])(batches)
    expected = jnp.tensordot(jnp.asarray(weights), directions, axes=1)

    A, y = np.asarray(problem.X)[idx], np.asarray(problem.y)[idx]  # (B, m, p), (B, m)
    g_batch = np.einsum("bmp,bm->bp", A, np.einsum("bmp,p->bm", A, np.asarray(x)) - y) / m
    hg_batch = np.einsum("bmp,bm->bp", A, np.einsum("bmp,bp->bm", A, g_batch)) / m
    X_all, y_all = np.asarray(problem.X), np.asarray(problem.y)
    grad_full = X_all.T @ (X_all @ np.asarray(x) - y_all) / problem.n
    reference1 = grad_full + rho * weights @ hg_batch

    nsam_dir = -nsam(1.0, rho, "full", normalize=False).update(x, (), Batch(data, problem.batch_loss, full=data))[0]
    excess = expected - nsam_dir
    grad_trace = jax.grad(trace_gradient_covariance, argnums=1)(problem, x, data)
    factor = dist.s2_factor()
    reference2 = 0.5 * rho * factor * grad_trace
    wrong_factor = 1.0 / m if not replace else (problem.n - m) / (m * (problem.n - 1))
    return {"rel_expansion": rel_err(expected, reference1), "rel_excess": rel_err(excess, reference2),
            "rel_control": rel_err(excess, 0.5 * rho * wrong_factor * grad_trace),
            "excess_norm": float(jnp.linalg.norm(excess)), "predicted_norm": float(jnp.linalg.norm(reference2)),
            "num_batches": len(idx), "factor": factor}


@register("msharpness.drift_identity", "exact", "§8", figure=plot_drift_identity,
          mutants=("rho_doubled_in_usam", "wrong_batch_factor"))
def drift_identity(ctx) -> CheckResult:
    """E_ξ[∇f_ξ(x + ρ∇f_ξ)] = ∇f + ρE[H_ξ∇f_ξ] and its excess over n-SAM = (ρ c_m/2)∇ tr Σ_g, linear regression.

    Both are identities for quadratic f_i, so the tolerance is round-off (1e-10 relative). Failing control: the
    with/without-replacement factors swapped must miss by > 1e-3 for every m > 1 (at m = 1 both are 1).
    Data and x: this --seed's block (indices 0, 1). Mutants: the USAM under test run with 2ρ; the excess compared
    with the other sampling scheme's factor c_m.
    """
    n, p, ms = (8, 6, (1, 2, 3)) if ctx.quick else (10, 12, (1, 2, 3, 5))
    rho = 0.5
    problem = linear_regression(n, p, noise=0.3, seed=ctx.seed_block(0))
    x = jax.random.normal(jax.random.key(ctx.seed_block(1)), (p,))
    opt_rho = 2 * rho if ctx.mutated("rho_doubled_in_usam") else rho
    wrong_factor = ctx.mutated("wrong_batch_factor")
    cases = {(m, rep): drift_case(problem, x, rho, m, rep, opt_rho=opt_rho) for rep in (False, True) for m in ms}
    excess_key = "rel_control" if wrong_factor else "rel_excess"
    return CheckResult(
        [below("max rel. error E[USAM direction] vs ∇f + ρE[H_ξ∇f_ξ]",
               max(r["rel_expansion"] for r in cases.values()), EXACT_TOL, "< 1e-10 (identity)"),
         below("max rel. error excess over n-SAM vs (ρ c_m/2)∇trΣ_g", max(r[excess_key] for r in cases.values()),
               EXACT_TOL, "< 1e-10 (identity)"),
         above("min rel. miss with the swapped factor, m > 1 (control)",
               min(r["rel_control"] for (m, _), r in cases.items() if m > 1), CONTROL_MIN, "> 1e-3")],
        {"problem": f"linear regression n={n}, p={p}, label noise 0.3 (no interpolation), random x", "rho": rho,
         "cases": [f"m={m} {'with' if rep else 'w/o'} repl. ({r['num_batches']} batches, c_m={r['factor']:.4g}): "
                   f"expansion {r['rel_expansion']:.1e}, excess {r['rel_excess']:.1e}, control {r['rel_control']:.2g}"
                   for (m, rep), r in cases.items()],
         "method": "every batch of size m enumerated (our usam, vmapped) vs dense closed forms and autodiff of "
                   "trΣ_g = (1/n)Σ‖∇f_i − ∇f‖²; n-SAM from our nsam (full)"},
        DriftData([k[0] for k in cases], [k[1] for k in cases], [r["excess_norm"] for r in cases.values()],
                  [r["predicted_norm"] for r in cases.values()],
                  f"m-sharpness drift, linear regression n={n}, p={p}, ρ={rho}:\n"
                  f"excess of m-USAM over n-SAM vs (ρ c_m/2)∇trΣ_g (THEORY.md §8)"))
