"""First checks: the dense Hessian against linear regression's closed form, and SAM at a stationary point."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..curvature import hessian, per_example_hessians
from ..optim import Batch, sam
from ..problems import LinearRegression, as_jax, linear_regression
from ..stats import EXACT_TOL, rel_err
from .registry import CheckResult, at_most, below, holds, register


@register("hessian.closed_form.linear_regression", "exact", "§3.1, §4",
          mutants=("hessian_of_wrong_point", "trace_power_off_by_one"))
def hessian_closed_form(ctx) -> CheckResult:
    """Autodiff H and H_i against AᵀA/n and a_i a_iᵀ; tr(H_i^k) = ‖a_i‖^{2k} for k = 1..4."""
    prob = linear_regression(n=20, p=40 if ctx.quick else 120, seed=ctx.seed_block(0))
    w = jax.random.normal(jax.random.key(ctx.seed_block(1)), (prob.p,))
    loss = prob.loss
    if ctx.mutated("hessian_of_wrong_point"):  # a quartic term makes H depend on w: the closed form must notice
        loss = lambda x: prob.loss(x) + 1e-3 * jnp.sum(x**4)  # noqa: E731
    H = hessian(loss, w)
    Hi = per_example_hessians(prob, w)
    H_ref, Hi_ref = prob.hessian_closed_form()
    norms = np.sum(prob.X**2, axis=1)
    shift = 1 if ctx.mutated("trace_power_off_by_one") else 0
    tr_err = max(rel_err(jnp.trace(jnp.linalg.matrix_power(Hi, k + shift), axis1=1, axis2=2), norms**k)
                 for k in range(1, 5))
    return CheckResult(
        [below("rel_err(H, AᵀA/n)", rel_err(H, H_ref), EXACT_TOL, "relative Frobenius error < 1e-10"),
         below("rel_err(H_i, a_i a_iᵀ)", rel_err(Hi, Hi_ref), EXACT_TOL, "relative Frobenius error < 1e-10"),
         below("rel_err(tr H_i^k, ‖a_i‖^2k), k ≤ 4", tr_err, EXACT_TOL, "max over k of relative error < 1e-10")],
        {"n": prob.n, "p": prob.p, "w": "standard normal"})


@register("sam.no_nan_at_stationary_point", "exact", "§2", mutants=("unguarded_normalization",))
def sam_no_nan(ctx) -> CheckResult:
    """One SAM step at an exact minimum (∇f_ξ = 0 exactly) returns finite params equal to the input."""
    rng = np.random.default_rng(ctx.seed_block(0))
    X = rng.standard_normal((20, 40)) / np.sqrt(40)
    prob = LinearRegression(X, np.zeros(20))  # y = 0: w = 0 is an exact minimum of every f_i
    w_star = jnp.zeros(prob.p)
    batch = Batch(as_jax(prob.data), prob.batch_loss)
    grad_norm = float(jnp.linalg.norm(batch.grad(w_star)))
    opt = sam(lr=0.1, rho=0.05, eps=0.0) if ctx.mutated("unguarded_normalization") else sam(lr=0.1, rho=0.05)
    out, _ = opt.step(w_star, (), batch)
    finite = bool(jnp.all(jnp.isfinite(out)))
    change = float(jnp.max(jnp.abs(out - w_star))) if finite else float("inf")
    return CheckResult(
        [at_most("max|x₊ − x*|", change, 0.0, "exactly 0 (∇f_ξ(x*) = 0)"),
         holds("x₊ finite", finite, "every entry of the SAM step is finite"),
         at_most("‖∇f_ξ(x*)‖", grad_norm, 0.0, "the instance is exactly stationary")],
        {"problem": "linear regression n=20, p=40, y=0, x*=0", "step": "SAM η=0.1, ρ=0.05, default guard",
         "why": "an unguarded normalization g/‖g‖ gives 0/0 = NaN here"})
