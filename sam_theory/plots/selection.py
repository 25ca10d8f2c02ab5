"""Theorem A (iv) figure: Hessian moments of the minima SGD and SAM reach, against the width knob (THEORY.md §5)."""
from __future__ import annotations

import numpy as np

from .style import figure_for, save

MOMENT_LABELS = {"a": r"$a = \lambda_{\max}(H)$", "s2": r"$s_2 = \lambda_{\max}(S_2)^{1/2}$",
                 "s3": r"$s_3 = \lambda_{\max}(S_3)^{1/3}$", "s4": r"$s_4 = \lambda_{\max}(S_4)^{1/4}$"}


def plot_moments_vs_width(data: dict, path, *, title: str = "Minima selected by SGD and SAM (Theorem A iv)"):
    """One column per moment. Top: seed mean ± 2 SE of SGD's and SAM's moment at the reached minimum, against the
    knob; bottom: the relative gap (SGD − SAM)/SGD per seed, mean ± 2 SE (what the check tests).

    ``data = {"knob": "d", "results": {knob value: MinimaMoments}, "eta": η, "rho": ρ}`` (what
    `theorem_a.gap_grows_with_width` returns).
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    results = data["results"]
    knobs = np.array(sorted(results))
    fig, grid = plt.subplots(2, 4, figsize=(14.4, 6.4), constrained_layout=True, sharex=True)
    axes = grid[0]
    band = lambda vals: (np.nanmean(vals, axis=1), 2 * np.nanstd(vals, axis=1, ddof=1) / np.sqrt(vals.shape[1]))
    for ax, gap_ax, (m, label) in zip(grid[0], grid[1], MOMENT_LABELS.items()):
        for name, color, marker in (("SGD", "tab:blue", "o"), ("SAM", "tab:red", "s")):
            mean, err = band(np.array([results[k].moment(name, m) for k in knobs]))  # (knobs, seeds)
            ax.errorbar(knobs, mean, yerr=err, color=color, marker=marker, capsize=3, lw=1.5,
                        label=name if name == "SGD" else f"SAM (USAM, ρ={data.get('rho', '?')})")
        mean, err = band(np.array([results[k].paired_gap(m, "SGD", "SAM", relative=True) for k in knobs]))
        gap_ax.errorbar(knobs, mean, yerr=err, color="k", marker="D", capsize=3, lw=1.5)
        gap_ax.axhline(0.0, color="gray", lw=0.8, ls="--")
        gap_ax.set_ylabel("relative gap (SGD − SAM)/SGD")
        gap_ax.set_xlabel(f"overparameterization knob {data.get('knob', 'width')} (log scale)")
        for axis in (ax, gap_ax):
            axis.set_xscale("log")
            axis.set_xticks(knobs)
            axis.set_xticklabels([str(k) for k in knobs])
            axis.xaxis.set_minor_formatter(NullFormatter())
            axis.grid(True, alpha=0.3)
        ax.set_ylabel(label)
        ax.set_title(label + " at the reached minimum", fontsize=9)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{title}; η={data.get('eta', '?')}, error bars ±2 SE over seeds", fontsize=9)
    return save(fig, path)


@figure_for("theorem_a.gap_grows_with_width")
def _selection_figure(data, path):
    return plot_moments_vs_width(data, path)
