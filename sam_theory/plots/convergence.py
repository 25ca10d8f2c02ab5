"""Convergence figures: log f(x_t) against t, one curve per p, a band over seeds, and Theorem B's bound."""
from __future__ import annotations

import numpy as np

from .style import figure_for, new_figure, save


def plot_convergence(curves: dict, path, *, title: str = "Convergence", label: str = "p"):
    """``curves[p] = {"t", "mean", "se", "bound"}``: seed-mean ± 2 SE band (solid) and bound (dashed)."""
    fig, ax = new_figure()
    colors = iter(__import__("matplotlib").colormaps["viridis"](np.linspace(0.05, 0.85, len(curves))))
    for key, c in curves.items():
        color = next(colors)
        t, mean, se = np.asarray(c["t"]), np.asarray(c["mean"]), np.asarray(c["se"])
        ax.semilogy(t, mean, color=color, lw=2, label=f"{label}={key}: seed mean")
        ax.fill_between(t, np.maximum(mean - 2 * se, mean * 1e-3), mean + 2 * se, color=color, alpha=0.25)
        if c.get("bound") is not None:
            ax.semilogy(t, c["bound"], color=color, ls="--", lw=1.2, label=f"{label}={key}: Theorem B bound")
    ax.set_xlabel("step t")
    ax.set_ylabel("training loss f(x_t)")
    ax.set_title(title + " (band: ±2 SE over seeds; dashed: (1−2μηc)^t f(x₀))", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(True, which="both", alpha=0.3)
    return save(fig, path)


@figure_for("theorem_b.bound.linear_regression")
def _theorem_b_figure(data, path):
    return plot_convergence(data["curves"], path, title=data.get("title", "Theorem B"))
