"""Convergence-rate theory: Theorem B (THEORY.md §6) and rate fitting."""
from .rates import fit_linear_rate
from .theorem_b import TheoremB, admissible_hyperparameters, k_b, theorem_b

__all__ = ["TheoremB", "theorem_b", "admissible_hyperparameters", "k_b", "fit_linear_rate"]
