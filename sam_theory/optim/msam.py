"""m-SAM (micro-batch perturbations) and n-SAM (perturbation from other data), THEORY.md §2 and §8.

m-SAM splits the step's batch ξ (size b) into b/m consecutive micro-batches M_j of size m. Each micro-batch
perturbs with its own gradient and contributes its own descent gradient:

  ε_j = ρ ∇f_{M_j}(x) / (‖∇f_{M_j}(x)‖ + δ)   (or ρ ∇f_{M_j}(x) if not normalized),
  x ← x − η (m/b) Σ_j ∇f_{M_j}(x + ε_j).

The micro-batch gradients are computed with one `vmap` over the b/m micro-batches, or, for problems built from dense
layers, exactly by their rank-one structure without weight copies (`structured`, option ``path``). m = 1 unnormalized with b = n is
Andriushchenko–Flammarion's 1-SAM; m = b is SAM (normalized) or USAM.

n-SAM perturbs with the full gradient ∇f(x) (``source="full"``) or with the gradient of an independent batch ξ′ of
the same size (``source="independent_batch"``), and descends with ∇f_ξ(x + ε) on the step's batch.
"""
from __future__ import annotations

from ..validation import check_choice, check_int, check_nonnegative
from .base import Optimizer
from .core import DEFAULT_EPS, make_optimizer, split_micro_batches
from .sam import SAM

NSAM_SOURCES = ("full", "independent_batch")
PATHS = ("auto", "generic", "structured")

__all__ = ["msam", "nsam", "split_micro_batches", "NSAM_SOURCES"]


def msam(lr, rho, m: int, normalize: bool = True, *, eps: float = DEFAULT_EPS, base: str = "sgd",
         base_hparams=None, path: str = "auto") -> Optimizer:
    """m-SAM: ĝ = (m/b) Σ_j ∇f_{M_j}(x + ε_j), ε_j from micro-batch M_j of size m (THEORY.md §2, §8).

    Args:
      lr: η > 0.  rho: ρ ≥ 0.  m: micro-batch size; it must divide the batch size (checked when the step is traced).
      normalize: ε_j = ρ g_j/(‖g_j‖ + eps) (True) or ρ g_j (False; m = 1 with b = n is 1-SAM of THEORY.md §9).
      eps: normalization guard δ.  base, base_hparams: the optimizer applied to ĝ (default SGD: x − η ĝ).
      path: "auto" (default): for problems built from dense layers (`Problem.structured_losses`, no mask) and
        m < b, the exact structured step of `sam_theory.optim.structured` (no per-micro-batch weight copies);
        otherwise the generic vmap over micro-batches. "generic" or "structured" force one of the two.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from sam_theory.optim import Batch
      >>> loss = lambda x, ex: 0.5 * jnp.mean((x - ex) ** 2)                  # f_i = ½(x − e_i)²
      >>> batch = Batch(jnp.array([1.0, 3.0]), loss, full=jnp.array([1.0, 3.0]))
      >>> x = jnp.array([0.0])
      >>> opt = msam(0.1, 0.5, m=1, normalize=False)                # ε_i = ρ∇f_i per example (1-SAM)
      >>> y, _ = opt.step(x, opt.init(x), batch)
      >>> round(float(y[0]), 6)                                    # ĝ = mean of ∇f_i(x + ε_i) = −3
      0.3
    """
    check_nonnegative("rho", rho)
    m = check_int("m", m)
    check_choice("path", path, PATHS)
    return make_optimizer("msam", SAM, lr=lr, hparams={"rho": rho}, base=base, eps=eps, base_hparams=base_hparams,
                          options=(("m", m), ("normalize", bool(normalize)), ("path", path)))


def nsam(lr, rho, source: str = "full", normalize: bool = True, *, eps: float = DEFAULT_EPS, base: str = "sgd",
         base_hparams=None) -> Optimizer:
    """n-SAM: ε from ∇f(x) (``source="full"``) or from an independent batch ξ′, then ĝ = ∇f_ξ(x + ε) (§2, §8).

    Args:
      lr: η > 0.  rho: ρ ≥ 0.  source: "full" or "independent_batch".  normalize: ε = ρ g/(‖g‖ + eps) or ρ g.
      eps: normalization guard δ.  base, base_hparams: the optimizer applied to ĝ (default SGD: x − η ĝ).
      `train` supplies the data through ``needs``: ("full",) or ("extra",).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from sam_theory.optim import Batch
      >>> loss = lambda x, ex: 0.5 * jnp.mean((x - ex) ** 2)                  # f_i = ½(x − e_i)²
      >>> batch = Batch(jnp.array([1.0, 3.0]), loss, full=jnp.array([1.0, 3.0]))
      >>> x = jnp.array([0.0])
      >>> opt = nsam(0.1, 0.5, "full", normalize=False)             # ε = ρ∇f(x) from the full batch
      >>> y, _ = opt.step(x, opt.init(x), batch)
      >>> round(float(y[0]), 6)
      0.3
    """
    check_nonnegative("rho", rho)
    check_choice("source", source, NSAM_SOURCES)
    needs = ("full",) if source == "full" else ("extra",)
    return make_optimizer("nsam", SAM, lr=lr, hparams={"rho": rho}, base=base, eps=eps, base_hparams=base_hparams,
                          options=(("source", source), ("normalize", bool(normalize))), needs=needs)
