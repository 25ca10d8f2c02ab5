"""Checks of the synthetic problems (THEORY.md §3): closed-form Hessian, Gauss–Newton at interpolation, FD gradients."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ..curvature import hessian, per_example_hessians
from ..problems import apply_mask, as_jax, diagonal_linear_net, linear_regression, matrix_factorization, relu_1d, two_layer_net
from .foundation import EXACT_TOL, rel_err
from .registry import CheckResult, register

FD_SAFETY = 10.0  # the FD tolerance is this factor times the leading error terms (below)


@register("problems.diag_net_hessian_closed_form", "exact", "§3.3")
def diag_net_hessian(ctx) -> CheckResult:
    """Autodiff Hessian of (1/2n)‖X(u⊙v) − y‖² against the hand-derived blocks at a random point."""
    prob = diagonal_linear_net(seed=ctx.seed)
    ku, kv = jax.random.split(jax.random.key(ctx.seed))
    params = {"u": jax.random.normal(ku, (prob.d,)), "v": jax.random.normal(kv, (prob.d,))}
    err = rel_err(hessian(prob.loss, params), prob.hessian_closed_form(params))
    detail = (f"n={prob.n}, d={prob.d}, random (u, v) ~ N(0, I); H_uu = diag(v)G diag(v), H_vv = diag(u)G diag(u), "
              f"H_uv = diag(v)G diag(u) + diag(Xᵀr/n), G = XᵀX/n; relative Frobenius error {err:.2e} "
              f"(tolerance {EXACT_TOL:g})")
    return CheckResult(err < EXACT_TOL, err, EXACT_TOL, detail)


def _gauss_newton(problem, params):
    """G_i = J_iᵀJ_i, J_i the gradient of the model's prediction ŷ_i (f_i = ½(ŷ_i − y_i)²), shape (n, p, p)."""
    flat, unravel = ravel_pytree(params)
    data = as_jax(problem.data)
    pred = problem_prediction(problem)
    J = jax.vmap(lambda ex: jax.grad(lambda v: pred(unravel(v), ex))(flat))(data)
    return jnp.einsum("ni,nj->nij", J, J)


def problem_prediction(problem):
    """ŷ(params, example) such that f_i = ½(ŷ − y_i)², for the square-loss problems."""
    if problem.name == "two_layer_net":
        return lambda p, ex: problem.forward(p, ex[0])
    if problem.name == "diagonal_linear_net":
        return lambda p, ex: jnp.dot(ex[0], problem.beta(p))
    if problem.name == "matrix_factorization":
        return lambda p, ex: jnp.dot(p["U"][ex[0]], p["V"][ex[1]])
    raise ValueError(f"no prediction function for {problem.name}")


@register("problems.gauss_newton_equals_hessian_at_interpolation", "exact", "§4")
def gauss_newton(ctx) -> CheckResult:
    """At an interpolating point of a square loss, H_i = J_iᵀJ_i (the residual term vanishes)."""
    cases = {
        "two_layer_net(tanh, student=teacher)": two_layer_net(12, 4, 3, activation="tanh", teacher_width=3,
                                                              n_test=0, seed=ctx.seed),
        "two_layer_net(relu, student=teacher)": two_layer_net(12, 4, 3, activation="relu", teacher_width=3,
                                                              n_test=0, seed=ctx.seed),
        "diagonal_linear_net(u=θ★, v=1)": diagonal_linear_net(10, 8, 2, n_test=0, seed=ctx.seed),
        "matrix_factorization(U=[A,0], V=[B,0])": matrix_factorization(5, 4, 2, 3, init_scale=0.1, seed=ctx.seed),
    }
    errs, lines = [], []
    for label, prob in cases.items():
        params = prob.teacher_as_student() if prob.name == "two_layer_net" else prob.interpolating_params()
        H = per_example_hessians(prob, params)
        err = rel_err(H, _gauss_newton(prob, params))
        residual = float(jnp.max(prob.losses(params)))
        errs.append(err)
        lines.append(f"{label}: max f_i = {residual:.1e}, ‖H_i − J_iᵀJ_i‖/‖J_iᵀJ_i‖ = {err:.1e}")
    worst = max(errs)
    return CheckResult(worst < EXACT_TOL, worst, EXACT_TOL,
                       "relative Frobenius error over all i; " + "; ".join(lines) + f"; tolerance {EXACT_TOL:g}")


def fd_cases(seed: int) -> dict:
    """One small instance of every problem constructor, at a random point."""
    return {
        "linear_regression": linear_regression(10, 15, seed=seed),
        "two_layer_net(relu, square)": two_layer_net(10, 3, 6, n_test=0, seed=seed),
        "two_layer_net(gelu, logistic, ntk)": two_layer_net(10, 3, 6, activation="gelu", loss="logistic",
                                                            parameterization="ntk", n_test=0, seed=seed),
        "two_layer_net(softplus, mean_field, linear teacher, sparse)": two_layer_net(
            10, 3, 6, activation="softplus", teacher="linear", parameterization="mean_field", sparsity=0.3,
            n_test=0, seed=seed),
        "diagonal_linear_net(uv)": diagonal_linear_net(10, 8, 2, n_test=0, seed=seed),
        "diagonal_linear_net(u2-v2, depth 3)": diagonal_linear_net(10, 8, 2, form="u2-v2", depth=3, n_test=0,
                                                                   seed=seed),
        "matrix_factorization": matrix_factorization(5, 4, 2, 3, init_scale=0.5, seed=seed),
        "relu_1d": relu_1d(10, seed=seed),
    }


def fd_directional_errors(fn, params, directions, h: float):
    """Central differences D_h = (f(x + hv) − f(x − hv))/(2h) against ⟨∇f(x), v⟩ for each row v of
    ``directions``, with the error bound |D_h − f′| ≤ h²|f‴|/6 + ε(|f(x+hv)| + |f(x−hv)|)/(2h) (Taylor remainder
    plus round-off), f‴ by nested jvp at t ∈ {−h, 0, h}. Returns (errors, tolerances)."""
    eps = float(jnp.finfo(jnp.result_type(float)).eps)
    flat, unravel = ravel_pytree(params)
    grad = ravel_pytree(jax.grad(fn)(params))[0]

    def one(v):
        g = lambda t: fn(unravel(flat + t * v))
        d1 = lambda t: jax.jvp(g, (t,), (jnp.ones_like(t),))[1]
        d2 = lambda t: jax.jvp(d1, (t,), (jnp.ones_like(t),))[1]
        d3 = jax.vmap(lambda t: jax.jvp(d2, (t,), (jnp.ones_like(t),))[1])(jnp.array([-h, 0.0, h]))
        fp, fm = g(h), g(-h)
        exact = jnp.vdot(grad, v)
        bound = h**2 * jnp.max(jnp.abs(d3)) / 6 + eps * (jnp.abs(fp) + jnp.abs(fm)) / (2 * h)
        return jnp.abs((fp - fm) / (2 * h) - exact), FD_SAFETY * bound + 4 * eps * jnp.abs(exact)

    return jax.jit(jax.vmap(one))(directions)


@register("problems.finite_difference_gradients", "exact", "§3")
def finite_difference_gradients(ctx) -> CheckResult:
    """Autodiff gradients of every problem against float64 central differences along random directions."""
    h = 1e-5  # ≈ ε^{1/3}: balances the h² truncation and ε/h round-off terms
    num_dirs = 4 if ctx.quick else 16
    worst, lines = 0.0, []
    for label, prob in fd_cases(ctx.seed).items():
        key = jax.random.key(ctx.seed + 1)
        flat, unravel = ravel_pytree(prob.init(key))
        params = apply_mask(unravel(flat + 0.3 * jax.random.normal(jax.random.fold_in(key, 1), flat.shape)),
                            prob.mask)  # a random point off the special init (u = α, v = 0, …)
        dirs = jax.random.normal(jax.random.fold_in(key, 2), (num_dirs, flat.size))
        err, tol = fd_directional_errors(prob.loss, params, dirs / jnp.linalg.norm(dirs, axis=1, keepdims=True), h)
        ratio = float(jnp.max(err / tol))
        worst = max(worst, ratio)
        lines.append(f"{label}: max err/tol = {ratio:.2g}")
    detail = (f"h = {h:g}, {num_dirs} random unit directions per problem; tol = {FD_SAFETY:g}·(h²|f‴|/6 + "
              f"ε(|f₊|+|f₋|)/(2h)) + 4ε|f'| with f''' by nested jvp at x, x ± hv; measured = max err/tol; " +
              "; ".join(lines))
    return CheckResult(worst <= 1.0, worst, 1.0, detail)
