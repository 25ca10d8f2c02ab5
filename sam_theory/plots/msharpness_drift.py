"""Figure of `msharpness.drift_identity` (THEORY.md §8)."""
from __future__ import annotations

import dataclasses

import numpy as np
from matplotlib.ticker import NullFormatter

from .style import new_figure, save


@dataclasses.dataclass(frozen=True)
class DriftData:
    """Per (m, with/without replacement): ‖excess of m-USAM over n-SAM‖ measured and predicted."""

    m: list
    replace: list
    excess_norm: list
    predicted_norm: list
    title: str = "m-sharpness drift"


def plot_drift_identity(data: DriftData, path):
    """‖E_ξ[m-USAM direction] − n-SAM direction‖ (markers, exact enumeration) against the prediction
    (ρ c_m/2)‖∇ tr Σ_g‖ (lines), c_m = 1/m with and (n−m)/(m(n−1)) without replacement."""
    fig, ax = new_figure()
    m, rep = np.asarray(data.m), np.asarray(data.replace, dtype=bool)
    measured, predicted = np.asarray(data.excess_norm), np.asarray(data.predicted_norm)
    for flag, label, color in ((True, "with replacement, c_m = 1/m", "C0"),
                               (False, "without replacement, c_m = (n−m)/(m(n−1))", "C1")):
        sel = rep == flag
        order = np.argsort(m[sel])
        ax.plot(m[sel][order], predicted[sel][order], "-", color=color, label=f"prediction, {label}")
        ax.plot(m[sel][order], measured[sel][order], "o", color=color, mfc="none", ms=9,
                label="measured (enumerated batches)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(sorted(set(m.tolist())))
    ax.set_xticklabels([str(v) for v in sorted(set(m.tolist()))])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("micro-batch size m")
    ax.set_ylabel("‖excess of m-USAM over n-SAM‖")
    ax.set_title(data.title, fontsize=10)
    ax.legend(fontsize=8)
    return save(fig, path)
