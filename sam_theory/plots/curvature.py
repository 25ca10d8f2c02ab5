"""Figures of the curvature checks (THEORY.md §4)."""
from __future__ import annotations

import dataclasses

import numpy as np

from .style import new_figure, save


@dataclasses.dataclass(frozen=True)
class TraceCalibrationData:
    """(estimate − tr)/SE over seeds per method (``z``: method → array) and the exact trace."""

    exact: float
    z: dict


def plot_trace_calibration(data: TraceCalibrationData, path):
    """Histogram of (estimate − tr)/SE over seeds for Hutchinson and Hutch++ against the standard normal:
    a calibrated standard error gives unit spread (a t distribution with g − 1 degrees of freedom for g probes:
    sd(z) = √((g−1)/(g−3)), 1.04 for Hutchinson's 30 probes and 1.13 for Hutch++'s 10 residual probes in quick
    mode)."""
    fig, ax = new_figure()
    grid = np.linspace(-4.5, 4.5, 200)
    for method, z in data.z.items():
        z = np.asarray(z)
        ax.hist(z, bins=30, range=(-4.5, 4.5), density=True, histtype="step", lw=1.5,
                label=f"{method}: sd(z) = {z.std(ddof=1):.2f}")
    ax.plot(grid, np.exp(-grid**2 / 2) / np.sqrt(2 * np.pi), "k--", lw=1, label="N(0, 1)")
    ax.set_xlabel("(estimate − exact trace) / reported standard error")
    ax.set_ylabel("density")
    ax.set_title(f"Trace estimators over seeds (exact tr H = {data.exact:.4g})")
    ax.legend()
    return save(fig, path)
