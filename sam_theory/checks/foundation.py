"""First checks: the dense Hessian against linear regression's closed form, and SAM at a stationary point."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..curvature import hessian, per_example_hessians
from ..optim import Batch, sam
from ..problems import LinearRegression, as_jax, linear_regression
from .registry import CheckResult, register

EXACT_TOL = 1e-10  # THEORY.md tag conventions: [exact] means relative error below 1e-10 in float64


def rel_err(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), np.finfo(float).tiny))


@register("hessian.closed_form.linear_regression", "exact", "§3.1, §4")
def hessian_closed_form(ctx) -> CheckResult:
    """Autodiff H and H_i against AᵀA/n and a_i a_iᵀ; tr(H_i^k) = ‖a_i‖^{2k} for k = 1..4."""
    prob = linear_regression(n=20, p=40 if ctx.quick else 120, seed=ctx.seed)
    w = jax.random.normal(jax.random.key(ctx.seed), (prob.p,))
    H = hessian(prob.loss, w)
    Hi = per_example_hessians(prob, w)
    H_ref, Hi_ref = prob.hessian_closed_form()
    norms = np.sum(prob.X**2, axis=1)
    tr_err = max(
        rel_err(jnp.trace(jnp.linalg.matrix_power(Hi, k), axis1=1, axis2=2), norms**k) for k in range(1, 5))
    errs = {"H": rel_err(H, H_ref), "H_i": rel_err(Hi, Hi_ref), "tr(H_i^k)": tr_err}
    worst = max(errs.values())
    detail = (f"n={prob.n}, p={prob.p}, random w; relative Frobenius errors " +
              ", ".join(f"{k}: {v:.2e}" for k, v in errs.items()) + f"; tolerance {EXACT_TOL:g}")
    return CheckResult(worst < EXACT_TOL, worst, EXACT_TOL, detail)


@register("sam.no_nan_at_stationary_point", "exact", "§2")
def sam_no_nan(ctx) -> CheckResult:
    """One SAM step at an exact minimum (∇f_ξ = 0 exactly) returns finite params equal to the input."""
    rng = np.random.default_rng(ctx.seed)
    X = rng.standard_normal((20, 40)) / np.sqrt(40)
    prob = LinearRegression(X, np.zeros(20))  # y = 0: w = 0 is an exact minimum of every f_i
    w_star = jnp.zeros(prob.p)
    batch = Batch(as_jax(prob.data), prob.batch_loss)
    grad_norm = float(jnp.linalg.norm(batch.grad(w_star)))
    out, _ = sam(lr=0.1, rho=0.05).step(w_star, (), batch)
    finite = bool(jnp.all(jnp.isfinite(out)))
    change = float(jnp.max(jnp.abs(out - w_star))) if finite else float("inf")
    detail = (f"linear regression n=20, p=40 with y=0 at w*=0 (‖∇f_ξ(w*)‖ = {grad_norm:g}); one SAM step "
              f"(η=0.1, ρ=0.05, δ=1e-12): finite={finite}, max|x₊ − x*| = {change:g} (must be exactly 0; "
              f"unguarded normalization g/‖g‖ gives 0/0 = NaN here)")
    return CheckResult(finite and change == 0.0 and grad_norm == 0.0, change, 0.0, detail)
