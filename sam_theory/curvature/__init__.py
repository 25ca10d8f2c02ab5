"""Curvature: exact (dense) and matrix-free Hessian quantities (THEORY.md §4), batch moments by set partitions
(§4.1)."""
from .batch_moments import (BatchCurvature, crossing_estimate, dense_operator_bytes, expected_product,
                            partition_term, stochastic_moment, word_operator)
from .batches import BatchDistribution, batch_distribution, set_partitions
from .dense import flat_fn, hessian, per_example_hessians
from .eigh import eigh, eigvalsh
from .lanczos import Eigenpairs, LanczosResult, lanczos, top_eigenvalues
from .moments import HessianMoments, hessian_moments, moments_discrepancy, real_root
from .operators import LinearOperator, PerExampleHVP, from_dense, hvp, linear_operator, per_example_hvp
from .stochastic import (GaussQuadrature, SLQResult, SpectralDensity, TraceEstimate, gauss_quadrature, slq,
                         spectral_density, trace)

__all__ = ["hessian", "per_example_hessians", "flat_fn", "LinearOperator", "PerExampleHVP", "from_dense",
           "linear_operator", "hvp", "per_example_hvp", "lanczos", "LanczosResult", "top_eigenvalues",
           "Eigenpairs", "trace", "TraceEstimate", "slq", "SLQResult", "spectral_density", "SpectralDensity",
           "gauss_quadrature", "GaussQuadrature",
           "hessian_moments", "HessianMoments", "moments_discrepancy", "real_root", "eigh", "eigvalsh",
           "BatchCurvature", "BatchDistribution", "batch_distribution", "set_partitions", "expected_product",
           "stochastic_moment", "word_operator", "partition_term", "crossing_estimate", "dense_operator_bytes"]
