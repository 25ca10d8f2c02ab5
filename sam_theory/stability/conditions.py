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

    Vectorized over NumPy arrays (e.g. the diagonals of commuting H, S_k).

    Example (H_1 = diag(3, 2), H_2 = diag(1, 0), b = 1: H = diag(2, 1), S_2 = diag(1, 1), S_3 = diag(6, 3),
    S_4 = diag(25, 7); direct: A_ξ,1 ∈ {7.5, 1.5} gives E[(1 − ηA)²] = 1 − 2η·4.5 + η²·29.25 = 0.578125 at η = 0.25,
    ρ = 0.5, and A_ξ,2 ∈ {4, 0} gives 1 − 2η·2 + η²·8 = 0.5; g = 1 exactly at the threshold η = 2E[A]/E[A²] = 4/13):
      >>> import numpy as np
      >>> one_dimensional_rate([2.0, 1.0], [1.0, 1.0], [6.0, 3.0], [25.0, 7.0], 0.25, 0.5).round(6).tolist()
      [0.578125, 0.5]
      >>> round(float(one_dimensional_rate(2.0, 1.0, 6.0, 25.0, 4 / 13, 0.5)), 12)
      1.0
    """
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

    ``all_hold``: every bound holds; ``violated()``: the names of those that do not.

    Example (returned by `necessary_conditions`; a = 5 breaks a ≤ (√(1 + 8ρ/η) − 1)/(2ρ) and a + ρa² ≤ 2/η at
    η = 0.3, ρ = 0.1; the s_k bounds hold):
      >>> nc = necessary_conditions(5.0, 1.0, 1.0, 1.0, eta=0.3, rho=0.1)
      >>> nc.all_hold, nc.violated(), nc.values["a_plus_rho_a2"], round(nc.bounds["a_plus_rho_a2"], 6)
      (False, ['a', 'a_plus_rho_a2'], 7.5, 6.666667)
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
    (round-off only; default 1e-12).

    Example (the bounds of THEORY.md §5 at η = 0.3, ρ = 0.1, where η ≥ 2ρ so every bound applies:
    (√(1 + 8/3) − 1)/0.2, 1/√(0.3·0.1), (2·0.09·0.1)^{−1/3}, (0.03)^{−1/2}; at ρ = 0, SGD's a ≤ 2/η and s_2 ≤ 1/η):
      >>> import math
      >>> nc = necessary_conditions(2.0, 1.0, 6 ** (1 / 3), 5 ** 0.5, eta=0.3, rho=0.1)
      >>> {k: round(v, 6) for k, v in nc.bounds.items()}
      {'a': 4.574271, 's2': 5.773503, 's3': 3.815714, 's4': 5.773503, 'a_plus_rho_a2': 6.666667}
      >>> round((math.sqrt(1 + 8 * 0.1 / 0.3) - 1) / (2 * 0.1), 6), nc.all_hold
      (4.574271, True)
      >>> sgd = necessary_conditions(2.0, 1.0, 0.0, 0.0, eta=0.3, rho=0.0)
      >>> round(sgd.bounds["a"], 6), round(sgd.bounds["s2"], 6), sgd.bounds["s3"]
      (6.666667, 3.333333, inf)
    """
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
    s_4: η = 1/(ρ s_4²).

    Example (a = 2, s_2 = 1, s_3 = 6^{1/3}, s_4 = √5 at ρ = 0.5: 2/(2 + 2), 0.5 + √(0.25 + 1), (2·0.5·6)^{−1/2},
    1/(0.5·5); at ρ = 0 the s_3 and s_4 curves are +inf, no constraint):
      >>> import numpy as np
      >>> curves = boundary_curves(2.0, 1.0, 6 ** (1 / 3), 5 ** 0.5, [0.0, 0.5])
      >>> {k: np.round(v, 6).tolist() for k, v in curves.items()}
      {'a': [1.0, 0.5], 's2': [1.0, 1.618034], 's3': [inf, 0.408248], 's4': [inf, 0.4]}
    """
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
    from a `sam_theory.curvature.BatchCurvature` (dense p×p moments by set partitions; small p).

    Example (b = 1: S_2 = diag(1, 1), S_3 = diag(6, 3), S_4 = diag(25, 7), so s_2 = 1, s_3 = 6^{1/3},
    s_4 = 25^{1/4} = √5; full batch b = n: every S_k = 0):
      >>> import numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import BatchCurvature
      >>> Hs = np.array([np.diag([3.0, 2.0]), np.diag([1.0, 0.0])])   # commuting H_1, H_2: H = diag(2, 1)
      >>> with float64():
      ...     single = curvature_summary(BatchCurvature.from_hessians(Hs, batch_size=1))
      ...     full = curvature_summary(BatchCurvature.from_hessians(Hs, batch_size=2))
      >>> [round(v, 6) for v in single], [round(v, 6) + 0.0 for v in full]
      ([2.0, 1.0, 1.817121, 2.236068], [2.0, 0.0, 0.0, 0.0])
    """
    from .moments import batch_moment_matrices  # same layer; imported here to keep this module's core NumPy-only
    m = batch_moment_matrices(curv)
    return (m.a, m.s(2), m.s(3), m.s(4))


def necessary_conditions_at(curv, eta, rho, *, rtol: float = 1e-12) -> NecessaryConditions:
    """`necessary_conditions` with a, s_k computed from a `BatchCurvature` (its batch size and sampling).

    Example (b = 1: η_c(ρ = 0.5) = 4/13 ≈ 0.308 (`critical_learning_rate`); at the stable η = 0.3 every
    necessary bound that applies holds, and for η < 2ρ the s_k bounds do not apply; at the unstable η = 0.6,
    a + ρa² = 4 > 2/η breaks):
      >>> import numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import BatchCurvature
      >>> Hs = np.array([np.diag([3.0, 2.0]), np.diag([1.0, 0.0])])   # commuting H_1, H_2: H = diag(2, 1)
      >>> with float64():
      ...     curv = BatchCurvature.from_hessians(Hs, batch_size=1)
      ...     stable, unstable = necessary_conditions_at(curv, 0.3, 0.5), necessary_conditions_at(curv, 0.6, 0.5)
      >>> stable.all_hold, stable.applies["s2"], unstable.violated()
      (True, False, ['a', 'a_plus_rho_a2'])
    """
    return necessary_conditions(*curvature_summary(curv), eta, rho, rtol=rtol)
