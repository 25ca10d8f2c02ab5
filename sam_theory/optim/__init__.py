"""The SAM family of optimizers (THEORY.md §2) behind one init/step interface.

Every method is one perturbation plugged into the generic perturb-then-descend step (`core`), with a base
optimizer for the descent direction (`descent`: sgd, momentum, adam, adagrad_norm, adagrad); `as_optax` exposes
SAM, USAM, ASAM, F-SAM and LightSAM as optax transformations.
"""
from .base import Batch, Optimizer
from .core import SAMState, perturb_then_descend, split_micro_batches
from .descent import BASES
from .lightsam import lightsam
from .msam import msam, nsam
from .optax_adapter import as_optax
from .rwsam import rwsam
from .sam import sam, sam_perturbation, sgd, usam
from .variants import asam, asam_perturbation, fsam, fsam_perturbation

__all__ = ["Batch", "Optimizer", "SAMState", "BASES", "perturb_then_descend", "split_micro_batches", "sgd", "sam",
           "usam", "sam_perturbation", "msam", "nsam", "asam", "asam_perturbation", "fsam", "fsam_perturbation",
           "lightsam", "rwsam", "as_optax"]
