"""Theorem checks. Every module of this package registers its checks on import (see `registry`)."""
import importlib
import pkgutil

from .registry import REGISTRY, Check, CheckResult, Context, register, run_check, select

for _mod in pkgutil.iter_modules(__path__):
    if _mod.name not in ("registry", "stats"):
        importlib.import_module(f"{__name__}.{_mod.name}")

__all__ = ["REGISTRY", "Check", "CheckResult", "Context", "register", "run_check", "select"]
