"""Edge of stability of normalized full-batch SAM (THEORY.md §7).

On a quadratic f = ½ xᵀHx, one normalized SAM step x ← x − η H (x + ρ Hx/‖Hx‖) acts on the eigencoordinate c_i of
the eigenpair (λ_i, v_i) as

    c_i ← (1 − ηλ_i − ηρλ_i²/‖∇f(x)‖) c_i,                                                   (§7)

so a direction is linearly stable iff |1 − ηλ − ηρλ²/‖∇f‖| ≤ 1, i.e. λ ≤ λ_edge with the SAM edge

    λ_edge(‖∇f‖) = (‖∇f‖/(2ρ)) (√(1 + 8ρ/(η‖∇f‖)) − 1)   (< 2/η).

With only the top mode left, the one-dimensional map c ← (1 − ηλ₁)c − ηρλ₁ sign(c) has the 2-cycle
c = ±ηρλ₁/(2 − ηλ₁), reached from any c ≠ 0 at the rate |1 − ηλ₁| per step; there ‖∇f‖ = λ₁|c| and
λ_edge = λ₁ exactly (substitute h = ηλ₁: 1 + 8ρ/(η‖∇f‖) = ((4 − h)/h)², so λ_edge = ηλ₁²/h = λ₁).
"""
from __future__ import annotations

import numpy as np

from ..validation import check_nonnegative, check_positive


def sam_edge(grad_norm, lr, rho):
    """λ_edge = (‖∇f‖/(2ρ))(√(1 + 8ρ/(η‖∇f‖)) − 1), the largest curvature normalized SAM keeps stable (§7).

    Written as 4/(η(1 + √(1 + 8ρ/(η‖∇f‖)))) (the same number, no cancellation when ρ/‖∇f‖ is small); it tends to
    2/η as ρ/‖∇f‖ → 0 (GD's edge) and to √(2‖∇f‖/(ηρ)) as ‖∇f‖ → 0. Accepts arrays (NumPy or JAX).

    Example:
      >>> round(float(sam_edge(0.1, lr=0.5, rho=0.05)), 12)       # below GD's edge 2/η = 4
      2.0
      >>> round(float(sam_edge(1e9, lr=0.5, rho=0.05)), 6)        # → 2/η when ρ/‖∇f‖ → 0
      4.0
    """
    check_positive("lr", lr)
    check_positive("rho", rho)
    check_nonnegative("grad_norm", grad_norm)
    root = (1.0 + 8.0 * rho / (lr * grad_norm)) ** 0.5
    return 4.0 / (lr * (1.0 + root))


def two_cycle_amplitude(lr, rho, lam):
    """|c| = ηρλ₁/(2 − ηλ₁): normalized SAM on ½λ₁c² (and on any quadratic, along v₁) ends in c = ±|c| (§7).

    Example:
      >>> round(two_cycle_amplitude(lr=1.2, rho=0.05, lam=1.0), 12)  # ηρλ₁/(2 − ηλ₁)
      0.075
    """
    check_positive("lr", lr)
    check_positive("rho", rho)
    check_positive("lam", lam)
    if not lr * lam < 2:
        raise ValueError(f"the 2-cycle needs lr * lam < 2, got lr={lr}, lam={lam}")
    return lr * rho * lam / (2.0 - lr * lam)


def mode_factors(lr, rho, eigenvalues, grad_norm):
    """The per-step multipliers 1 − ηλ_i − ηρλ_i²/‖∇f‖ of the eigencoordinates under normalized SAM (§7).

    Example:
      >>> [round(float(f), 6) for f in mode_factors(1.2, 0.05, [1.0, 0.5], grad_norm=0.1)]
      [-0.8, 0.25]
    """
    lam = np.asarray(eigenvalues, dtype=float)
    return 1.0 - lr * lam - lr * rho * lam**2 / grad_norm


def two_cycle_contraction(lr, rho, eigenvalues) -> tuple[float, float]:
    """(q, q₁): the worst per-step contraction of the other modes at the 2-cycle, max_{i≥2}|1 − ηλ_i −
    ηρλ_i²/(λ₁|c|)| = max_{i≥2}|1 − hs_i − (2 − h)s_i²| (s_i = λ_i/λ₁ ∈ (0, 1), h = ηλ₁), which is < 1; and
    q₁ = |1 − ηλ₁|, the rate at which the top coordinate reaches ±|c| (the derivative of the 1-D map).

    ``eigenvalues`` in any order; λ₁ = max must be simple. Distances to the cycle shrink like max(q, q₁)^t
    once the iterate is near it (the coupling through ‖∇f‖ is quadratic in the other modes).

    Example:
      >>> import numpy as np
      >>> q, q1 = two_cycle_contraction(1.2, 0.05, np.array([1.0, 0.5, 0.2]))
      >>> round(q, 6), round(q1, 6)                                # both < 1: the 2-cycle attracts
      (0.728, 0.2)
    """
    lam = np.sort(np.asarray(eigenvalues, dtype=float))[::-1]
    if lam.size < 2 or not lam[0] > lam[1]:
        raise ValueError("eigenvalues must have a simple largest eigenvalue")
    amp = two_cycle_amplitude(lr, rho, lam[0])
    factors = mode_factors(lr, rho, lam[1:], lam[0] * amp)
    return float(np.max(np.abs(factors))), float(abs(1.0 - lr * lam[0]))
