"""Theorem B: linear convergence of stochastic USAM under interpolation (THEORY.md §6).

Assumptions (A1) each f_i β-smooth, (A2) f λ-smooth, (A3) μ-PL, (A4) interpolation f* = 0. Batch of size b drawn
with replacement, shared by ascent and descent:

  K_b = (b − 1)/b + β/(bμ),   c = 1 − (βρ/2)(1 + K_b) − (λη/2)(1 + βρ)² K_b,
  c > 0  ⇒  E f(x_t) ≤ (1 − 2μηc)^t f(x_0).

With ρ ≤ 1/(2β(1 + K_b)) and η ≤ 1/(2λ(1 + βρ)² K_b), c ≥ ½ and the rate is at most 1 − μη.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..validation import check_int, check_nonnegative, check_positive


@dataclasses.dataclass(frozen=True)
class TheoremB:
    """The constants of Theorem B at (η, ρ, b).

    Attributes:
      K_b: (b − 1)/b + β/(bμ).
      c: 1 − (βρ/2)(1 + K_b) − (λη/2)(1 + βρ)² K_b.
      rate: 1 − 2μηc, the guaranteed per-step contraction of E f (meaningful when c > 0).
      rho_max: 1/(2β(1 + K_b)), the largest ρ of the c ≥ ½ regime.
      eta_max: 1/(2λ(1 + βρ)² K_b), the largest η of the c ≥ ½ regime at this ρ.
      applies: c > 0 (and μ > 0).

    Example:
      >>> from sam_theory.convergence import theorem_b
      >>> thm = theorem_b({"beta": 2.0, "lam": 1.0, "mu": 0.5}, eta=0.1, rho=0.01, batch_size=4)
      >>> isinstance(thm, TheoremB), thm.K_b
      (True, 1.75)
    """

    beta: float
    lam: float
    mu: float
    eta: float
    rho: float
    batch_size: int
    K_b: float
    c: float
    rate: float
    rho_max: float
    eta_max: float

    @property
    def applies(self) -> bool:
        return self.c > 0 and self.mu > 0

    def bound(self, t, f0: float) -> np.ndarray:
        """(1 − 2μηc)^t f(x_0) at the steps t (inf where a rate > 1, i.e. c < 0, overflows: no guarantee)."""
        with np.errstate(over="ignore"):
            return self.rate ** np.asarray(t, dtype=float) * f0


def k_b(beta: float, mu: float, batch_size: int) -> float:
    """K_b = (b − 1)/b + β/(bμ), the batch factor of Theorem B (THEORY.md §6): E‖∇f_ξ‖² ≤ K_b‖∇f‖².

    Example:
      >>> k_b(beta=2.0, mu=0.5, batch_size=4)                       # 3/4 + 2/(4·0.5)
      1.75
      >>> k_b(beta=2.0, mu=0.5, batch_size=1)                       # b = 1: β/μ
      4.0
    """
    return (batch_size - 1) / batch_size + beta / (batch_size * mu)


def theorem_b(constants, eta: float, rho: float, batch_size: int) -> TheoremB:
    """Evaluate Theorem B (THEORY.md §6) at (η, ρ, b).

    ``constants``: a dict {"beta", "lam", "mu"} or a `Constants` (from `sam_theory.convergence.constants`).

    Example:
      >>> consts = {"beta": 2.0, "lam": 1.0, "mu": 0.5}
      >>> thm = theorem_b(consts, eta=0.1, rho=0.01, batch_size=4)
      >>> round(thm.c, 6), round(thm.rate, 6)                       # rate = 1 − 2μηc
      (0.881465, 0.911853)
    """
    beta, lam, mu = (float(constants[k]) for k in ("beta", "lam", "mu"))
    check_positive("beta", beta)
    check_positive("lam", lam)
    check_positive("mu", mu)
    check_positive("eta", eta)
    check_nonnegative("rho", rho)
    b = check_int("batch_size", batch_size)
    K = k_b(beta, mu, b)
    c = 1.0 - 0.5 * beta * rho * (1.0 + K) - 0.5 * lam * eta * (1.0 + beta * rho) ** 2 * K
    return TheoremB(beta=beta, lam=lam, mu=mu, eta=float(eta), rho=float(rho), batch_size=b, K_b=K, c=c,
                    rate=1.0 - 2.0 * mu * eta * c, rho_max=1.0 / (2.0 * beta * (1.0 + K)),
                    eta_max=1.0 / (2.0 * lam * (1.0 + beta * rho) ** 2 * K))


def admissible_hyperparameters(constants, batch_size: int, *, rho_fraction: float = 1.0,
                               eta_fraction: float = 1.0) -> TheoremB:
    """Theorem B at ρ = rho_fraction · ρ_max and η = eta_fraction · η_max(ρ): c ≥ ½ for fractions ≤ 1.

    Example:
      >>> consts = {"beta": 2.0, "lam": 1.0, "mu": 0.5}
      >>> thm = admissible_hyperparameters(consts, batch_size=4)   # the edge of c ≥ ½
      >>> round(thm.c, 12), round(thm.rho, 6), round(thm.eta, 6)
      (0.5, 0.090909, 0.204565)
      >>> [round(float(v), 4) for v in thm.bound([0, 10], 1.0)]          # (1 − 2μηc)^t f(x_0)
      [1.0, 0.3399]
    """
    beta, mu = float(constants["beta"]), float(constants["mu"])
    check_positive("mu", mu)
    K = k_b(beta, mu, batch_size)
    rho = rho_fraction / (2.0 * beta * (1.0 + K))
    eta = eta_fraction / (2.0 * float(constants["lam"]) * (1.0 + beta * rho) ** 2 * K)
    return theorem_b(constants, eta, rho, batch_size)
