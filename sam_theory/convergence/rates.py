"""Fitting linear (geometric) convergence rates to loss curves."""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class LinearRate:
    """Least-squares fit log f(x_t) ≈ log C + t · log r.

    Attributes:
      slope: d log f / dt (negative for convergence).  rate: r = exp(slope).
      ci: 95% confidence interval of the slope (Student t, num_points − 2 degrees of freedom).
      rate_ci: the same interval mapped to the rate, (exp(ci[0]), exp(ci[1])).
      r2: coefficient of determination.  num_points: points used.  intercept: log C.

    Example:
      >>> import numpy as np
      >>> from sam_theory.convergence import fit_linear_rate
      >>> round(fit_linear_rate(0.5 ** np.arange(10)).slope, 6)  # log 0.5
      -0.693147
    """

    slope: float
    rate: float
    ci: tuple
    r2: float
    num_points: int
    intercept: float = float("nan")

    @property
    def rate_ci(self) -> tuple:
        return (float(np.exp(self.ci[0])), float(np.exp(self.ci[1])))


def fit_linear_rate(losses, steps=None, *, floor: float = 1e-250) -> LinearRate:
    """Fit log f(x_t) = log C + t log r by least squares (THEORY.md §6: E f(x_t) ≤ r^t f(x_0) is a line in log f).

    Points at or below ``floor`` (underflow, round-off plateau) or non-finite are dropped; at least 3 must remain.
    Returns a `LinearRate` with the slope, the rate r, their 95% confidence intervals and R².

    Example:
      >>> import numpy as np
      >>> fit = fit_linear_rate(0.9 ** np.arange(20), np.arange(20))
      >>> round(fit.rate, 12), round(fit.r2, 12)
      (0.9, 1.0)
    """
    losses = np.asarray(losses, dtype=float)
    steps = np.arange(losses.size) if steps is None else np.asarray(steps, dtype=float)
    keep = np.isfinite(losses) & (losses > floor)
    if keep.sum() < 3:
        raise ValueError("losses needs at least 3 finite points above the floor to fit a rate")
    from scipy import stats  # deferred: scipy.stats costs ~0.4 s at import, needed only here

    fit = stats.linregress(steps[keep], np.log(losses[keep]))
    half = stats.t.ppf(0.975, keep.sum() - 2) * fit.stderr
    return LinearRate(slope=float(fit.slope), rate=float(np.exp(fit.slope)),
                      ci=(float(fit.slope - half), float(fit.slope + half)), r2=float(fit.rvalue**2),
                      num_points=int(keep.sum()), intercept=float(fit.intercept))
