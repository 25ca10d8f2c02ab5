"""One generic "perturb-then-descend" step for the whole SAM family (THEORY.md §2).

A method supplies only its perturbation

  ``perturb(opt, params, g, state, batch, key) -> (ε, state)``

(g = the ascent gradient, `Batch.ascent_grad`, on the ascent data) and the initial value of its own state. The
generic step then computes the descent gradient ĝ = ∇f_ξ(x + ε) on the step's batch (`Batch.descent_grad`, which
handles the weight-decay penalty R, perturbed or not) and feeds ĝ to the base optimizer (`descent.BASES`):

  g = ∇f_{ascent data}(x);   ε, s = perturb(x, g, s);   ĝ = ∇f_ξ(x + ε);   (u, s_base) = base(ĝ);   x ← x + u.

Two generic options cover m-SAM and n-SAM:
  ``m`` (micro-batch size): the batch is split into b/m micro-batches M_j, each with its own ε_j from ∇f_{M_j}
     and ĝ = (m/b) Σ_j ∇f_{M_j}(x + ε_j) — one `vmap` over micro-batches. m must divide b; the batch size is
     only known when the step is traced, so that is where a non-dividing m raises ``ValueError``.
     Option ``path``: for a problem built from dense layers (`Problem.structured_losses`) and m < b, "auto" (the
     default) evaluates the same ĝ exactly by the layer structure, with no per-micro-batch weight copies
     (`structured`); "generic" forces the vmap, "structured" forces the layer path (m = b included).
  ``source``: the ascent data — "batch" (ξ, default), "full" (the whole training set, `Batch.full`) or
     "independent_batch" (an independent batch ξ′, `Batch.extra`).

Weight decay: the single mechanism is the explicit penalty R(x) = (wd/2)‖x‖² carried by `Batch` (set on the
`Problem` with ``weight_decay=``/``perturb_weight_decay=``; `train` passes it; `as_optax` takes the same two
arguments). It is coupled (its gradient joins ĝ before the base optimizer). Decoupled (AdamW-style) decay is not
provided; chain ``optax.add_decayed_weights`` after `as_optax` if needed.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import numpy as np
import optax

from ..tree import tree_add_scaled
from ..validation import check_choice, check_nonnegative, check_positive
from .base import Optimizer
from .descent import BASE_DEFAULTS, BASES, base_transform
from .structured import structured_msam_gradient, structured_problem

DEFAULT_EPS = 1e-12
SOURCES = ("batch", "full", "independent_batch")


class SAMState(NamedTuple):
    """Optimizer state: the method's own state (e.g. F-SAM's momentum) and the base optimizer's state.

    Example:
      >>> SAMState._fields
      ('perturbation', 'base')
    """

    perturbation: object
    base: object


def split_micro_batches(examples, m: int):
    """Reshape a batch pytree with leading axis b into (b/m, m, ...); b must be a multiple of m.

    Example:
      >>> import jax.numpy as jnp
      >>> split_micro_batches(jnp.arange(6), 2).tolist()          # b = 6 examples → 3 micro-batches of m = 2
      [[0, 1], [2, 3], [4, 5]]
    """
    b = jax.tree.leaves(examples)[0].shape[0]
    if b % m:
        raise ValueError(f"m={m} must divide the batch size b={b}")
    return jax.tree.map(lambda x: x.reshape((b // m, m) + x.shape[1:]), examples)


def ascent_examples(opt, batch):
    """The data the perturbation is built from (option ``source``)."""
    source = opt.option("source", "batch")
    if source == "batch":
        return batch.examples
    data = batch.full if source == "full" else batch.extra
    if data is None:
        field = "full" if source == "full" else "extra"
        raise ValueError(f"source={source!r} needs Batch({field}=...); train() supplies it via optimizer.needs")
    return data


def descent_gradient(perturb, opt, params, state, batch, key):
    """ĝ and the new method state: the generic perturb-then-descend gradient (module docstring)."""
    if perturb is None:  # SGD: no perturbation, one gradient
        return batch.grad(params), state
    m = opt.option("m")
    if m is None:
        g = batch.ascent_grad(params, ascent_examples(opt, batch))
        eps, state = perturb(opt, params, g, state, batch, key)
        return batch.descent_grad(tree_add_scaled(params, eps, 1.0), params), state

    path = opt.option("path", "auto")
    if path != "generic":
        problem = structured_problem(batch, params)
        b = jax.tree.leaves(batch.examples)[0].shape[0]
        if problem is None and path == "structured":
            raise ValueError("path='structured' needs a batch whose loss_fn is problem.batch_loss of a problem with "
                             "structured_losses, no sparsity mask and no perturbed weight decay")
        if problem is not None and (path == "structured" or m < b):
            return structured_msam_gradient(problem, params, batch, m, opt.hparams["rho"],
                                            opt.option("normalize", True), opt.option("eps", DEFAULT_EPS)), state

    def micro_descent(examples):  # stateless perturbations only (msam): the state passes through unchanged
        micro = dataclasses.replace(batch, examples=examples)
        eps, _ = perturb(opt, params, micro.ascent_grad(params), state, micro, key)
        return micro.descent_grad(tree_add_scaled(params, eps, 1.0), params)

    g_hat = jax.vmap(micro_descent)(split_micro_batches(batch.examples, m))
    return jax.tree.map(lambda g: g.mean(axis=0), g_hat), state


def perturb_then_descend(perturb, init_state=None):
    """Factory: ``(init_fn, update_fn, step_fn)`` of a method from its perturbation (module docstring).

    ``init_state(opt, params)`` is the method's initial state (None: stateless). ``update_fn`` returns the
    optax-style update u (x ← x + u); ``step_fn`` applies it. Build these once at module level, so that every
    optimizer of a method shares the same static functions (one jit compilation per method and shape).

    Example:
      >>> from sam_theory.optim import sam_perturbation
      >>> def perturb(opt, params, g, state, batch, key):          # the SAM ascent, as sam.py defines it
      ...     return sam_perturbation(g, opt.hparams["rho"], opt.option("eps")), state
      >>> init_fn, update_fn, step_fn = perturb_then_descend(perturb)
      >>> callable(step_fn)
      True
    """

    def init_fn(opt, params):
        tx = base_transform(opt, params)
        if tx is None and init_state is None:
            return ()
        method_state = () if init_state is None else init_state(opt, params)
        return SAMState(method_state, () if tx is None else tx.init(params))

    def update_fn(opt, params, state, batch, key):
        method_state, base_state = (state.perturbation, state.base) if isinstance(state, SAMState) else ((), ())
        g_hat, method_state = descent_gradient(perturb, opt, params, method_state, batch, key)
        tx = base_transform(opt, params)
        if tx is None:
            updates = jax.tree.map(lambda g: -opt.hparams["lr"] * g, g_hat)
        else:
            updates, base_state = tx.update(g_hat, base_state, params)
        if isinstance(state, SAMState):
            return updates, SAMState(method_state, base_state)
        return updates, state

    def step_fn(opt, params, state, batch, key):
        updates, state = update_fn(opt, params, state, batch, key)
        return optax.apply_updates(params, updates), state

    return init_fn, update_fn, step_fn


def make_optimizer(name, method, *, lr, hparams=None, options=(), base="sgd", eps=DEFAULT_EPS, needs=(),
                   base_hparams=None) -> Optimizer:
    """Validate the shared arguments and assemble an `Optimizer` for a method made by `perturb_then_descend`.

    Args:
      name: method name.  method: the ``(init_fn, update_fn, step_fn)`` triple.
      lr: η > 0 (a leaf).  hparams: the method's other numeric hyperparameters (leaves; validated by the caller).
      options: static ``(key, value)`` pairs.  base: one of `descent.BASES`.  eps: normalization guard δ ≥ 0.
      needs: data the trainer must supply ("full", "extra").
      base_hparams: overrides of the base's hyperparameters (`descent.BASE_DEFAULTS`), e.g. {"momentum": 0.5}.
    """
    check_positive("lr", lr)
    check_choice("base", base, BASES)
    check_nonnegative("eps", eps)
    defaults = BASE_DEFAULTS[base]
    base_hparams = dict(base_hparams or {})
    unknown = set(base_hparams) - set(defaults)
    if unknown:
        raise ValueError(f"base_hparams {sorted(unknown)} do not apply to base={base!r}; it takes {sorted(defaults)}")
    base_hparams = {**defaults, **base_hparams}
    for key, value in base_hparams.items():
        check_nonnegative(f"base_hparams[{key!r}]", value)
    for key in ("momentum", "b1", "b2"):
        if key in base_hparams:
            check_below_one(f"base_hparams[{key!r}]", base_hparams[key])
    clash = set(hparams or {}) & (set(base_hparams) | {"lr"})
    if clash:  # a programming error of a constructor, not of its caller
        raise ValueError(f"hparams {sorted(clash)} of {name!r} collide with the base optimizer's")
    init_fn, update_fn, step_fn = method
    return Optimizer({"lr": lr, **(hparams or {}), **base_hparams}, name, init_fn, step_fn,
                     options=tuple(options) + (("base", base), ("eps", eps)), needs=tuple(needs),
                     update_fn=update_fn)


def check_below_one(name, value):
    """A decay factor in [0, 1) (tracers pass unchecked, as in `sam_theory.validation`)."""
    check_nonnegative(name, value)
    if not isinstance(value, jax.core.Tracer) and not (np.asarray(value) < 1.0).all():
        raise ValueError(f"{name} must be < 1, got {value!r}")
    return value
