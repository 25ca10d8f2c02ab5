"""SGD, SAM (Foret et al.) and USAM (unnormalized SAM), THEORY.md §2.

Every step evaluates the batch gradient g = ∇f_ξ(x_t) on the step's batch ξ and, for SAM/USAM, the descent
gradient ∇f_ξ(x_t + ε_t) on the same batch.
"""
from __future__ import annotations

from ..tree import tree_add_scaled, tree_norm
from ..validation import check_nonnegative, check_positive
from .base import Optimizer, no_state

DEFAULT_EPS = 1e-12


def sam_perturbation(g, rho, eps=DEFAULT_EPS, normalize=True):
    """ε = ρ g / (‖g‖ + eps) if ``normalize`` else ρ g (THEORY.md §2).

    The guard ``eps`` keeps ε = 0 (not NaN) at an exact stationary point g = 0, where optax's SAM gives NaN.
    """
    if normalize:
        return tree_add_scaled(g, g, rho / (tree_norm(g) + eps) - 1.0)
    return tree_add_scaled(g, g, rho - 1.0)


def _sgd_step(opt, params, state, batch, key):
    g = batch.grad(params)
    return tree_add_scaled(params, g, -opt.hparams["lr"]), state


def _sam_step(opt, params, state, batch, key):
    g = batch.ascent_grad(params)
    eps = sam_perturbation(g, opt.hparams["rho"], opt.option("eps", DEFAULT_EPS), opt.option("normalize", True))
    g_adv = batch.descent_grad(tree_add_scaled(params, eps, 1.0), params)
    return tree_add_scaled(params, g_adv, -opt.hparams["lr"]), state


def sgd(lr) -> Optimizer:
    """SGD / GD: x ← x − η ∇f_ξ(x) (THEORY.md §2). ``lr`` = η > 0."""
    check_positive("lr", lr)
    return Optimizer({"lr": lr}, "sgd", no_state, _sgd_step)


def sam(lr, rho, *, eps: float = DEFAULT_EPS) -> Optimizer:
    """SAM: ε = ρ g/(‖g‖ + eps), x ← x − η ∇f_ξ(x + ε), same batch ξ (THEORY.md §2).

    Args:
      lr: η > 0.  rho: ρ ≥ 0.  eps: normalization guard δ (1e-12), so a step at g = 0 returns x unchanged.
    """
    check_positive("lr", lr)
    check_nonnegative("rho", rho)
    check_nonnegative("eps", eps)
    return Optimizer({"lr": lr, "rho": rho}, "sam", no_state, _sam_step,
                     options=(("normalize", True), ("eps", eps)))


def usam(lr, rho) -> Optimizer:
    """USAM (unnormalized SAM): ε = ρ g, x ← x − η ∇f_ξ(x + ε), same batch ξ (THEORY.md §2, §5, §6)."""
    check_positive("lr", lr)
    check_nonnegative("rho", rho)
    return Optimizer({"lr": lr, "rho": rho}, "usam", no_state, _sam_step, options=(("normalize", False),))
