"""Curvature: exact (dense) and matrix-free Hessian quantities (THEORY.md §4)."""
from .dense import flat_fn, hessian, per_example_hessians
from .eigh import eigh, eigvalsh
from .lanczos import Eigenpairs, LanczosResult, lanczos, top_eigenvalues
from .moments import (HessianMoments, enumerate_batches, hessian_moments, moment_matrices, moment_operator,
                      moments_discrepancy, s2_factor)
from .operators import LinearOperator, PerExampleHVP, from_dense, hvp, linear_operator, per_example_hvp
from .stochastic import SLQResult, SpectralDensity, TraceEstimate, slq, spectral_density, trace

__all__ = ["hessian", "per_example_hessians", "flat_fn", "LinearOperator", "PerExampleHVP", "from_dense",
           "linear_operator", "hvp", "per_example_hvp", "lanczos", "LanczosResult", "top_eigenvalues",
           "Eigenpairs", "trace", "TraceEstimate", "slq", "SLQResult", "spectral_density", "SpectralDensity",
           "hessian_moments", "HessianMoments", "moment_operator", "enumerate_batches", "s2_factor",
           "moments_discrepancy", "moment_matrices", "eigh", "eigvalsh"]
