"""Theorem checks. Every module of this package registers its checks on import (see `registry`)."""
import importlib
import pkgutil

from .registry import (REGISTRY, Check, CheckResult, Context, Criterion, above, at_least, at_most, below, holds,
                       register, render_figure, run_check, run_mutant, select)

for _mod in pkgutil.iter_modules(__path__):
    if _mod.name != "registry":
        importlib.import_module(f"{__name__}.{_mod.name}")

__all__ = ["REGISTRY", "Check", "CheckResult", "Context", "Criterion", "above", "at_least", "at_most", "below", "holds",
           "register", "render_figure", "run_check", "run_mutant", "select"]
