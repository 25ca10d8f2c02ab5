"""Structured m-SAM: the exact m-SAM step for problems built from dense layers, without per-example weight copies.

THEORY.md §2 (m-SAM row) and §8. The batch ξ (size b) is split into k = b/m consecutive micro-batches M_j; with
f_{M_j} = (1/m) Σ_{i∈M_j} f_i the step is

  ε_j = c_j ∇f_{M_j}(x),   c_j = ρ/(‖∇f_{M_j}(x)‖ + δ) (normalized) or c_j = ρ (unnormalized),
  ĝ = (m/b) Σ_j ∇f_{M_j}(x + ε_j) = (1/b) Σ_i ∇f_i(x + ε_{j(i)}),                        (1)

where j(i) is the micro-batch of example i and ‖·‖ is the Euclidean norm over ALL parameters (every layer). m = 1
unnormalized is 1-SAM (THEORY.md §9); m = b is SAM / USAM. The generic path (`core.descent_gradient`) evaluates (1)
with one `vmap` over micro-batches, i.e. with k perturbed copies of every weight. This module evaluates the same (1)
exactly from the layer structure the problem declares in `Problem.structured_losses`.

Derivation. Let layer l be dense, z_{l,i} = W_l a_{l−1,i} (W_l: out × in), and write g_{l,i} = ∂f_i/∂z_{l,i}.
Then ∇_{W_l} f_i = g_{l,i} a_{l−1,i}ᵀ is rank one, so the micro-batch perturbation of the layer is a sum of m rank-ones

  ε_{l,j} = (c_j/m) Σ_{i∈M_j} g_{l,i} a_{l−1,i}ᵀ = (c_j/m) G_jᵀ A_j      (G_j: m × out, A_j: m × in, rows i ∈ M_j)

and the perturbed pre-activation of an example i′ ∈ M_j with (perturbed-network) input a′ is

  (W_l + ε_{l,j}) a′ = W_l a′ + (c_j/m) Σ_{i∈M_j} g_{l,i} (a_{l−1,i} · a′),                   (2)

i.e. one batched matmul a′W_lᵀ for the whole batch plus, per micro-batch, the m × m Gram block A′_j A_jᵀ times G_j:
O(b·m·(in + out)) instead of the O(b·in·out) of k weight copies. (For m = 1 this is the issue's
W a′ + ρ g_i (a_i·a′); a bias is a `param` below, whose "+1" term the rank-one form W̃ = [W, b], ã = [a, 1] would
give.) ĝ in (1) is the gradient of F(x) = Σ_i f_i(x + ε_{j(i)}) with ε held fixed: the network written with (2) is a
function of the unperturbed W_l whose value at x is F(x), and reverse-mode autodiff through it gives ∇F(x) =
Σ_i ∇f_i(x + ε_{j(i)}), including the backward pass through (W_l + ε_{l,j})ᵀ, exactly (no approximation).

The normalization needs ‖∇f_{M_j}‖² = Σ_l ‖∇_{W_l} f_{M_j}‖²_F + Σ_small ‖·‖². For a dense layer, with the Gram trick,

  ‖G_jᵀ A_j‖²_F = tr(A_jᵀ G_j G_jᵀ A_j) = Σ_{i,i′∈M_j} (g_i · g_{i′})(a_i · a_{i′}) = sum((G_j G_jᵀ) ⊙ (A_j A_jᵀ)),

which is ‖g_i‖²‖a_i‖² for m = 1 (‖g aᵀ‖_F = ‖g‖‖a‖). A weight used several times (u = 1..U) has gradient Σ_u G_uᵀA_u:
the uses are stacked as extra rows of G_j, A_j in both the norm and (2).

Small parameters (biases, diagonal weights, the output vector of a 1-D net) enter through ``ops.param(name)``, one
copy per example: their per-example gradients q_i come from the same backward pass, ε_{P,j} = (c_j/m) Σ_{i∈M_j} q_i
and ‖Σ q_i‖²/m² joins the norm. These copies cost O(b · size), the size of the activations.

Per-example quantities g_{l,i}, q_i and the activations a_{l−1,i} come from ONE backward pass of Σ_i f_i(x) with zero
"taps" t_l added to every z_l (∂/∂t_{l,i} = g_{l,i}, since f_i depends only on row i). So the step costs one forward
and backward at x, one forward and backward of the perturbed network (2), and the Gram blocks: SAM's cost plus
O(b·m·(in + out)) per layer.

Weight decay R: unperturbed (``perturb_penalty=False``) it is added as ∇R(x), as in `Batch.descent_grad`. A perturbed
penalty (its gradient is full rank) and sparsity masks ((g aᵀ) ⊙ M is not rank one) take the generic path.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ..problems.base import dense_apply, named_param
from .scaling import guard

__all__ = ["structured_problem", "structured_msam_gradient"]


def structured_problem(batch, params=None):
    """The `Problem` whose layer form the structured path can use for ``batch``, or None.

    The problem is found from the batch's loss: ``Batch.loss_fn`` is ``problem.batch_loss`` (a bound method) when
    `train` or a check builds the batch from a problem. It qualifies if it declares `structured_losses`, has no
    sparsity mask, the weight-decay penalty (if any) does not enter the perturbation, and ``params`` (if given) are
    float32 or float64.
    """
    problem = getattr(batch.loss_fn, "__self__", None)
    if not getattr(problem, "supports_structured", False):
        return None
    if getattr(batch.loss_fn, "__func__", None) is not type(problem).batch_loss:
        return None  # a bound method other than batch_loss (e.g. a custom loss)
    if batch.penalty_fn is not None and batch.perturb_penalty:
        return None
    if params is not None and jnp.result_type(*jax.tree.leaves(params)) not in (jnp.float32, jnp.float64):
        return None  # float16/bfloat16: the generic path's float32-accumulated scaling (`optim.scaling`)
    return problem


class _TapOps:
    """Pass 1: the plain network with a tap on every use, recording each use (kind, name) and each dense input a.

    A dense use returns z + t with a zero tap t of z's shape; a ``param`` use returns its tap, the per-example copies
    of the parameter. Without ``taps`` (the shape probe) the taps are made here and kept in ``self.taps``.
    """

    def __init__(self, params, batch_size, taps=None):
        self.params, self.batch_size = params, batch_size
        self.given, self.taps, self.uses, self.inputs = taps is not None, list(taps or []), [], []

    def _tap(self, value):
        if not self.given:
            self.taps.append(value)
        return self.taps[len(self.uses) - 1]

    def dense(self, name, a):
        z = dense_apply(named_param(self.params, name), a)
        self.uses.append(("dense", name))
        self.inputs.append(a)
        return z + self._tap(jnp.zeros_like(z))

    def param(self, name):
        x = named_param(self.params, name)
        self.uses.append(("param", name))
        self.inputs.append(None)
        return self._tap(jnp.broadcast_to(x, (self.batch_size,) + x.shape))


class _PerturbedOps:
    """Pass 2: the network at x + ε_{j(i)} for each example i, by (2) for dense layers and copies for ``param``."""

    def __init__(self, params, batch_size, k, dense_terms, param_eps):
        self.params, self.batch_size, self.k = params, batch_size, k
        self.dense_terms, self.param_eps = dense_terms, param_eps

    def dense(self, name, a):
        z = dense_apply(named_param(self.params, name), a)
        A, G, coef = self.dense_terms[name]          # (k, U·m, in), (k, U·m, out), (k,) = c_j/m
        a_j = a.reshape((self.k, -1) + a.shape[1:])  # (k, m, in)
        gram = jnp.einsum("jxi,jyi->jxy", a_j, A)    # a′ · a_i for i ∈ M_j (and every use of W)
        extra = jnp.einsum("jxy,jyo->jxo", gram, G) * coef[:, None, None]
        return z + extra.reshape(z.shape)

    def param(self, name):
        x = named_param(self.params, name)
        eps = self.param_eps[name]                   # (k,) + shape
        m = self.batch_size // self.k
        per_example = jnp.broadcast_to(eps[:, None], (self.k, m) + eps.shape[1:]).reshape((self.batch_size,) + x.shape)
        return x + per_example


def structured_msam_gradient(problem, params, batch, m: int, rho, normalize: bool, eps: float):
    """ĝ of (1) by the layer structure (module docstring); equal to the generic vmapped m-SAM gradient.

    Args:
      problem: a `Problem` with `structured_losses` (see `structured_problem`).
      params: x.  batch: the step's `Batch` (examples with leading axis b, optional unperturbed penalty).
      m: micro-batch size (divides b).  rho: ρ.  normalize: c_j = ρ/(‖∇f_{M_j}‖ + δ) or ρ.
      eps: δ, raised to the dtype's smallest normal number when positive (`optim.scaling.guard`, as the generic path).
    """
    examples = batch.examples
    b = jax.tree.leaves(examples)[0].shape[0]
    if b % m:
        raise ValueError(f"m={m} must divide the batch size b={b}")
    k = b // m

    # Pass 1: per-example output gradients g (dense) / parameter gradients q (param) and the dense inputs a.
    probe = _TapOps(params, b)
    shapes = jax.eval_shape(lambda p: (problem.structured_losses(p, examples, probe), probe.taps)[1], params)
    uses = probe.uses
    taps = [jnp.zeros(s.shape, s.dtype) if kind == "dense" else jnp.broadcast_to(named_param(params, name), s.shape)
            for (kind, name), s in zip(uses, shapes)]

    def tapped(taps):
        ops = _TapOps(params, b, taps)
        return jnp.sum(problem.structured_losses(params, examples, ops)), ops.inputs

    grads, inputs = jax.grad(tapped, has_aux=True)(taps)
    by_kind = {}
    for (kind, name), g, a in zip(uses, grads, inputs):
        by_kind.setdefault(name, (kind, []))
        if by_kind[name][0] != kind:
            raise ValueError(f"parameter {name!r} is used both as a dense layer and as a per-example param")
        by_kind[name][1].append((g, a))

    # Micro-batch gradients: dense layers as stacked (A_j, G_j) blocks, small parameters as explicit sums.
    blocks, param_grads, sq_norm = {}, {}, 0.0
    for name, (kind, pieces) in by_kind.items():
        if kind == "dense":
            A = jnp.concatenate([a.reshape(k, m, -1) for g, a in pieces], axis=1)
            G = jnp.concatenate([g.reshape(k, m, -1) for g, a in pieces], axis=1)
            blocks[name] = (A, G)
            if normalize:
                sq_norm = sq_norm + jnp.einsum("jxy,jxy->j", jnp.einsum("jxo,jyo->jxy", G, G),
                                               jnp.einsum("jxi,jyi->jxy", A, A)) / m**2
        else:
            q = sum(g.reshape((k, m) + g.shape[1:]).sum(axis=1) for g, a in pieces) / m  # ∇_P f_{M_j}, (k,) + shape
            param_grads[name] = q
            if normalize:
                sq_norm = sq_norm + jnp.sum(q.reshape(k, -1) ** 2, axis=1)
    c = rho / (jnp.sqrt(sq_norm) + guard(eps, jnp.result_type(sq_norm))) if normalize else jnp.full((k,), rho, dtype=jnp.result_type(float))
    dense_terms = {name: (A, G, c / m) for name, (A, G) in blocks.items()}
    param_eps = {name: q * c.reshape((k,) + (1,) * (q.ndim - 1)) for name, q in param_grads.items()}

    # Pass 2: ĝ = (1/b) ∇_x Σ_i f_i(x + ε_{j(i)}), ε fixed.
    def perturbed_sum(p):
        return jnp.sum(problem.structured_losses(p, examples, _PerturbedOps(p, b, k, dense_terms, param_eps)))

    g_hat = jax.tree.map(lambda g: g / b, jax.grad(perturbed_sum)(params))
    if batch.penalty_fn is not None:  # unperturbed penalty (structured_problem rejects a perturbed one): + ∇R(x)
        g_hat = jax.tree.map(jnp.add, g_hat, jax.grad(batch.penalty_fn)(params))
    return g_hat

