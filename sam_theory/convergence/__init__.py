"""Convergence theory: Theorem B (THEORY.md §6) with its constants β, λ, μ and rate fitting; the edge of stability
of normalized SAM (§7, `eos`); the implicit bias of GD on diagonal linear nets (§9, `implicit_bias`)."""
from .theorem_b_constants import (Constants, constants, ntk_gram, per_example_top_eigenvalues,
                                  smallest_nonzero_eigenvalue)
from .linear import LinearConvergence, check_linear_convergence, train_seeds
from .eos import mode_factors, sam_edge, two_cycle_amplitude, two_cycle_contraction
from .implicit_bias import PotentialMinimizer, hyperbolic_entropy, hyperbolic_entropy_grad, minimize_potential
from .rates import LinearRate, fit_linear_rate
from .theorem_b import TheoremB, admissible_hyperparameters, k_b, theorem_b

__all__ = ["TheoremB", "theorem_b", "admissible_hyperparameters", "k_b", "fit_linear_rate", "LinearRate",
           "Constants", "constants", "ntk_gram", "per_example_top_eigenvalues", "smallest_nonzero_eigenvalue",
           "LinearConvergence", "check_linear_convergence", "train_seeds",
           "sam_edge", "two_cycle_amplitude", "two_cycle_contraction", "mode_factors",
           "hyperbolic_entropy", "hyperbolic_entropy_grad", "minimize_potential", "PotentialMinimizer"]
