"""Fitting linear (geometric) convergence rates to loss curves."""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy import stats


@dataclasses.dataclass(frozen=True)
class LinearRate:
    """Least-squares fit log f(x_t) ≈ log C + t · log r.

    Attributes:
      slope: d log f / dt (negative for convergence).  rate: r = exp(slope).
      ci: 95% confidence interval of the slope.  r2: coefficient of determination.  num_points: points used.
    """

    slope: float
    rate: float
    ci: tuple
    r2: float
    num_points: int


def fit_linear_rate(losses, steps=None, *, floor: float = 1e-250) -> LinearRate:
    """Fit a linear rate to a loss curve; points at or below ``floor`` (underflow) or non-finite are dropped."""
    losses = np.asarray(losses, dtype=float)
    steps = np.arange(losses.size) if steps is None else np.asarray(steps, dtype=float)
    keep = np.isfinite(losses) & (losses > floor)
    if keep.sum() < 3:
        raise ValueError("losses needs at least 3 finite points above the floor to fit a rate")
    fit = stats.linregress(steps[keep], np.log(losses[keep]))
    half = stats.t.ppf(0.975, keep.sum() - 2) * fit.stderr
    return LinearRate(slope=float(fit.slope), rate=float(np.exp(fit.slope)),
                      ci=(float(fit.slope - half), float(fit.slope + half)), r2=float(fit.rvalue**2),
                      num_points=int(keep.sum()))
