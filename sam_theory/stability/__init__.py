"""Linear stability of stochastic SAM and the flatness of the minima it selects: Theorem A (THEORY.md §5).

- `operator`: the moment matrix M = E[(I − ηA_ξ)²] (expectation and the four-term identity), the second-moment
  operator T, its spectral radius r(T), `is_linearly_stable`, the critical learning rate η_c(ρ, b).
- `conditions`: the necessary conditions on a, s_2, s_3, s_4 and the one-dimensional (commuting) criterion.
- `phase`: the data of the (η, ρ) phase diagram (`sam_theory.plots.stability.plot_phase_diagram`).
- `selection`: the Hessian moments of the minima SGD and SAM reach from the same init (§5 (iv)).
- `simulate`: Monte Carlo of the linearized recursion against the exact Σ_t, and escape of the nonlinear optimizer.
"""
from .conditions import (NecessaryConditions, boundary_curves, curvature_summary, necessary_conditions,
                         necessary_conditions_at, one_dimensional_rate)
from .operator import (CriticalLR, SpectralRadius, critical_learning_rate, curvature_source, is_linearly_stable,
                       mean_step_sharpness, moment_matrix, second_moment_operator, spectral_radius,
                       stochastic_moments)
from .phase import phase_diagram_data
from .selection import MinimaMoments, minima_moments
from .simulate import (EscapeResult, LinearizedSimulation, escape_test, propagate_second_moment,
                       simulate_linearized)

__all__ = ["moment_matrix", "stochastic_moments", "second_moment_operator", "spectral_radius", "SpectralRadius",
           "is_linearly_stable", "critical_learning_rate", "CriticalLR", "mean_step_sharpness", "curvature_source",
           "necessary_conditions", "necessary_conditions_at", "curvature_summary", "NecessaryConditions",
           "one_dimensional_rate", "boundary_curves",
           "simulate_linearized", "LinearizedSimulation", "propagate_second_moment", "escape_test", "EscapeResult",
           "phase_diagram_data", "minima_moments", "MinimaMoments"]
