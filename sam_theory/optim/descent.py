"""Base optimizers for the descent direction (THEORY.md §2: "base optimizers other than SGD apply to the descent
gradient").

Every method of the family computes a descent gradient ĝ (for SAM, ĝ = ∇f_ξ(x + ε)); the base optimizer turns ĝ
into the update. The transforms are built inside the step from the optimizer's hyperparameter leaves, so ``lr``,
``momentum``, ``b1``… may be tracers (a sweep is a vmap over optimizers):

  "sgd":          x ← x − η ĝ                                       (no state)
  "momentum":     optax.sgd(η, momentum=β):  m ← β m + ĝ;  x ← x − η m   (heavy ball, optax's convention)
  "adam":         optax.adam(η, b1, b2, eps=adam_eps)
  "adagrad_norm": v_t = v_{t−1} + ‖ĝ‖²  (v_0 = v0);  x ← x − η ĝ/(√v_t + δ)   (LightSAM, THEORY.md §2)
  "adagrad":      V_t = V_{t−1} + ĝ⊙ĝ   (V_0 = v0);  x ← x − η ĝ/(√V_t + δ)   (LightSAM-AdaGrad [recon])

δ is the optimizer's static ``eps`` guard (1e-12 by default), so that ĝ = 0 with v0 = 0 gives no NaN. The AdaGrad
accumulators and norms live in the accumulation dtype (float32 for float16/bfloat16 params) and δ (Adam's eps too)
never rounds to zero in the dtype it is added in (`optim.scaling`).
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from .scaling import guard, tree_acc_dtype, tree_norm

BASES = ("sgd", "momentum", "adam", "adagrad_norm", "adagrad")
BASE_DEFAULTS = {  # the hyperparameter leaves each base adds to the optimizer, with their defaults
    "sgd": {},
    "momentum": {"momentum": 0.9},
    "adam": {"b1": 0.9, "b2": 0.999, "adam_eps": 1e-8},
    "adagrad_norm": {"v0": 0.0},
    "adagrad": {"v0": 0.0},
}


class AccumulatorState(NamedTuple):
    """Running sum of squared descent gradients (a scalar for AdaGrad-Norm, a pytree for AdaGrad)."""

    sum_sq: object


def scale_by_adagrad_norm(v0, eps) -> optax.GradientTransformation:
    """ĝ ↦ ĝ/(√v_t + eps), v_t = v_{t−1} + ‖ĝ‖², v_0 = ``v0`` (a scalar accumulator over all parameters)."""

    def init_fn(params):
        return AccumulatorState(jnp.asarray(v0, dtype=tree_acc_dtype(params)))

    def update_fn(updates, state, params=None):
        dtype = tree_acc_dtype(updates)
        v = state.sum_sq + jnp.square(tree_norm(updates, dtype))
        denom = jnp.sqrt(v) + guard(eps, dtype)
        return jax.tree.map(lambda g: (g.astype(dtype) / denom).astype(g.dtype), updates), AccumulatorState(v)

    return optax.GradientTransformation(init_fn, update_fn)


def scale_by_adagrad(v0, eps) -> optax.GradientTransformation:
    """ĝ ↦ ĝ/(√V_t + eps) coordinate-wise, V_t = V_{t−1} + ĝ⊙ĝ, V_0 = ``v0``·1."""

    def init_fn(params):
        dtype = tree_acc_dtype(params)
        return AccumulatorState(jax.tree.map(lambda x: jnp.full(x.shape, v0, dtype), params))

    def update_fn(updates, state, params=None):
        dtype = tree_acc_dtype(updates)
        v = jax.tree.map(lambda s, g: s + jnp.square(g.astype(dtype)), state.sum_sq, updates)
        delta = guard(eps, dtype)
        return (jax.tree.map(lambda g, s: (g.astype(dtype) / (jnp.sqrt(s) + delta)).astype(g.dtype), updates, v),
                AccumulatorState(v))

    return optax.GradientTransformation(init_fn, update_fn)


def base_transform(opt, params=None) -> optax.GradientTransformation | None:
    """The optax transform ĝ ↦ update for ``opt``'s base, built from its (possibly traced) hparams.

    None for plain SGD, which the step applies directly as x − η ĝ (stateless, state ``()``).
    """
    hp, base = opt.hparams, opt.option("base", "sgd")
    lr = hp["lr"]
    dtype = jnp.result_type(*jax.tree.leaves(params)) if params is not None else jnp.result_type(float)
    if base == "sgd":
        return None
    if base == "momentum":
        return optax.sgd(lr, momentum=hp["momentum"])
    if base == "adam":  # optax divides in the params' dtype: its eps is guarded there (`scaling.guard`)
        return optax.adam(lr, b1=hp["b1"], b2=hp["b2"], eps=guard(hp["adam_eps"], dtype))
    eps = opt.option("eps")
    scale = scale_by_adagrad_norm if base == "adagrad_norm" else scale_by_adagrad
    return optax.chain(scale(hp["v0"], eps), optax.scale_by_learning_rate(lr))
