"""Statistics for [trend] and [bound] checks: seed means, standard errors, and one-sided direction tests."""
from __future__ import annotations

import dataclasses

import numpy as np

Z_TREND = 2.0  # a [trend] passes when the mean difference exceeds 2 standard errors (≈ 97.7% one-sided)


@dataclasses.dataclass(frozen=True)
class MeanSE:
    mean: float
    se: float
    num: int

    def __str__(self) -> str:
        return f"{self.mean:.4g} ± {self.se:.2g} (n={self.num})"

    @property
    def z(self) -> float:
        return self.mean / self.se if self.se > 0 else (np.inf if self.mean > 0 else -np.inf)


def mean_se(samples, axis=0):
    """Mean over ``axis`` and its standard error std/√N (ddof = 1)."""
    x = np.asarray(samples, dtype=float)
    num = x.shape[axis]
    se = x.std(axis=axis, ddof=1) / np.sqrt(num) if num > 1 else np.zeros_like(x.mean(axis=axis))
    return x.mean(axis=axis), se


def summarize(samples) -> MeanSE:
    m, s = mean_se(np.ravel(samples))
    return MeanSE(float(m), float(s), int(np.size(samples)))


def direction_holds(differences, z: float = Z_TREND) -> tuple[bool, MeanSE]:
    """True iff mean(differences) − z · SE > 0: the direction holds beyond the error bar."""
    s = summarize(differences)
    return bool(s.mean - z * s.se > 0), s
