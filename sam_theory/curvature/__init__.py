"""Curvature: exact (dense) and matrix-free Hessian quantities (THEORY.md §4)."""
from .dense import flat_fn, hessian, per_example_hessians

__all__ = ["hessian", "per_example_hessians", "flat_fn"]
