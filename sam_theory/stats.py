"""Statistics shared by the library and the checks: seed means, standard errors, z-scores, relative errors,
and the tolerances of THEORY.md's tags.

- [exact]: relative error below ``EXACT_TOL`` = 1e-10 in float64;
- [trend]: a direction over seeds holds when mean − ``Z_TREND``·SE > 0 (≈ 97.7% one-sided under normality);
- agreement of a Monte Carlo mean with an exact value at many points: max |z| ≤ ``max_abs_z_bound(K)``, the
  Bonferroni bound at family-wise level ``FAMILY_ALPHA`` over the K comparisons actually made.
"""
from __future__ import annotations

import dataclasses

import jax
import numpy as np

EXACT_TOL = 1e-10  # THEORY.md tag conventions: [exact] is a relative error below 1e-10 in float64
Z_TREND = 2.0  # a [trend] passes when the mean difference exceeds 2 standard errors (≈ 97.7% one-sided)
FAMILY_ALPHA = 1e-3  # false-failure rate of one max-|z| agreement criterion, whatever the number of comparisons


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
    """Mean over ``axis`` and its standard error std/√N (ddof = 1); SE = 0 for a single sample.

    NumPy in, NumPy out; a JAX array (or tracer) stays a JAX array, so jitted code (e.g. `curvature.trace`) uses
    the same formula.
    """
    x = samples if isinstance(samples, jax.Array) else np.asarray(samples, dtype=float)
    num = x.shape[axis]
    mean = x.mean(axis=axis)
    se = x.std(axis=axis, ddof=1) / num**0.5 if num > 1 else 0.0 * mean
    return mean, se


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


def max_abs_z_bound(num_comparisons: int, alpha: float = FAMILY_ALPHA, df: int | None = None) -> float:
    """Bound on max_k |z_k| over ``num_comparisons`` two-sided tests at family-wise level ``alpha`` (Bonferroni):
    the (1 − α/(2K)) quantile of the standard normal, or of Student's t with ``df`` degrees of freedom when each z
    is a mean over df + 1 samples divided by its estimated SE. Under the null P(max_k |z_k| > bound) ≤ α whatever
    the correlation between the comparisons (conservative when they are correlated, e.g. successive t).

    >>> round(max_abs_z_bound(1, alpha=0.05), 3), round(max_abs_z_bound(100), 2), round(max_abs_z_bound(100, df=31), 2)
    (1.96, 4.42, 5.27)
    """
    if int(num_comparisons) < 1:
        raise ValueError(f"num_comparisons must be ≥ 1, got {num_comparisons}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    from scipy import stats as sps  # imported here: scipy.stats costs ~0.3 s at import
    q = 1.0 - alpha / (2 * int(num_comparisons))
    return float(sps.norm.ppf(q) if df is None else sps.t.ppf(q, df))


def rel_err(a, b) -> float:
    """‖a − b‖ / ‖b‖ (Frobenius), with ‖b‖ floored at the smallest normal float64."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), np.finfo(float).tiny))
