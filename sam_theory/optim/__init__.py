"""The SAM family of optimizers (THEORY.md §2) behind one init/step interface."""
from .base import Batch, Optimizer
from .sam import sam, sam_perturbation, sgd, usam

__all__ = ["Batch", "Optimizer", "sgd", "sam", "usam", "sam_perturbation"]
