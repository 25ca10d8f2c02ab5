"""Theorem A (iv) figure: Hessian moments of the minima SGD and SAM reach, against the width knob (THEORY.md §5)."""
from __future__ import annotations

import numpy as np

from .style import figure_for, new_figure, save

MOMENT_LABELS = {"a": "a = λ_max(H)", "s2": "s₂ = λ_max(S₂)^{1/2}", "s3": "s₃ = λ_max(S₃)^{1/3}",
                 "s4": "s₄ = λ_max(S₄)^{1/4}"}


def plot_moments_vs_width(data: dict, path, *, title: str = "Minima selected by SGD and SAM (Theorem A iv)"):
    """One panel per moment: seed mean ± 2 SE of SGD's and SAM's moment at the reached minimum, against the knob.

    ``data = {"knob": "d", "results": {knob value: MinimaMoments}, "eta": η, "rho": ρ}`` (what
    `theorem_a.gap_grows_with_width` returns).
    """
    results = data["results"]
    knobs = np.array(sorted(results))
    fig, axes = new_figure(ncols=4, width=3.6, height=3.4)
    for ax, (m, label) in zip(axes, MOMENT_LABELS.items()):
        for name, color, marker in (("SGD", "tab:blue", "o"), ("SAM", "tab:red", "s")):
            vals = np.array([results[k].moment(name, m) for k in knobs])  # (knobs, seeds)
            mean = np.nanmean(vals, axis=1)
            se = np.nanstd(vals, axis=1, ddof=1) / np.sqrt(vals.shape[1])
            ax.errorbar(knobs, mean, yerr=2 * se, color=color, marker=marker, capsize=3, lw=1.5,
                        label=f"{name}" + ("" if name == "SGD" else f" (USAM ρ={data.get('rho', '?')})"))
        ax.set_xscale("log")
        ax.set_xticks(knobs)
        ax.set_xticklabels([str(k) for k in knobs])
        ax.set_xlabel(f"overparameterization knob {data.get('knob', 'width')}")
        ax.set_ylabel(label)
        ax.set_title(label, fontsize=9)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{title}; η={data.get('eta', '?')}, error bars ±2 SE over seeds", fontsize=9)
    return save(fig, path)


@figure_for("theorem_a.gap_grows_with_width")
def _selection_figure(data, path):
    return plot_moments_vs_width(data, path)
