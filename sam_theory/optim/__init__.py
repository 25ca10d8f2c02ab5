"""The SAM family of optimizers (THEORY.md §2) behind one init/step interface."""
from .base import Batch, Optimizer
from .msam import msam, nsam, split_micro_batches
from .sam import sam, sam_perturbation, sgd, usam

__all__ = ["Batch", "Optimizer", "sgd", "sam", "usam", "sam_perturbation", "msam", "nsam", "split_micro_batches"]
