"""m-SAM (micro-batch perturbations) and n-SAM (perturbation from other data), THEORY.md §2 and §8.

m-SAM splits the step's batch ξ (size b) into b/m consecutive micro-batches M_j of size m. Each micro-batch
perturbs with its own gradient and contributes its own descent gradient:

  ε_j = ρ ∇f_{M_j}(x) / (‖∇f_{M_j}(x)‖ + δ)   (or ρ ∇f_{M_j}(x) if not normalized),
  x ← x − η (m/b) Σ_j ∇f_{M_j}(x + ε_j).

The micro-batch gradients are computed with one `vmap` over the b/m micro-batches. m = 1 unnormalized with b = n is
Andriushchenko–Flammarion's 1-SAM; m = b is SAM (normalized) or USAM.

n-SAM perturbs with the full gradient ∇f(x) (``source="full"``) or with the gradient of an independent batch ξ′ of
the same size (``source="independent_batch"``), and descends with ∇f_ξ(x + ε) on the step's batch.
"""
from __future__ import annotations

import jax

from ..tree import tree_add_scaled
from ..validation import check_choice, check_int, check_nonnegative, check_positive
from .base import Optimizer, no_state
from .sam import DEFAULT_EPS, sam_perturbation

NSAM_SOURCES = ("full", "independent_batch")


def split_micro_batches(examples, m: int):
    """Reshape a batch pytree with leading axis b into (b/m, m, ...); b must be a multiple of m."""
    b = jax.tree.leaves(examples)[0].shape[0]
    if b % m:
        raise ValueError(f"m={m} must divide the batch size b={b}")
    return jax.tree.map(lambda x: x.reshape((b // m, m) + x.shape[1:]), examples)


def _msam_step(opt, params, state, batch, key):
    rho, eps, normalize = opt.hparams["rho"], opt.option("eps", DEFAULT_EPS), opt.option("normalize", True)
    micro = split_micro_batches(batch.examples, opt.option("m"))

    def micro_descent(examples):
        e = sam_perturbation(batch.ascent_grad(params, examples), rho, eps, normalize)
        return batch.descent_grad(tree_add_scaled(params, e, 1.0), params, examples)

    g_adv = jax.tree.map(lambda g: g.mean(axis=0), jax.vmap(micro_descent)(micro))
    return tree_add_scaled(params, g_adv, -opt.hparams["lr"]), state


def _nsam_step(opt, params, state, batch, key):
    source = batch.full if opt.option("source") == "full" else batch.extra
    g = batch.ascent_grad(params, source)
    e = sam_perturbation(g, opt.hparams["rho"], opt.option("eps", DEFAULT_EPS), opt.option("normalize", True))
    g_adv = batch.descent_grad(tree_add_scaled(params, e, 1.0), params)
    return tree_add_scaled(params, g_adv, -opt.hparams["lr"]), state


def msam(lr, rho, m: int, normalize: bool = True, *, eps: float = DEFAULT_EPS) -> Optimizer:
    """m-SAM: x ← x − η (m/b) Σ_j ∇f_{M_j}(x + ε_j), ε_j from micro-batch M_j of size m (THEORY.md §2, §8).

    Args:
      lr: η > 0.  rho: ρ ≥ 0.  m: micro-batch size; it must divide the batch size (checked when the step is traced).
      normalize: ε_j = ρ g_j/(‖g_j‖ + eps) (True) or ρ g_j (False; m = 1 with b = n is 1-SAM of THEORY.md §9).
      eps: normalization guard δ.
    """
    check_positive("lr", lr)
    check_nonnegative("rho", rho)
    m = check_int("m", m)
    check_nonnegative("eps", eps)
    return Optimizer({"lr": lr, "rho": rho}, "msam", no_state, _msam_step,
                     options=(("m", m), ("normalize", bool(normalize)), ("eps", eps)))


def nsam(lr, rho, source: str = "full", normalize: bool = True, *, eps: float = DEFAULT_EPS) -> Optimizer:
    """n-SAM: ε from ∇f(x) (``source="full"``) or from an independent batch ξ′, then x ← x − η ∇f_ξ(x + ε) (§2).

    Args:
      lr: η > 0.  rho: ρ ≥ 0.  source: "full" or "independent_batch".  normalize: ε = ρ g/(‖g‖ + eps) or ρ g.
      eps: normalization guard δ.
    """
    check_positive("lr", lr)
    check_nonnegative("rho", rho)
    check_choice("source", source, NSAM_SOURCES)
    check_nonnegative("eps", eps)
    needs = ("full",) if source == "full" else ("extra",)
    return Optimizer({"lr": lr, "rho": rho}, "nsam", no_state, _nsam_step,
                     options=(("source", source), ("normalize", bool(normalize)), ("eps", eps)), needs=needs)
