"""Figures (matplotlib, Agg backend). `FIGURES` maps a check name to the function that renders its data.

Every module of this package is imported here, so a module registers its per-check figures with `figure_for`.
"""
import importlib
import pkgutil

from .convergence import plot_convergence
from .style import FIGURES, figure_for, render_check_figure

for _mod in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_mod.name}")

__all__ = ["plot_convergence", "FIGURES", "figure_for", "render_check_figure"]
