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

from ..validation import check_choice, check_nonnegative
from .base import Optimizer
from .core import make_optimizer, perturb_then_descend, check_below_one
from .scaling import guard, tree_acc_dtype, tree_norm

VARIANTS = ("adagrad_norm", "adagrad", "adam")
DEFAULT_EPS = {"adagrad_norm": 1e-12, "adagrad": 1e-12, "adam": 1e-8}


class AdamMoments(NamedTuple):
    count: jax.Array
    mu: object
    nu: object


def adagrad_norm_perturbation(g, u, rho, eps):
    """u_t = u_{t−1} + ‖g‖², ε = ρ g/(√u_t + δ); returns (ε, u_t). ‖g‖² and u live in the accumulation dtype,
    ε is one scaling rounded once to g's dtype (`optim.scaling`)."""
    dtype = tree_acc_dtype(g)
    u = u + jnp.square(tree_norm(g, dtype))
    denom = jnp.sqrt(u) + guard(eps, dtype)
    return jax.tree.map(lambda gi: (rho * (gi.astype(dtype) / denom)).astype(gi.dtype), g), u


def adagrad_perturbation(g, u, rho, eps):
    """U_t = U_{t−1} + g⊙g, ε = ρ g/(√U_t + δ) coordinate-wise; returns (ε, U_t) (U in the accumulation dtype)."""
    dtype = tree_acc_dtype(g)
    u = jax.tree.map(lambda s, gi: s + jnp.square(gi.astype(dtype)), u, g)
    delta = guard(eps, dtype)
    return jax.tree.map(lambda gi, s: (rho * (gi.astype(dtype) / (jnp.sqrt(s) + delta))).astype(gi.dtype), g, u), u


def adam_perturbation(g, state, rho, b1, b2, delta, bias_correction=True):
    """Adam moments of g (accumulation dtype), ε = ρ m̂/(√v̂ + δ) rounded once to g's dtype; returns (ε, state).

    b1, b2 are rounded to the accumulation dtype first, so that 1 − b and the bias correction 1 − b^t use the same
    value (with b2 = 0.999 in float32, 1 − 0.999 and 1 − float32(0.999) differ by 1.3e-5 relative).
    """
    dtype = tree_acc_dtype(g)
    b1, b2 = jnp.asarray(b1, dtype), jnp.asarray(b2, dtype)
    count = state.count + 1
    mu = jax.tree.map(lambda m, gi: b1 * m + (1 - b1) * gi.astype(dtype), state.mu, g)
    nu = jax.tree.map(lambda v, gi: b2 * v + (1 - b2) * jnp.square(gi.astype(dtype)), state.nu, g)
    c1, c2 = (1 - b1 ** count, 1 - b2 ** count) if bias_correction else (1.0, 1.0)
    delta = guard(delta, dtype)
    eps = jax.tree.map(lambda m, v, gi: (rho * ((m / c1) / (jnp.sqrt(v / c2) + delta))).astype(gi.dtype), mu, nu, g)
    return eps, AdamMoments(count, mu, nu)


def _adagrad_norm_perturb(opt, params, g, u, batch, key):
    return adagrad_norm_perturbation(g, u, opt.hparams["rho"], opt.option("eps"))


def _adagrad_perturb(opt, params, g, u, batch, key):
    return adagrad_perturbation(g, u, opt.hparams["rho"], opt.option("eps"))


def _adam_perturb(opt, params, g, state, batch, key):
    hp = opt.hparams
    return adam_perturbation(g, state, hp["rho"], hp["ascent_b1"], hp["ascent_b2"], hp["ascent_eps"],
                             opt.option("bias_correction"))


def _scalar_init(opt, params):
    return jnp.asarray(opt.hparams["u0"], dtype=tree_acc_dtype(params))


def _coordinate_init(opt, params):
    dtype = tree_acc_dtype(params)
    return jax.tree.map(lambda x: jnp.full(x.shape, opt.hparams["u0"], dtype), params)


def _adam_init(opt, params):
    dtype = tree_acc_dtype(params)
    zeros = jax.tree.map(lambda x: jnp.zeros(x.shape, dtype), params)
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
