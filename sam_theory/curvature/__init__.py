"""Curvature: exact (dense) and matrix-free Hessian quantities (THEORY.md §4)."""
from .dense import flat_fn, hessian, per_example_hessians
from .lanczos import Eigenpairs, LanczosResult, lanczos, top_eigenvalues
from .operators import LinearOperator, PerExampleHVP, from_dense, hvp, linear_operator, per_example_hvp

__all__ = ["hessian", "per_example_hessians", "flat_fn", "LinearOperator", "PerExampleHVP", "from_dense",
           "linear_operator", "hvp", "per_example_hvp", "lanczos", "LanczosResult", "top_eigenvalues",
           "Eigenpairs"]
