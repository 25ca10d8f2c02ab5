"""Figures (matplotlib, Agg backend). A check binds its figure function in `register(..., figure=fn)`; plots never
import checks (checks import plots). `FIGURES` is the TRANSITIONAL name registry of the figures not yet bound.
"""
import importlib
import pkgutil

from .convergence import plot_convergence
from .style import FIGURES, figure_for

for _mod in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_mod.name}")

__all__ = ["plot_convergence", "FIGURES", "figure_for"]
