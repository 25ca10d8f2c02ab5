"""LightSAM (Cheng et al., arXiv 2505.24399): SAM with adaptive perturbation and descent, THEORY.md §2.

LightSAM replaces SGD by an adaptive optimizer in both the perturbation (ascent) and the update (descent):

  "adagrad_norm":      u_t = u_{t−1} + ‖g‖²;      ε = ρ g/(√u_t + δ);
                       v_t = v_{t−1} + ‖ĝ‖²;      x ← x − η ĝ/(√v_t + δ),   ĝ = ∇f_ξ(x + ε);
  "adagrad" [recon]:   U_t = U_{t−1} + g⊙g;       ε = ρ g/(√U_t + δ);     V_t += ĝ⊙ĝ;  x ← x − η ĝ/(√V_t + δ);
  "adam"    [recon]:   Adam moments of g:  m_t = β₁m + (1−β₁)g,  v_t = β₂v + (1−β₂)g²,  m̂, v̂ bias-corrected;
                       ε = ρ m̂/(√v̂ + δ);  descent: Adam(η, β₁, β₂, δ) on ĝ.

δ guards the divisions (the paper's formulas have none); with u0 = v0 = 0 the first AdaGrad-Norm perturbation has
‖ε‖ = ρ, i.e. it is a normalized SAM step. The AdaGrad and Adam variants are [recon]: the paper's exact
algorithms could not be read, so every guessed knob is a keyword: ``u0``, ``v0`` (initial accumulators), ``eps``
(δ), ``b1``, ``b2`` (Adam decay rates of both the ascent moments and the descent Adam), the bias correction of the
ascent moments (``bias_correction``), and whether the descent uses the matching adaptive base (``base``).
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ..tree import tree_scale, tree_sq_norm
from ..validation import check_choice, check_nonnegative
from .base import Optimizer
from .core import make_optimizer, perturb_then_descend, check_below_one

VARIANTS = ("adagrad_norm", "adagrad", "adam")
DEFAULT_EPS = {"adagrad_norm": 1e-12, "adagrad": 1e-12, "adam": 1e-8}


class AdamMoments(NamedTuple):
    count: jax.Array
    mu: object
    nu: object


def _adagrad_norm_perturb(opt, params, g, u, batch, key):
    u = u + tree_sq_norm(g)
    return tree_scale(g, opt.hparams["rho"] / (jnp.sqrt(u) + opt.option("eps"))), u


def _adagrad_perturb(opt, params, g, u, batch, key):
    u = jax.tree.map(lambda s, gi: s + gi * gi, u, g)
    rho, eps = opt.hparams["rho"], opt.option("eps")
    return jax.tree.map(lambda gi, s: rho * gi / (jnp.sqrt(s) + eps), g, u), u


def _adam_perturb(opt, params, g, state, batch, key):
    hp = opt.hparams
    b1, b2, delta = hp["ascent_b1"], hp["ascent_b2"], hp["ascent_eps"]
    count = state.count + 1
    mu = jax.tree.map(lambda m, gi: b1 * m + (1 - b1) * gi, state.mu, g)
    nu = jax.tree.map(lambda v, gi: b2 * v + (1 - b2) * gi * gi, state.nu, g)
    c1, c2 = (1 - b1 ** count, 1 - b2 ** count) if opt.option("bias_correction") else (1.0, 1.0)
    eps = jax.tree.map(lambda m, v: hp["rho"] * (m / c1) / (jnp.sqrt(v / c2) + delta), mu, nu)
    return eps, AdamMoments(count, mu, nu)


def _scalar_init(opt, params):
    return jnp.asarray(opt.hparams["u0"], dtype=jnp.result_type(*jax.tree.leaves(params)))


def _coordinate_init(opt, params):
    return jax.tree.map(lambda x: jnp.full_like(x, opt.hparams["u0"]), params)


def _adam_init(opt, params):
    zeros = jax.tree.map(jnp.zeros_like, params)
    return AdamMoments(jnp.zeros((), jnp.int32), zeros, zeros)


METHODS = {
    "adagrad_norm": perturb_then_descend(_adagrad_norm_perturb, _scalar_init),
    "adagrad": perturb_then_descend(_adagrad_perturb, _coordinate_init),
    "adam": perturb_then_descend(_adam_perturb, _adam_init),
}


def lightsam(lr, rho, variant: str = "adagrad_norm", *, u0=0.0, v0=0.0, eps: float | None = None, b1=0.9,
             b2=0.999, bias_correction: bool = True, base: str | None = None, base_hparams=None) -> Optimizer:
    """LightSAM with AdaGrad-Norm (THEORY.md §2), AdaGrad [recon] or Adam [recon] perturbation and descent.

    Args:
      lr: η > 0.  rho: ρ ≥ 0.  variant: "adagrad_norm", "adagrad" [recon] or "adam" [recon] (module docstring).
      u0: initial ascent accumulator u_0 (AdaGrad variants, ≥ 0).  v0: initial descent accumulator v_0 (≥ 0).
      eps: δ ≥ 0, default 1e-12 (AdaGrad variants) or 1e-8 (Adam: its ε in both ascent and descent).
      b1, b2: Adam decay rates in [0, 1) (variant "adam"; ascent moments and descent Adam).
      bias_correction: bias-correct the ascent Adam moments (variant "adam").
      base: the descent optimizer; None (default) = the variant's own ("adagrad_norm", "adagrad" or "adam").
      base_hparams: overrides of the base's hyperparameters.

    Example:
      >>> import jax.numpy as jnp
      >>> from sam_theory.optim import Batch
      >>> batch = Batch(jnp.zeros(1), lambda x, ex: 0.5 * jnp.sum(x ** 2))   # f(x) = ½‖x‖², ∇f = x
      >>> x = jnp.array([2.0])
      >>> opt = lightsam(0.1, 0.5)                          # AdaGrad-Norm steps: x − η ĝ/√v_t
      >>> y, state = opt.step(x, opt.init(x), batch)
      >>> round(float(y[0]), 6)
      1.9
    """
    check_choice("variant", variant, VARIANTS)
    check_nonnegative("rho", rho)
    check_nonnegative("u0", u0)
    check_nonnegative("v0", v0)
    check_below_one("b1", b1)
    check_below_one("b2", b2)
    eps = DEFAULT_EPS[variant] if eps is None else eps
    base = variant if base is None else base
    hparams = {"rho": rho}
    if variant == "adam":
        hparams.update(ascent_b1=b1, ascent_b2=b2, ascent_eps=eps)
    else:
        hparams["u0"] = u0
    defaults = {"adagrad_norm": {"v0": v0}, "adagrad": {"v0": v0}, "adam": {"b1": b1, "b2": b2, "adam_eps": eps}}
    return make_optimizer(f"lightsam_{variant}", METHODS[variant], lr=lr, hparams=hparams, base=base, eps=eps,
                          base_hparams={**defaults.get(base, {}), **(base_hparams or {})},
                          options=(("variant", variant), ("bias_correction", bool(bias_correction))))
