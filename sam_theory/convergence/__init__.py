"""Convergence-rate theory: Theorem B (THEORY.md §6), its constants β, λ, μ, and rate fitting."""
from .theorem_b_constants import (Constants, constants, ntk_gram, per_example_top_eigenvalues,
                                  smallest_nonzero_eigenvalue)
from .linear import LinearConvergence, check_linear_convergence, train_seeds
from .rates import LinearRate, fit_linear_rate
from .theorem_b import TheoremB, admissible_hyperparameters, k_b, theorem_b

__all__ = ["TheoremB", "theorem_b", "admissible_hyperparameters", "k_b", "fit_linear_rate", "LinearRate",
           "Constants", "constants", "ntk_gram", "per_example_top_eigenvalues", "smallest_nonzero_eigenvalue",
           "LinearConvergence", "check_linear_convergence", "train_seeds"]
