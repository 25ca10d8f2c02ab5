"""Checks of the synthetic problems (THEORY.md §3): closed-form Hessian, Gauss–Newton at interpolation, FD gradients."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ..curvature import hessian, per_example_hessians
from ..problems import apply_mask, as_jax, diagonal_linear_net, linear_regression, matrix_factorization, relu_1d, two_layer_net
from ..stats import EXACT_TOL, rel_err
from .registry import CheckResult, above, at_most, below, register

FD_SAFETY = 10.0  # the FD tolerance is this factor times the leading error terms (below)


@register("problems.diag_net_hessian_closed_form", "exact", "§3.3",
          mutants=("closed_form_at_swapped_point", "loss_without_half"))
def diag_net_hessian(ctx) -> CheckResult:
    """Autodiff Hessian of (1/2n)‖Xβ − y‖², β = u⊙v (and u²−v²), against the hand-derived blocks at a random point.

    u⊙v: H_uu = diag(v)G diag(v), H_vv = diag(u)G diag(u), H_uv = diag(v)G diag(u) + diag(Xᵀr/n), G = XᵀX/n;
    u²−v²: H_uu = 4diag(u)Gdiag(u) + 2diag(Xᵀr/n), … (random (u, v) ~ N(0, I): residual r ≠ 0, so every term
    counts). Data: block index 0; point: index 1. Mutants: the closed form evaluated at (v, u); the autodiff side
    on the loss without its ½ (a factor-2 slip).
    """
    ku, kv = jax.random.split(jax.random.key(ctx.seed_block(1)))
    errs = {}
    for form in ("uv", "u2-v2"):
        prob = diagonal_linear_net(form=form, seed=ctx.seed_block(0))
        params = {"u": jax.random.normal(ku, (prob.d,)), "v": jax.random.normal(kv, (prob.d,))}
        ref_at = {"u": params["v"], "v": params["u"]} if ctx.mutated("closed_form_at_swapped_point") else params
        loss = (lambda p, pr=prob: 2 * pr.loss(p)) if ctx.mutated("loss_without_half") else prob.loss
        errs[form] = rel_err(hessian(loss, params), prob.hessian_closed_form(ref_at))
    return CheckResult(
        [below("rel. error autodiff vs closed form, β = u⊙v", errs["uv"], EXACT_TOL, "Frobenius, < 1e-10"),
         below("rel. error autodiff vs closed form, β = u²−v²", errs["u2-v2"], EXACT_TOL, "Frobenius, < 1e-10")],
        {"n": prob.n, "d": prob.d, "point": "(u, v) ~ N(0, I), residual ≠ 0"})


def hessian_and_gauss_newton(problem, params):
    """(H_i, J_iᵀJ_i) for every example, both (n, p, p): dense per-example Hessians, and the Gauss–Newton
    matrices from J_i = ∇ŷ_i (`Problem.prediction`, f_i = ½(ŷ_i − y_i)²). One jit for both."""
    flat, unravel = ravel_pytree(params)

    @jax.jit
    def both(flat):
        J = jax.vmap(lambda ex: jax.grad(lambda v: problem.prediction(unravel(v), ex))(flat))(as_jax(problem.data))
        return per_example_hessians(problem, unravel(flat)), jnp.einsum("ni,nj->nij", J, J)

    return both(flat)


@register("problems.gauss_newton_equals_hessian_at_interpolation", "exact", "§4",
          mutants=("off_interpolation", "gauss_newton_doubled"))
def gauss_newton(ctx) -> CheckResult:
    """At an interpolating point of a square loss, H_i = J_iᵀJ_i (the residual term vanishes).

    Control: away from interpolation (tanh net at a random init) the residual term r_i∇²ŷ_i is visible, so the
    comparison can fail (relative error > 1e-6). Data: this --seed's block, index 0; control init: index 1.
    Mutants: every case evaluated 1e-3 off its interpolating point; J_iᵀJ_i doubled (a factor slip).
    """
    seed = ctx.seed_block(0)
    cases = {
        "two_layer_net(tanh, student=teacher)": two_layer_net(12, 4, 3, activation="tanh", teacher_width=3,
                                                              n_test=0, seed=seed),
        "two_layer_net(relu, student=teacher)": two_layer_net(12, 4, 3, activation="relu", teacher_width=3,
                                                              n_test=0, seed=seed),
        "diagonal_linear_net(u=θ★, v=1)": diagonal_linear_net(10, 8, 2, n_test=0, seed=seed),
        "matrix_factorization(U=[A,0], V=[B,0])": matrix_factorization(5, 4, 2, 3, init_scale=0.1, seed=seed),
    }
    gn_factor = 2.0 if ctx.mutated("gauss_newton_doubled") else 1.0
    errs, residuals = {}, {}
    for label, prob in cases.items():
        params = prob.teacher_as_student() if prob.name == "two_layer_net" else prob.interpolating_params()
        if ctx.mutated("off_interpolation"):
            params = jax.tree.map(lambda a: a + 1e-3, params)
        H, GN = hessian_and_gauss_newton(prob, params)
        errs[label] = rel_err(H, gn_factor * GN)
        residuals[label] = float(jnp.max(prob.losses(params)))
    tanh = cases["two_layer_net(tanh, student=teacher)"]
    control = rel_err(*hessian_and_gauss_newton(tanh, tanh.init(jax.random.key(ctx.seed_block(1)))))
    return CheckResult(
        [below("max over cases of ‖H_i − J_iᵀJ_i‖/‖J_iᵀJ_i‖", max(errs.values()), EXACT_TOL, "< 1e-10"),
         above("same at a random init (control, residuals ≠ 0)", control, 1e-6, "> 1e-6: the test can fail")],
        {"relative error per case": {k: float(v) for k, v in errs.items()},
         "max f_i per case (interpolation)": residuals})


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


def fd_directional_errors(fn, params, directions, h: float, grad_fn=None):
    """Central differences D_h = (f(x + hv) − f(x − hv))/(2h) against ⟨∇f(x), v⟩ for each row v of
    ``directions``, with the error bound |D_h − f′| ≤ h²|f‴|/6 + ε(|f(x+hv)| + |f(x−hv)|)/(2h) (Taylor remainder
    plus round-off), f‴ by nested jvp at t ∈ {−h, 0, h}. ``grad_fn`` is the gradient under test (default
    ``jax.grad(fn)``). Returns (errors, tolerances); one jit for everything."""
    eps = float(jnp.finfo(jnp.result_type(float)).eps)
    flat, unravel = ravel_pytree(params)
    grad_fn = jax.grad(fn) if grad_fn is None else grad_fn

    @jax.jit
    def errors(flat, directions):
        grad = ravel_pytree(grad_fn(unravel(flat)))[0]

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


GRAD_SLIP = 1e-6  # mutant gradient_scaled: the FD test must see a 1e-6 relative error in ∇f


@register("problems.finite_difference_gradients", "exact", "§3", mutants=("gradient_scaled", "gradient_at_shifted_point"))
def finite_difference_gradients(ctx) -> CheckResult:
    """Autodiff gradients of every problem against float64 central differences along random directions.

    h = 1e-5 ≈ ε^{1/3} balances the h² truncation and ε/h round-off; the tolerance is `FD_SAFETY` × those leading
    terms (`fd_directional_errors`), so the measured err/tol must be ≤ 1. Data: this --seed's block, index 0;
    point and directions: index 1. Mutants: ∇f scaled by 1 + 1e-6 (a relative slip FD must resolve); ∇f taken at
    a point shifted by 1e-4.
    """
    h = 1e-5
    num_dirs = 4 if ctx.quick else 16
    ratios = {}
    for label, prob in fd_cases(ctx.seed_block(0)).items():
        rng = np.random.default_rng(ctx.seed_block(1))
        shapes = jax.eval_shape(prob.init, jax.random.key(0))  # NumPy draws: no per-shape eager compiles
        params = apply_mask(jax.tree.map(lambda s: jnp.asarray(0.7 * rng.standard_normal(s.shape)), shapes),
                            prob.mask)  # a random point off the special init (u = α, v = 0, …)
        dirs = rng.standard_normal((num_dirs, prob.num_params))
        grad_fn = None
        if ctx.mutated("gradient_scaled"):
            grad_fn = lambda p, f=prob.loss: jax.tree.map(lambda g: (1 + GRAD_SLIP) * g, jax.grad(f)(p))  # noqa: E731
        if ctx.mutated("gradient_at_shifted_point"):
            grad_fn = lambda p, f=prob.loss: jax.grad(f)(jax.tree.map(lambda a: a + 1e-4, p))  # noqa: E731
        err, tol = fd_directional_errors(prob.loss, params, dirs / np.linalg.norm(dirs, axis=1, keepdims=True), h,
                                         grad_fn=grad_fn)
        ratios[label] = float(jnp.max(err / tol))
    return CheckResult(
        [at_most("max over problems and directions of |D_h − ⟨∇f, v⟩|/tol", max(ratios.values()), 1.0, "≤ 1")],
        {"h": h, "directions per problem": num_dirs,
         "tol": f"{FD_SAFETY:g}·(h²|f‴|/6 + ε(|f₊|+|f₋|)/(2h)) + 4ε|f'|, f‴ by nested jvp at x, x ± hv",
         "max err/tol per problem": ratios})
