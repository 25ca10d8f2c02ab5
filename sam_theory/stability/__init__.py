"""Linear stability of stochastic SAM and the flatness of the minima it selects: Theorem A (THEORY.md §5).

Every function takes a `sam_theory.curvature.BatchCurvature` (per-example curvature + batch distribution); batch
expectations are exact by set partitions (§4.1), for any batch size.

- `step_map`: B_ξ = I − ηA_ξ on one batch, E[A_ξ] and the ends of its spectrum.
- `moments`: H and S_k (`batch_moment_matrices`), M = E[B_ξ²] (`moment_matrix`), T (`second_moment_operator`).
- `radius`: r(T) (`spectral_radius`, `is_linearly_stable`) and the critical learning rate η_c(ρ, b).
- `conditions`: the necessary conditions on a, s_2, s_3, s_4 and the one-dimensional (commuting) criterion.
- `phase`: the data of the (η, ρ) phase diagram (`sam_theory.plots.stability.plot_phase_diagram`).
- `selection`: the Hessian moments of the minima SGD and SAM reach from the same init (§5 (iv)).
- `simulate`: Monte Carlo of the linearized recursion against the exact Σ_t, and escape of the nonlinear optimizer.
"""
from .conditions import (NecessaryConditions, boundary_curves, curvature_summary, necessary_conditions,
                         necessary_conditions_at, one_dimensional_rate)
from .moments import (BatchMomentMatrices, batch_moment_matrices, moment_matrix, operator_pieces,
                      second_moment_apply, second_moment_operator)
from .phase import phase_diagram_data
from .radius import (STABILITY_TOL, CriticalLR, SpectralRadius, critical_learning_rate, is_linearly_stable,
                     radius_evaluator, spectral_radius)
from .selection import MinimaMoments, minima_moments
from .simulate import (EscapeResult, LinearizedSimulation, escape_test, propagate_second_moment,
                       simulate_linearized)
from .step_map import MeanStepSpectrum, mean_step, mean_step_sharpness, mean_step_spectrum, step_map

__all__ = ["moment_matrix", "batch_moment_matrices", "BatchMomentMatrices", "second_moment_operator",
           "second_moment_apply", "operator_pieces", "spectral_radius", "SpectralRadius", "is_linearly_stable",
           "critical_learning_rate", "CriticalLR", "radius_evaluator", "STABILITY_TOL", "mean_step",
           "mean_step_sharpness", "mean_step_spectrum", "MeanStepSpectrum", "step_map",
           "necessary_conditions", "necessary_conditions_at", "curvature_summary", "NecessaryConditions",
           "one_dimensional_rate", "boundary_curves",
           "simulate_linearized", "LinearizedSimulation", "propagate_second_moment", "escape_test", "EscapeResult",
           "phase_diagram_data", "minima_moments", "MinimaMoments"]
