"""Shared figure helpers.

A check's figure is bound to it by reference (`sam_theory.checks.register(..., figure=fn)`), with a typed
payload.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

def new_figure(ncols: int = 1, width: float = 6.0, height: float = 4.2):
    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), constrained_layout=True)
    return fig, axes


def save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def finish(fig, ax, path, *, xlabel: str, ylabel: str, title: str, grid: str = "both") -> Path:
    """Label a one-axes figure, add its legend and grid (``grid``: which ticks), and save it."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(True, which=grid, alpha=0.3)
    return save(fig, path)
