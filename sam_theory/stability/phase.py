"""The stability phase diagram in (η, ρ) (THEORY.md §5): r(T) on a grid, the curve η_c(ρ), the necessary-condition
curves, and Monte Carlo outcomes of the linearized recursion at a coarser subgrid."""
from __future__ import annotations

import jax
import numpy as np

from ..curvature import BatchCurvature
from ..validation import check_int
from .conditions import boundary_curves, curvature_summary
from .radius import STABILITY_TOL, critical_learning_rate, radius_evaluator
from .simulate import simulate_linearized
from .step_map import check_curvature


def phase_diagram_data(curv: BatchCurvature, etas, rhos, *, sim_every: int = 2, sim_runs: int = 2000,
                       sim_steps: int = 60, key=None, method: str = "auto", memory_budget=None) -> dict:
    """Everything `sam_theory.plots.stability.plot_phase_diagram` draws, as a dict of arrays:

    ``radii`` (len(rhos), len(etas)) = r(T); ``eta_c`` per ρ (scan + bisection); ``a``, ``s`` (k: s_k) and
    ``curves`` (η at which each necessary bound is tight, `boundary_curves`); ``sim`` = list of (η, ρ, grew,
    predicted_unstable) at every ``sim_every``-th grid point, where grew means the Monte Carlo mean of ‖e_T‖²
    over ``sim_runs`` runs of ``sim_steps`` steps exceeds ‖e_0‖² = 1. The dense operator pieces are built once
    for the whole grid.

    Example (commuting H_i, b = 1: r(T) = max_j E[(1 − ηA_ξ,j)²] — 0.68, 0.52 at ρ = 0 and 0.52, 2.08 at ρ = 0.5
    for η = 0.2, 0.4; η_c = 2E[A]/E[A²] minimized over directions: 0.8 for SGD, 4/13 at ρ = 0.5; the curve of
    the a-bound is 2/(a + ρa²); the Monte Carlo grows exactly where r(T) > 1):
      >>> import numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import BatchCurvature
      >>> Hs = np.array([np.diag([3.0, 2.0]), np.diag([1.0, 0.0])])   # commuting H_1, H_2: H = diag(2, 1)
      >>> with float64():
      ...     d = phase_diagram_data(BatchCurvature.from_hessians(Hs, batch_size=1), [0.2, 0.4], [0.0, 0.5],
      ...                            sim_every=1, sim_runs=2000, sim_steps=5)
      >>> d["radii"].round(6).tolist(), d["eta_c"].round(6).tolist(), d["curves"]["a"].round(6).tolist()
      ([[0.68, 0.52], [0.52, 2.08]], [0.8, 0.307692], [1.0, 0.5])
      >>> [(float(eta), float(rho)) for eta, rho, grew, unstable in d["sim"] if grew], all(g == u for *_, g, u in d["sim"])
      ([(0.4, 0.5)], True)
    """
    check_curvature(curv)
    etas, rhos = np.asarray(etas, dtype=float), np.asarray(rhos, dtype=float)
    sim_every = check_int("sim_every", sim_every)
    key = jax.random.key(0) if key is None else key
    ev = radius_evaluator(curv, method=method, key=key, memory_budget=memory_budget)
    radii = np.array([np.asarray(ev(etas, rho)[0]) for rho in rhos])
    eta_c = np.array([critical_learning_rate(curv, rho, evaluator=ev).eta for rho in rhos])
    a, *s_k = curvature_summary(curv)
    s = dict(zip((2, 3, 4), s_k))
    sim = []
    for i in range(0, len(rhos), sim_every):
        for j in range(0, len(etas), sim_every):
            out = simulate_linearized(curv, etas[j], rhos[i], sim_steps, sim_runs,
                                      jax.random.fold_in(key, i * len(etas) + j))
            sim.append((etas[j], rhos[i], bool(out.mean_sq[-1] > 1.0), bool(radii[i, j] > 1 + STABILITY_TOL)))
    return {"etas": etas, "rhos": rhos, "radii": radii, "eta_c": eta_c, "a": a, "s": s,
            "curves": boundary_curves(a, s[2], s[3], s[4], rhos), "sim": sim, "batch_size": curv.batch_size,
            "replace": curv.replace, "sim_steps": sim_steps, "sim_runs": sim_runs}
