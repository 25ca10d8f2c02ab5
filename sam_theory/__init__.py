"""sam_theory: numerical, automatic verification of the theory of sharpness-aware minimization (SAM).

The layout is the architecture: problems → optim → train → curvature → stability, convergence → checks → cli,
plots. THEORY.md (shared with the project) is the specification of every formula.
"""
from . import convergence, curvature, optim, problems, stability
from .precision import float64
from .train import History, train
from .sweep import SweepResult, sweep  # noqa: E402  (the function shadows the module name on purpose)

__version__ = "0.1.0"
__all__ = ["problems", "optim", "curvature", "stability", "convergence", "train", "History", "float64", "sweep", "SweepResult"]
