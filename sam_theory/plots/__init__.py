"""Figures (matplotlib, Agg backend). A check binds its figure function in `register(..., figure=fn)`; plots never
import checks (checks import plots).
"""
import importlib
import pkgutil

from .convergence import plot_convergence

for _mod in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_mod.name}")

__all__ = ["plot_convergence"]
