"""Implicit bias of gradient descent on the diagonal linear network β = u ⊙ v (THEORY.md §9).

Derivation (Woodworth et al. 2020; Andriushchenko & Flammarion 2022, the u⊙v form). Write g = ∇_β L(β) with
L = (1/2n)‖Xβ − y‖², so ∇_u = g⊙v, ∇_v = g⊙u. For a = u + v, b = u − v one GD step is exactly
a ← a ⊙ (1 − ηg), b ← b ⊙ (1 + ηg), and β = (a² − b²)/4, c = u² − v² = a⊙b. From u₀ = α, v₀ = 0 (a₀ = b₀ = α):

  c_T = α² Π_t (1 − η²g_t²)                        (c is conserved by the flow; GD changes it by O(η²) per step)
  β_T = −(c_T/2) ⊙ sinh(2 s_T),  s_T = Σ_t artanh(η g_t) = η Σ_t g_t + r_T,  |r_T| ≤ Σ_t |ηg_t|³/(3(1 − η²g_t²)).

Since η Σ_t g_t = Xᵀν lies in range(Xᵀ), arcsinh(2β_T/c_T) = −2Xᵀν − 2r_T: up to r_T (O(η²) at a fixed time ηT),
β_T satisfies the optimality condition ∇φ_c(β) ∈ range(Xᵀ) of

  β* = argmin_{Xβ = y} φ_c(β),  φ_c(β) = Σ_i (c_i/2) q(2β_i/c_i),  q(z) = z arcsinh z − √(1 + z²) + 1,

with ∇φ_c(β) = arcsinh(2β/c) (convex; hyperbolic entropy). In gradient flow c = α² (c/2 = α²/2 is the scale
of the potential: small α ⇒ φ ≈ (α²/2)·‖β‖₁ log(1/α²), close to min ℓ1). With GD the limit is exactly that of the
potential with c = c_∞ = u_∞² − v_∞² (measured), up to the artanh remainder r.

Dual: β(λ) = (c/2) sinh(Xᵀλ) with λ maximizing yᵀλ − Σ_i (c_i/2) cosh((Xᵀλ)_i) (Newton converges to round-off).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..validation import check_choice, check_finite_array, check_positive

METHODS = ("dual", "slsqp")


def hyperbolic_entropy(beta, c):
    """φ_c(β) = Σ_i (c_i/2) q(2β_i/c_i), q(z) = z arcsinh z − √(1 + z²) + 1 (≥ 0, = 0 at β = 0) (§9).

    Example:
      >>> import numpy as np
      >>> float(hyperbolic_entropy(np.zeros(3), 1.0))              # φ_c(0) = 0, its minimum
      0.0
    """
    beta, c = np.asarray(beta, float), np.broadcast_to(np.asarray(c, float), np.shape(beta))
    z = 2.0 * beta / c
    return float(np.sum(0.5 * c * (z * np.arcsinh(z) - np.sqrt(1.0 + z**2) + 1.0)))


def hyperbolic_entropy_grad(beta, c):
    """∇φ_c(β) = arcsinh(2β/c).

    Example:
      >>> import numpy as np
      >>> round(float(hyperbolic_entropy_grad(np.array([0.5]), 1.0)[0]), 6)   # arcsinh(1)
      0.881374
    """
    return np.arcsinh(2.0 * np.asarray(beta, float) / np.asarray(c, float))


@dataclasses.dataclass(frozen=True)
class PotentialMinimizer:
    """β* = argmin_{Xβ=y} φ_c(β), with its residuals.

    Attributes:
      beta: β*.  constraint_residual: ‖Xβ* − y‖.  stationarity_residual: ‖(I − P)∇φ_c(β*)‖, P the projector on
      range(Xᵀ) (zero at the optimum).  method: "dual" or "slsqp".

    Example:
      >>> import numpy as np
      >>> from sam_theory.convergence import minimize_potential
      >>> sol = minimize_potential(np.array([[1.0, 1.0]]), np.array([1.0]), c=1.0)
      >>> isinstance(sol, PotentialMinimizer), bool(sol.constraint_residual < 1e-10)
      (True, True)
    """

    beta: np.ndarray
    constraint_residual: float
    stationarity_residual: float
    method: str


def _residuals(X, y, beta, c):
    grad = hyperbolic_entropy_grad(beta, c)
    coef, *_ = np.linalg.lstsq(X.T, grad, rcond=None)
    return float(np.linalg.norm(X @ beta - y)), float(np.linalg.norm(grad - X.T @ coef))


def minimize_potential(X, y, c, *, method: str = "dual", tol: float = 1e-13) -> PotentialMinimizer:
    """argmin_{Xβ=y} φ_c(β) (hyperbolic entropy, THEORY.md §9) for X of shape (n, d), rank n, and c > 0 ((d,) or scalar).

    ``method="dual"``: Newton (scipy ``trust-exact`` with exact Hessian X diag((c/2)cosh(Xᵀλ)) Xᵀ) on the dual
    D(λ) = Σ_i (c_i/2) cosh((Xᵀλ)_i) − yᵀλ, then β = (c/2) sinh(Xᵀλ). ``method="slsqp"``: the primal with the
    equality constraint (an independent reference, to about 1e-8).

    Example:
      >>> import numpy as np
      >>> sol = minimize_potential(np.array([[1.0, 1.0]]), np.array([1.0]), c=1.0)
      >>> [round(float(b), 6) for b in sol.beta]                   # symmetric problem: the symmetric interpolant
      [0.5, 0.5]
    """
    X, y = np.asarray(X, float), np.asarray(y, float)
    check_finite_array("X", X)
    check_finite_array("y", y)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"X must be (n, d) and y (n,), got X {X.shape}, y {y.shape}")
    c = np.broadcast_to(np.asarray(c, float), (X.shape[1],)).copy()
    check_positive("c", c)
    check_positive("tol", tol)
    check_choice("method", method, METHODS)
    import scipy.optimize  # deferred: a slow import, needed only here

    if method == "dual":
        half = 0.5 * c
        fun = lambda lam: float(np.sum(half * np.cosh(X.T @ lam)) - y @ lam)
        jac = lambda lam: X @ (half * np.sinh(X.T @ lam)) - y
        hess = lambda lam: (X * (half * np.cosh(X.T @ lam))) @ X.T
        res = scipy.optimize.minimize(fun, np.zeros(X.shape[0]), jac=jac, hess=hess, method="trust-exact",
                                      options={"gtol": tol, "maxiter": 1000})
        lam = res.x
        for _ in range(3):  # polish: Newton on the constraint X β(λ) = y (quadratically convergent near λ*)
            lam = lam - np.linalg.solve(hess(lam), jac(lam))
        beta = half * np.sinh(X.T @ lam)
    else:
        beta0 = np.linalg.lstsq(X, y, rcond=None)[0]
        res = scipy.optimize.minimize(lambda b: hyperbolic_entropy(b, c), beta0,
                                      jac=lambda b: hyperbolic_entropy_grad(b, c), method="SLSQP",
                                      constraints=[{"type": "eq", "fun": lambda b: X @ b - y, "jac": lambda b: X}],
                                      options={"ftol": tol, "maxiter": 2000})
        beta = res.x
    return PotentialMinimizer(beta, *_residuals(X, y, beta, c), method)
