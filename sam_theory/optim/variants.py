"""ASAM (adaptive SAM) and F-SAM (friendly SAM), THEORY.md §2: perturbations for `core.perturb_then_descend`."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ..validation import check_nonnegative
from .base import Optimizer
from .core import DEFAULT_EPS, check_below_one, make_optimizer, perturb_then_descend
from .scaling import normalized, tree_acc_dtype


def asam_perturbation(params, g, rho, kappa, eps=DEFAULT_EPS):
    """ε = ρ T² g / (‖T g‖ + eps), T = diag(|x| + κ) (THEORY.md §2); ε = 0 at g = 0.

    Computed as T ⊙ (ρ Tg/(‖Tg‖ + δ)) in the accumulation dtype, rounded once to g's dtype (`optim.scaling`).

    Example:
      >>> import jax.numpy as jnp
      >>> eps = asam_perturbation(jnp.array([1.0, 2.0]), jnp.array([3.0, 4.0]), rho=0.5, kappa=0.0)
      >>> [round(v, 4) for v in eps.tolist()]                   # ρ T²g/‖Tg‖, T = diag(|x| + κ)
      [0.1756, 0.9363]
    """
    dtype = tree_acc_dtype(g)
    t = jax.tree.map(lambda x: jnp.abs(x.astype(dtype)) + kappa, params)
    tg = jax.tree.map(lambda ti, gi: ti * gi.astype(dtype), t, g)
    unit = normalized(tg, rho, eps, like=tg)
    return jax.tree.map(lambda ti, ui, gi: (ti * ui).astype(gi.dtype), t, unit, g)


def _asam_perturb(opt, params, g, state, batch, key):
    return asam_perturbation(params, g, opt.hparams["rho"], opt.hparams["kappa"], opt.option("eps")), state


def fsam_perturbation(g, momentum, rho, sigma, lmbda, eps=DEFAULT_EPS):
    """F-SAM: d_t = g − σ m_{t−1};  m_t = λ m_{t−1} + (1 − λ) g;  ε = ρ d_t/(‖d_t‖ + eps) (THEORY.md §2).

    d_t uses the previous m_{t−1} (the official ordering), then m is updated. Returns (ε, m_t). d_t and its scaling
    are computed in the accumulation dtype, ε rounded once to g's dtype (`optim.scaling`).

    Example:
      >>> import jax.numpy as jnp
      >>> eps, m = fsam_perturbation(jnp.array([3.0, 4.0]), jnp.zeros(2), rho=0.5, sigma=1.0, lmbda=0.95)
      >>> [round(v, 6) for v in eps.tolist()], [round(v, 6) for v in m.tolist()]
      ([0.3, 0.4], [0.15, 0.2])
    """
    dtype = tree_acc_dtype(g)
    d = jax.tree.map(lambda gi, mi: gi.astype(dtype) - sigma * mi.astype(dtype), g, momentum)
    new_momentum = jax.tree.map(lambda mi, gi: (lmbda * mi + (1.0 - lmbda) * gi).astype(mi.dtype), momentum, g)
    return normalized(d, rho, eps, like=g), new_momentum


def _fsam_perturb(opt, params, g, state, batch, key):
    hp = opt.hparams
    return fsam_perturbation(g, state, hp["rho"], hp["sigma"], hp["lmbda"], opt.option("eps"))


ASAM = perturb_then_descend(_asam_perturb)
FSAM = perturb_then_descend(_fsam_perturb, init_state=lambda opt, params: jax.tree.map(jnp.zeros_like, params))


def asam(lr, rho, kappa=0.01, *, eps: float = DEFAULT_EPS, base: str = "sgd", base_hparams=None) -> Optimizer:
    """ASAM: ε = ρ T² g/(‖T g‖ + eps), T = diag(|x| + κ); ĝ = ∇f_ξ(x + ε) (THEORY.md §2).

    Args:
      lr: η > 0.  rho: ρ ≥ 0.  kappa: κ ≥ 0 (κ = 0 may give ε = 0 at x = 0).  eps: normalization guard δ.
      base, base_hparams: the optimizer applied to ĝ (default SGD: x − η ĝ).

    Example:
      >>> import jax.numpy as jnp
      >>> from sam_theory.optim import Batch
      >>> batch = Batch(jnp.zeros(1), lambda x, ex: 0.5 * jnp.sum(x ** 2))   # f(x) = ½‖x‖², ∇f = x
      >>> x = jnp.array([2.0])
      >>> opt = asam(0.1, 0.5, kappa=0.01)
      >>> y, state = opt.step(x, opt.init(x), batch)
      >>> round(float(y[0]), 6)
      1.6995
    """
    check_nonnegative("rho", rho)
    check_nonnegative("kappa", kappa)
    return make_optimizer("asam", ASAM, lr=lr, hparams={"rho": rho, "kappa": kappa}, base=base, eps=eps,
                          base_hparams=base_hparams)


def fsam(lr, rho, sigma=1.0, lmbda=0.95, *, eps: float = DEFAULT_EPS, base: str = "sgd",
         base_hparams=None) -> Optimizer:
    """F-SAM: d_t = g − σ m_{t−1}; m_t = λ m_{t−1} + (1−λ) g; ε = ρ d_t/(‖d_t‖ + eps); ĝ = ∇f_ξ(x + ε) (§2).

    The state m (the exponential moving average of batch gradients) starts at 0, so the first step is SAM.

    Args:
      lr: η > 0.  rho: ρ ≥ 0.  sigma: σ ≥ 0 (weight of the removed full-gradient estimate).  lmbda: λ ∈ [0, 1).
      eps: normalization guard δ.  base, base_hparams: the optimizer applied to ĝ (default SGD).

    Example:
      >>> import jax.numpy as jnp
      >>> from sam_theory.optim import Batch
      >>> batch = Batch(jnp.zeros(1), lambda x, ex: 0.5 * jnp.sum(x ** 2))   # f(x) = ½‖x‖², ∇f = x
      >>> x = jnp.array([2.0])
      >>> opt = fsam(0.1, 0.5)                              # m_0 = 0: the first step is SAM's
      >>> y, state = opt.step(x, opt.init(x), batch)
      >>> round(float(y[0]), 6)
      1.75
    """
    check_nonnegative("rho", rho)
    check_nonnegative("sigma", sigma)
    check_below_one("lmbda", lmbda)
    return make_optimizer("fsam", FSAM, lr=lr, hparams={"rho": rho, "sigma": sigma, "lmbda": lmbda}, base=base,
                          eps=eps, base_hparams=base_hparams)


__all__ = ["asam", "fsam", "asam_perturbation", "fsam_perturbation"]
