"""Necessary conditions for linear stability of stochastic USAM (THEORY.md §5, [bound]).

In one dimension (and, when all H_i commute, in every common eigendirection j) stability holds iff

  g(a, S_2, S_3, S_4) = (1 − ηa − ηρa²)² + η(η − 2ρ) S_2 + 2η²ρ S_3 + η²ρ² S_4 ≤ 1,

with a = H_jj and S_k = (S_k)_jj = s_k^k. For η ≥ 2ρ every term is ≥ 0, so each is ≤ 1:

  a ≤ (√(1 + 8ρ/η) − 1)/(2ρ)   (→ 2/η as ρ → 0; equivalent to a + ρa² ≤ 2/η),
  s_2 ≤ 1/√(η(η − 2ρ))  (η > 2ρ),   s_3 ≤ (2η²ρ)^{−1/3},   s_4 ≤ (ηρ)^{−1/2}.

In any dimension λ_max(H + ρE[H_ξ²]) ≤ 2/η is necessary (the mean iterate), hence a + ρa² ≤ 2/η.
Bounds that do not apply (s_2 for η ≤ 2ρ; s_3, s_4 for η < 2ρ, where the S_2 term is negative and the
per-term argument fails) are reported with ``applies = False`` and count as holding.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..validation import check_nonnegative, check_positive

NAMES = ("a", "s2", "s3", "s4", "a_plus_rho_a2")


def one_dimensional_rate(a, S2, S3, S4, eta, rho):
    """g = (1 − ηa − ηρa²)² + η(η−2ρ)S_2 + 2η²ρS_3 + η²ρ²S_4: E[(1 − ηA_ξ)²] in one dimension (S_k = s_k^k).

    Vectorized over NumPy arrays (e.g. the diagonals of commuting H, S_k)."""
    a = np.asarray(a, dtype=float)
    return ((1 - eta * a - eta * rho * a**2) ** 2 + eta * (eta - 2 * rho) * np.asarray(S2)
            + 2 * eta**2 * rho * np.asarray(S3) + eta**2 * rho**2 * np.asarray(S4))


@dataclasses.dataclass(frozen=True)
class NecessaryConditions:
    """Each necessary bound of THEORY.md §5 at (η, ρ).

    Attributes:
      values: {name: measured} for a, s2, s3, s4 and a + ρa² ("a_plus_rho_a2").
      bounds: {name: bound} (inf where the bound is vacuous, e.g. s_3, s_4 at ρ = 0).
      applies: {name: whether the bound is a theorem at this (η, ρ)}.
      holds: {name: value ≤ bound·(1 + rtol), or not applicable}.
      eta, rho, rtol.
    """

    values: dict
    bounds: dict
    applies: dict
    holds: dict
    eta: float
    rho: float
    rtol: float

    @property
    def all_hold(self) -> bool:
        return all(self.holds.values())

    def violated(self) -> list:
        return [k for k, v in self.holds.items() if not v]


def necessary_conditions(a, s2, s3, s4, eta, rho, *, rtol: float = 1e-12) -> NecessaryConditions:
    """The bounds of THEORY.md §5 for a = λ_max(H) and s_k = λ_max(S_k)^{1/k}, with a relative slack ``rtol``
    (round-off only; default 1e-12)."""
    eta = float(check_positive("eta", eta))
    rho = float(check_nonnegative("rho", rho))
    check_nonnegative("rtol", rtol)
    a_bound = (math.sqrt(1 + 8 * rho / eta) - 1) / (2 * rho) if rho > 0 else 2 / eta
    if rho > 0 and 8 * rho / eta < 1e-6:  # cancellation: use the series 2/η − 4ρ/η² + ...
        x = 8 * rho / eta
        a_bound = (x / 2 - x**2 / 8 + x**3 / 16) / (2 * rho)
    inf = math.inf
    bounds = {
        "a": a_bound,
        "s2": 1 / math.sqrt(eta * (eta - 2 * rho)) if eta > 2 * rho else inf,
        "s3": (2 * eta**2 * rho) ** (-1 / 3) if rho > 0 else inf,
        "s4": (eta * rho) ** -0.5 if rho > 0 else inf,
        "a_plus_rho_a2": 2 / eta,
    }
    applies = {"a": True, "s2": eta > 2 * rho, "s3": eta >= 2 * rho, "s4": eta >= 2 * rho, "a_plus_rho_a2": True}
    values = {"a": float(a), "s2": float(s2), "s3": float(s3), "s4": float(s4),
              "a_plus_rho_a2": float(a) + rho * float(a) ** 2}
    holds = {k: (not applies[k]) or values[k] <= bounds[k] * (1 + rtol) for k in NAMES}
    return NecessaryConditions(values, bounds, applies, holds, eta, rho, rtol)


def boundary_curves(a, s2, s3, s4, rhos):
    """η at which each bound becomes tight, as functions of ρ (for phase diagrams): each condition holds for
    η below its curve. a: η = 2/(a + ρa²); s_2: η = ρ + √(ρ² + 1/s_2²); s_3: η = (2ρs_3³)^{−1/2};
    s_4: η = 1/(ρ s_4²)."""
    rhos = np.asarray(rhos, dtype=float)
    with np.errstate(divide="ignore"):
        return {
            "a": 2 / (a + rhos * a**2),
            "s2": rhos + np.sqrt(rhos**2 + 1 / s2**2),
            "s3": (2 * rhos * s3**3) ** -0.5,
            "s4": 1 / (rhos * s4**2),
        }


def curvature_summary(curv):
    """(a, s_2, s_3, s_4): a = λ_max(H), s_k = real k-th root of λ_max(S_k), S_k = E_ξ[H_ξ^k] − H^k (THEORY.md §4),
    from a `sam_theory.curvature.BatchCurvature` (dense p×p moments by set partitions; small p)."""
    from .moments import batch_moment_matrices  # same layer; imported here to keep this module's core NumPy-only
    m = batch_moment_matrices(curv)
    return (m.a, m.s(2), m.s(3), m.s(4))


def necessary_conditions_at(curv, eta, rho, *, rtol: float = 1e-12) -> NecessaryConditions:
    """`necessary_conditions` with a, s_k computed from a `BatchCurvature` (its batch size and sampling)."""
    return necessary_conditions(*curvature_summary(curv), eta, rho, rtol=rtol)
