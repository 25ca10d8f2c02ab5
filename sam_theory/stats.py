"""Statistics shared by the library and the checks: seed means, standard errors, z-scores, relative errors,
and the tolerances of THEORY.md's tags.

- [exact]: relative error below ``EXACT_TOL`` = 1e-10 in float64;
- [trend]: a direction over seeds holds when mean − ``Z_TREND``·SE > 0 (≈ 97.7% one-sided under normality).
"""
from __future__ import annotations

import dataclasses

import numpy as np

EXACT_TOL = 1e-10  # THEORY.md tag conventions: [exact] is a relative error below 1e-10 in float64
Z_TREND = 2.0  # a [trend] passes when the mean difference exceeds 2 standard errors (≈ 97.7% one-sided)


@dataclasses.dataclass(frozen=True)
class MeanSE:
    """A sample mean with its standard error std/√N (ddof = 1) over ``num`` samples."""

    mean: float
    se: float
    num: int

    def __str__(self) -> str:
        return f"{self.mean:.4g} ± {self.se:.2g} (n={self.num})"

    @property
    def z(self) -> float:
        """mean / SE (±inf when SE = 0 and mean ≠ 0, 0 when both are 0)."""
        if self.se > 0:
            return self.mean / self.se
        return 0.0 if self.mean == 0 else float(np.sign(self.mean) * np.inf)


def mean_se(samples, axis=0):
    """Mean over ``axis`` and its standard error std/√N (ddof = 1); SE = 0 for a single sample."""
    x = np.asarray(samples, dtype=float)
    num = x.shape[axis]
    se = x.std(axis=axis, ddof=1) / np.sqrt(num) if num > 1 else np.zeros_like(x.mean(axis=axis))
    return x.mean(axis=axis), se


def nan_mean_se(samples, axis=0):
    """`mean_se` ignoring NaNs (diverged runs): each entry's count is its number of finite samples along ``axis``;
    the SE is NaN where fewer than 2 are finite."""
    x = np.asarray(samples, dtype=float)
    finite = np.isfinite(x)
    num = np.sum(finite, axis=axis)
    total = np.sum(np.where(finite, x, 0.0), axis=axis)
    mean = np.where(num > 0, total / np.maximum(num, 1), np.nan)
    dev2 = np.sum(np.where(finite, (x - np.expand_dims(mean, axis)) ** 2, 0.0), axis=axis)
    sd = np.where(num > 1, np.sqrt(dev2 / np.maximum(num - 1, 1)), np.nan)  # per entry; no SE from < 2 samples
    return mean, sd / np.sqrt(np.maximum(num, 1))


def summarize(samples) -> MeanSE:
    """`MeanSE` of all entries of ``samples``."""
    m, s = mean_se(np.ravel(samples))
    return MeanSE(float(m), float(s), int(np.size(samples)))


def paired(a, b) -> MeanSE:
    """Paired difference a − b over matched seeds (same data, init and batches)."""
    return summarize(np.asarray(a, dtype=float) - np.asarray(b, dtype=float))


def unpaired_z(a, b) -> float:
    """Welch z of mean(a) − mean(b) for independent samples: (ā − b̄)/√(SE_a² + SE_b²)."""
    sa, sb = summarize(a), summarize(b)
    return MeanSE(sa.mean - sb.mean, float(np.hypot(sa.se, sb.se)), min(sa.num, sb.num)).z


def direction_holds(differences, z: float = Z_TREND) -> tuple[bool, MeanSE]:
    """True iff mean(differences) − z · SE > 0: the direction holds beyond the error bar."""
    s = summarize(differences)
    return bool(s.mean - z * s.se > 0), s


def rel_err(a, b) -> float:
    """‖a − b‖ / ‖b‖ (Frobenius), with ‖b‖ floored at the smallest normal float64."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), np.finfo(float).tiny))
