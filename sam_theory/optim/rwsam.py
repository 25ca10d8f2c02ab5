"""RW-SAM (re-weighted SAM) [recon], THEORY.md §2.

The batch's examples are weighted by a Gibbs distribution over per-sample sharpness proxies s_i,

  w_i = exp(s_i/T) / Σ_j exp(s_j/T)   (T = ``temperature``),

the perturbation ascends the weighted loss, and the descent is the usual uniform batch gradient:

  g_w = ∇(Σ_i w_i f_i)(x) = Σ_i w_i ∇f_i(x)   (w held fixed);   ε = ρ g_w/(‖g_w‖ + δ);   ĝ = ∇f_ξ(x + ε).

Proxies: "grad_norm": s_i = ‖∇f_i(x)‖ (per-sample gradients by one `vmap`); "finite_difference":
s_i = f_i(x + r ∇f_i/‖∇f_i‖) − f_i(x) with r = ``fd_radius`` (default ρ), the first-order sharpness of f_i.

[recon]: the source's exact algorithm could not be read. Guessed knobs, all keywords: ``temperature``, ``proxy``,
``fd_radius``, ``normalize`` (ε = ρ g_w without normalization), and the weights being computed without gradient
flow (stop_gradient) from the current batch only. With weight decay perturbed (``perturb_penalty``), ∇R(x) is
added to g_w; T → ∞ gives uniform weights, i.e. SAM.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ..validation import check_choice, check_nonnegative, check_positive
from .base import Optimizer
from .core import DEFAULT_EPS, make_optimizer, perturb_then_descend
from .sam import sam_perturbation
from .scaling import normalized, rows_norm, tree_acc_dtype

PROXIES = ("grad_norm", "finite_difference")


def per_example_losses_and_grads(loss_fn, params, examples):
    """(f_i(x))_i and (∇f_i(x))_i over the batch, one `vmap` (loss_fn is a batch-mean loss)."""
    one = lambda p, ex: loss_fn(p, jax.tree.map(lambda x: x[None], ex))
    return jax.vmap(jax.value_and_grad(one), in_axes=(None, 0))(params, examples)


def gibbs_weights(scores, temperature):
    """w_i = exp(s_i/T)/Σ_j exp(s_j/T) (softmax; stable for any scale of s)."""
    return jax.nn.softmax(scores / temperature)


def sharpness_proxies(loss_fn, params, examples, proxy, radius, eps=DEFAULT_EPS):
    """Per-sample sharpness proxies s_i and the per-sample gradients (module docstring)."""
    losses, grads = per_example_losses_and_grads(loss_fn, params, examples)
    dtype = tree_acc_dtype(grads)
    norms = rows_norm(grads, dtype)  # per-sample ‖∇f_i‖ without overflow/underflow (`optim.scaling`)
    if proxy == "grad_norm":
        return norms, grads

    def fd(example, g):
        step = normalized(g, radius, eps)  # r ∇f_i/(‖∇f_i‖ + δ), one scaling
        shifted = jax.tree.map(jnp.add, params, step)
        return loss_fn(shifted, jax.tree.map(lambda x: x[None], example))

    return jax.vmap(fd)(examples, grads) - losses, grads


def _rwsam_perturb(opt, params, g, state, batch, key):
    hp = opt.hparams
    radius = hp.get("fd_radius", hp["rho"])
    scores, grads = sharpness_proxies(batch.loss_fn, params, batch.examples, opt.option("proxy"), radius,
                                      opt.option("eps"))
    w = jax.lax.stop_gradient(gibbs_weights(scores, hp["temperature"]))
    g_w = jax.tree.map(lambda gi, x: jnp.tensordot(w, gi.astype(w.dtype), axes=1).astype(x.dtype), grads, params)
    if batch.penalty_fn is not None and batch.perturb_penalty:
        g_w = jax.tree.map(jnp.add, g_w, jax.grad(batch.penalty_fn)(params))
    return sam_perturbation(g_w, hp["rho"], opt.option("eps"), opt.option("normalize", True)), state


RWSAM = perturb_then_descend(_rwsam_perturb)


def rwsam(lr, rho, temperature=1.0, proxy: str = "grad_norm", *, fd_radius=None, normalize: bool = True,
          eps: float = DEFAULT_EPS, base: str = "sgd", base_hparams=None) -> Optimizer:
    """RW-SAM [recon]: ε = ρ g_w/(‖g_w‖ + δ), g_w = Σ w_i ∇f_i, w_i ∝ exp(s_i/T); ĝ = ∇f_ξ(x + ε) (THEORY.md §2).

    Args:
      lr: η > 0.  rho: ρ ≥ 0.  temperature: T > 0.  proxy: "grad_norm" or "finite_difference".
      fd_radius: r > 0 of the finite-difference proxy (default ρ).  normalize: ε = ρ g_w/(‖g_w‖ + δ) or ρ g_w.
      eps: normalization guard δ.  base, base_hparams: the optimizer applied to ĝ (default SGD).
    The per-sample quantities need the batch's examples, so `as_optax` does not offer RW-SAM.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from sam_theory.optim import Batch
      >>> loss = lambda x, ex: 0.5 * jnp.mean((x - ex) ** 2)                  # f_i = ½(x − e_i)²
      >>> batch = Batch(jnp.array([1.0, 3.0]), loss, full=jnp.array([1.0, 3.0]))
      >>> x = jnp.array([0.0])
      >>> opt = rwsam(0.1, 0.5, temperature=1.0)
      >>> y, _ = opt.step(x, opt.init(x), batch, jax.random.key(0))
      >>> round(float(y[0]), 6)
      0.25
    """
    check_nonnegative("rho", rho)
    check_positive("temperature", temperature)
    check_choice("proxy", proxy, PROXIES)
    hparams = {"rho": rho, "temperature": temperature}
    if fd_radius is not None:
        hparams["fd_radius"] = check_positive("fd_radius", fd_radius)
    return make_optimizer("rwsam", RWSAM, lr=lr, hparams=hparams, base=base, eps=eps, base_hparams=base_hparams,
                          options=(("proxy", proxy), ("normalize", bool(normalize))))
