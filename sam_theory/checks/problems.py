"""Checks of the synthetic problems (THEORY.md §3): closed-form Hessian, Gauss–Newton at interpolation, FD gradients."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ..curvature import hessian, per_example_hessians
from ..problems import apply_mask, as_jax, diagonal_linear_net, linear_regression, matrix_factorization, relu_1d, two_layer_net
from ..stats import EXACT_TOL, rel_err
from .registry import CheckResult, register

FD_SAFETY = 10.0  # the FD tolerance is this factor times the leading error terms (below)


@register("problems.diag_net_hessian_closed_form", "exact", "§3.3")
def diag_net_hessian(ctx) -> CheckResult:
    """Autodiff Hessian of (1/2n)‖Xβ − y‖², β = u⊙v (and u²−v²), against the hand-derived blocks at a random point."""
    ku, kv = jax.random.split(jax.random.key(ctx.seed))
    errs = {}
    for form in ("uv", "u2-v2"):
        prob = diagonal_linear_net(form=form, seed=ctx.seed)
        params = {"u": jax.random.normal(ku, (prob.d,)), "v": jax.random.normal(kv, (prob.d,))}
        errs[form] = rel_err(hessian(prob.loss, params), prob.hessian_closed_form(params))
    err = errs["uv"]
    detail = (f"n={prob.n}, d={prob.d}, random (u, v) ~ N(0, I) (residual ≠ 0); u⊙v: H_uu = diag(v)G diag(v), "
              f"H_vv = diag(u)G diag(u), H_uv = diag(v)G diag(u) + diag(Xᵀr/n), G = XᵀX/n: relative Frobenius "
              f"error {err:.2e}; u²−v² (H_uu = 4diag(u)Gdiag(u) + 2diag(Xᵀr/n), …): {errs['u2-v2']:.2e}; "
              f"tolerance {EXACT_TOL:g} for both")
    worst = max(errs.values())
    return CheckResult.legacy(worst < EXACT_TOL, err, EXACT_TOL, detail)


def hessian_and_gauss_newton(problem, params):
    """(H_i, J_iᵀJ_i) for every example, both (n, p, p): dense per-example Hessians, and the Gauss–Newton
    matrices from J_i = ∇ŷ_i (`Problem.prediction`, f_i = ½(ŷ_i − y_i)²). One jit for both."""
    flat, unravel = ravel_pytree(params)

    @jax.jit
    def both(flat):
        J = jax.vmap(lambda ex: jax.grad(lambda v: problem.prediction(unravel(v), ex))(flat))(as_jax(problem.data))
        return per_example_hessians(problem, unravel(flat)), jnp.einsum("ni,nj->nij", J, J)

    return both(flat)


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
        err = rel_err(*hessian_and_gauss_newton(prob, params))
        residual = float(jnp.max(prob.losses(params)))
        errs.append(err)
        lines.append(f"{label}: max f_i = {residual:.1e}, ‖H_i − J_iᵀJ_i‖/‖J_iᵀJ_i‖ = {err:.1e}")
    # control: away from interpolation the residual term r_i∇²ŷ_i is visible, so the comparison can fail
    tanh = cases["two_layer_net(tanh, student=teacher)"]
    control = rel_err(*hessian_and_gauss_newton(tanh, tanh.init(jax.random.key(ctx.seed))))
    worst = max(errs)
    detail = ("relative Frobenius error over all i; " + "; ".join(lines) + f"; tolerance {EXACT_TOL:g}; control: "
              f"tanh net at a random init (residuals ≠ 0) gives {control:.1e}, which must exceed 1e-6")
    return CheckResult.legacy(worst < EXACT_TOL and control > 1e-6, worst, EXACT_TOL, detail)


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
    plus round-off), f‴ by nested jvp at t ∈ {−h, 0, h}. Returns (errors, tolerances); one jit for everything."""
    eps = float(jnp.finfo(jnp.result_type(float)).eps)
    flat, unravel = ravel_pytree(params)

    @jax.jit
    def errors(flat, directions):
        grad = ravel_pytree(jax.grad(fn)(unravel(flat)))[0]

        def one(v):
            g = lambda t: fn(unravel(flat + t * v))
            d1 = lambda t: jax.jvp(g, (t,), (jnp.ones_like(t),))[1]
            d2 = lambda t: jax.jvp(d1, (t,), (jnp.ones_like(t),))[1]
            d3 = jax.vmap(lambda t: jax.jvp(d2, (t,), (jnp.ones_like(t),))[1])(jnp.array([-h, 0.0, h]))
            fp, fm = g(h), g(-h)
            exact = jnp.vdot(grad, v)
            bound = h**2 * jnp.max(jnp.abs(d3)) / 6 + eps * (jnp.abs(fp) + jnp.abs(fm)) / (2 * h)
            return jnp.abs((fp - fm) / (2 * h) - exact), FD_SAFETY * bound + 4 * eps * jnp.abs(exact)

        return jax.vmap(one)(directions)

    return errors(flat, jnp.asarray(directions))


@register("problems.finite_difference_gradients", "exact", "§3")
def finite_difference_gradients(ctx) -> CheckResult:
    """Autodiff gradients of every problem against float64 central differences along random directions."""
    h = 1e-5  # ≈ ε^{1/3}: balances the h² truncation and ε/h round-off terms
    num_dirs = 4 if ctx.quick else 16
    worst, lines = 0.0, []
    for label, prob in fd_cases(ctx.seed).items():
        rng = np.random.default_rng(ctx.seed + 1)
        shapes = jax.eval_shape(prob.init, jax.random.key(0))  # NumPy draws: no per-shape eager compiles
        params = apply_mask(jax.tree.map(lambda s: jnp.asarray(0.7 * rng.standard_normal(s.shape)), shapes),
                            prob.mask)  # a random point off the special init (u = α, v = 0, …)
        dirs = rng.standard_normal((num_dirs, prob.num_params))
        err, tol = fd_directional_errors(prob.loss, params, dirs / np.linalg.norm(dirs, axis=1, keepdims=True), h)
        ratio = float(jnp.max(err / tol))
        worst = max(worst, ratio)
        lines.append(f"{label}: max err/tol = {ratio:.2g}")
    detail = (f"h = {h:g}, {num_dirs} random unit directions per problem; tol = {FD_SAFETY:g}·(h²|f‴|/6 + "
              f"ε(|f₊|+|f₋|)/(2h)) + 4ε|f'| with f''' by nested jvp at x, x ± hv; measured = max err/tol; " +
              "; ".join(lines))
    return CheckResult.legacy(worst <= 1.0, worst, 1.0, detail)
