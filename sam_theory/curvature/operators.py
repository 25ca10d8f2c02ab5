"""Matrix-free linear operators: Hessian-vector products, built once and applied many times (THEORY.md §4).

A `LinearOperator` is a symmetric map v ↦ A v on R^p, stored as a `jax.tree_util.Partial` whose leaves are the
arrays it closes over (for an HVP: the residuals of one linearization). It is a pytree, so it passes through
`jax.jit` as an argument (no large constants baked into compiled code) and through `jax.vmap`.

- `hvp(fn, params)`: H = ∇²fn(params), forward-over-reverse: ``jax.linearize(jax.grad(fn))`` once, so every
  product afterwards costs one linear (tangent) pass, not a fresh forward + backward.
- `per_example_hvp(problem, params)`: all n per-example products (H_i u_i)_i at once, one linearization of the
  stacked per-example gradient map X ↦ (∇f_i(X_i))_i at X_i = params.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jax.tree_util import Partial

from ..compiler import jit_fast_compile
from ..problems.base import Problem, as_jax, take
from ..validation import CURVATURE_HINT, check_finite_params


@jit_fast_compile
def _call(fn: Partial, v):
    """Apply a `Partial` under jit: one compile per operator instead of op-by-op eager dispatch."""
    return fn(v)


@jit_fast_compile
def _call_rows(fn: Partial, vs):
    return jax.vmap(fn)(vs)


@dataclasses.dataclass(frozen=True)
class Unravel:
    """Flat vector → parameter pytree, hashable (equal structures compare equal), so that operators built at
    different points of the same model share their compiled code (it is static metadata of the pytree)."""

    treedef: Any
    shapes: tuple
    dtypes: tuple

    @staticmethod
    def of(params) -> "Unravel":
        leaves, treedef = jax.tree.flatten(params)
        return Unravel(treedef, tuple(jnp.shape(x) for x in leaves), tuple(jnp.result_type(x) for x in leaves))

    def __call__(self, flat):
        sizes = [int(np.prod(s)) for s in self.shapes]
        parts = jnp.split(flat, np.cumsum(sizes)[:-1]) if sizes else []
        return jax.tree.unflatten(self.treedef, [p.reshape(s).astype(d) for p, s, d in
                                                 zip(parts, self.shapes, self.dtypes)])


@dataclasses.dataclass(frozen=True)
class _FlatLoss:
    """x ↦ fn(unravel(x)) (hashable when fn is: a module-level function or a bound method of a problem)."""

    fn: Callable
    unravel: Unravel

    def __call__(self, x, *args):
        return self.fn(self.unravel(x), *args)


@jit_fast_compile(static_argnums=0)
def _linearize_grad(loss: _FlatLoss, flat):
    return jax.linearize(jax.grad(loss), flat)[1]


@jit_fast_compile(static_argnums=0)
def _linearize_stacked_grad(loss: _FlatLoss, stacked, data):
    return jax.linearize(lambda xs: jax.vmap(jax.grad(loss))(xs, data), stacked)[1]


def _is_flat(v, size: int) -> bool:
    return isinstance(v, (jax.Array, np.ndarray)) and getattr(v, "shape", None) == (size,)


@functools.partial(jax.tree_util.register_dataclass, data_fields=["apply"],
                   meta_fields=["size", "dtype", "unravel"])
@dataclasses.dataclass(frozen=True)
class LinearOperator:
    """A symmetric linear map on R^p (``size`` = p).

    Attributes:
      apply: a `Partial` mapping a flat (p,) vector to a flat (p,) vector (its leaves are the operator's data).
      size: p.  dtype: the vectors' dtype.
      unravel: maps a flat vector back to the parameter pytree (None for a plain matrix).

    ``op(v)`` accepts a flat (p,) vector or a parameter pytree and returns the same kind; ``op.matvec`` is the
    flat map; ``op.matmat(V)`` applies it to the rows of V (vmapped); ``op.as_dense()`` materializes A (tests).

    Example:
      >>> import jax.numpy as jnp
      >>> from sam_theory.curvature import from_dense
      >>> op = from_dense(jnp.diag(jnp.array([1.0, 2.0, 3.0])))
      >>> op.shape, op(jnp.ones(3)).tolist()
      ((3, 3), [1.0, 2.0, 3.0])
      >>> op.matmat(jnp.eye(3)[:2]).tolist()                    # rows e_1, e_2 ↦ A e_1, A e_2
      [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]
    """

    apply: Partial
    size: int
    dtype: Any
    unravel: Callable | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return (self.size, self.size)

    def matvec(self, v: jax.Array) -> jax.Array:
        return _call(self.apply, v)

    def matmat(self, vs: jax.Array) -> jax.Array:
        """A v for every row v of ``vs`` (shape (m, p)), vmapped."""
        return _call_rows(self.apply, vs)

    def __call__(self, v):
        if _is_flat(v, self.size):
            return self.matvec(v)
        flat, unravel = ravel_pytree(v)
        if flat.shape != (self.size,):
            raise ValueError(f"v must be a ({self.size},) vector or a pytree of {self.size} scalars, "
                             f"got {flat.shape[0]} scalars")
        return unravel(self.matvec(flat))

    def as_dense(self) -> jax.Array:
        """The (p, p) matrix whose column j is A e_j."""
        return self.matmat(jnp.eye(self.size, dtype=self.dtype)).T


def _dense_apply(matrix, v):
    return matrix @ v


def from_dense(matrix) -> LinearOperator:
    """The operator v ↦ M v of a symmetric (p, p) matrix (tests, references, small problems).

    Example:
      >>> import jax.numpy as jnp
      >>> from sam_theory.curvature import from_dense
      >>> M = jnp.array([[2.0, 1.0], [1.0, 2.0]])
      >>> from_dense(M)(jnp.array([1.0, -1.0])).tolist()        # an eigenvector, eigenvalue 1
      [1.0, -1.0]
    """
    matrix = jnp.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"matrix must be square (p, p), got shape {matrix.shape}")
    return LinearOperator(Partial(_dense_apply, matrix), matrix.shape[0], matrix.dtype)


def _as_partial(fn) -> Partial:
    return fn if isinstance(fn, Partial) else Partial(fn)


def linear_operator(matvec: Callable, size: int, dtype, unravel: Callable | None = None) -> LinearOperator:
    """Wrap a flat matvec (a module-level function or a `Partial` carrying its arrays) as an operator.

    Example:
      >>> import jax.numpy as jnp
      >>> from jax.tree_util import Partial
      >>> from sam_theory.curvature import linear_operator
      >>> d = jnp.array([1.0, 2.0, 3.0])
      >>> op = linear_operator(Partial(jnp.multiply, d), 3, jnp.float32)   # v ↦ d ⊙ v = diag(d) v
      >>> op.as_dense().tolist()
      [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 3.0]]
    """
    return LinearOperator(_as_partial(matvec), int(size), jnp.dtype(dtype), unravel)


def hvp(fn: Callable, params) -> LinearOperator:
    """The Hessian operator v ↦ ∇²fn(params) v (THEORY.md §4, matrix-free HVP).

    Forward-over-reverse: ``jax.linearize(jax.grad(f), x)`` runs the forward and backward pass once and keeps
    their residuals; each product then evaluates only the linear jvp of the gradient (≈ one extra gradient's
    cost). Works on raveled vectors and on parameter pytrees, and is vmappable (``op.matmat``). Non-finite params
    raise a `ValueError`.

    Example:
      >>> import jax.numpy as jnp
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import hvp
      >>> f = lambda q: 0.5 * jnp.sum(q["w"] ** 2) + q["w"][0] * q["b"]   # ∂²f/∂w² = I, ∂²f/∂w₀∂b = 1
      >>> with float64():
      ...     op = hvp(f, {"w": jnp.zeros(2), "b": jnp.array(0.0)})
      ...     Hv = op({"w": jnp.array([1.0, 0.0]), "b": jnp.array(1.0)})   # a pytree in, a pytree out
      >>> Hv["w"].tolist(), float(Hv["b"])
      ([2.0, 0.0], 1.0)
    """
    check_finite_params("params", params, CURVATURE_HINT)
    flat, unravel = ravel_pytree(params)[0], Unravel.of(params)
    lin = _linearize_grad(_FlatLoss(fn, unravel), flat)  # compiled once per (fn, structure): cache hits after
    return LinearOperator(lin, flat.shape[0], flat.dtype, unravel)


@dataclasses.dataclass(frozen=True)
class _PerExampleAt:
    """(flat, data, idx, vs) ↦ (H_{idx_j} v_j)_j by a vmapped jvp of the gradient (no stored linearization)."""

    loss: _FlatLoss

    def __call__(self, flat, data, idx, vs):
        def one(example, v):
            return jax.jvp(jax.grad(lambda x: self.loss(x, example)), (flat,), (v,))[1]
        return jax.vmap(one)(take(data, idx), vs)


@functools.partial(jax.tree_util.register_dataclass, data_fields=["apply", "apply_at"],
                   meta_fields=["n", "size", "dtype", "unravel"])
@dataclasses.dataclass(frozen=True)
class PerExampleHVP:
    """All per-example Hessian products at once: (u_i)_i ↦ (H_i u_i)_i, H_i = ∇²f_i(params) (THEORY.md §1, §4).

    ``pe(v)`` with one (p,) vector (or parameter pytree) returns the (n, p) stack (H_i v)_i; with an (n, p)
    stack (u_i)_i it returns (H_i u_i)_i. ``pe.mean_operator()`` is H = (1/n) Σ_i H_i as a `LinearOperator`;
    ``pe.power_mean(v, k)`` is (1/n) Σ_i H_i^k v; ``pe.at(idx, vs)`` is (H_{idx_j} v_j)_j for any index list
    (used to enumerate batches).

    Example:
      >>> import jax.numpy as jnp
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import per_example_hvp
      >>> from sam_theory.problems import LinearRegression
      >>> prob = LinearRegression(X=[[1.0, 0.0], [0.0, 2.0]], y=[0.0, 0.0])   # H_1 = diag(1, 0), H_2 = diag(0, 4)
      >>> with float64():
      ...     pe = per_example_hvp(prob, jnp.zeros(2))
      ...     H = pe.mean_operator().as_dense()
      ...     H2v = pe.power_mean(jnp.ones(2), 2)
      >>> H.tolist()                                            # (1/n) Σ_i H_i
      [[0.5, 0.0], [0.0, 2.0]]
      >>> H2v.tolist()                                          # (1/n) Σ_i H_i² 1 = (1/2, 8)
      [0.5, 8.0]
    """

    apply: Partial  # (n, p) -> (n, p), one linearization
    apply_at: Partial  # (idx, vs) -> (H_{idx_j} v_j)_j
    n: int
    size: int
    dtype: Any
    unravel: Callable | None = None

    def __call__(self, v):
        if isinstance(v, (jax.Array, np.ndarray)) and v.shape in ((self.size,), (self.n, self.size)):
            flat = jnp.asarray(v)
            pytree_out = False
        else:
            flat = ravel_pytree(v)[0]
            if flat.shape[0] == self.n * self.size:
                flat = jax.vmap(lambda t: ravel_pytree(t)[0])(v)
            elif flat.shape[0] != self.size:
                raise ValueError(f"v must hold {self.size} (one vector) or {self.n}×{self.size} (one per "
                                 f"example) scalars, got {flat.shape[0]}")
            pytree_out = True
        stack = jnp.broadcast_to(flat, (self.n, self.size)) if flat.ndim == 1 else flat
        out = _call(self.apply, stack)
        return jax.vmap(self.unravel)(out) if pytree_out else out

    def at(self, idx, vs):
        return _call(Partial(self.apply_at.func, *self.apply_at.args, jnp.asarray(idx)), vs)

    def mean_operator(self) -> LinearOperator:
        """H = (1/n) Σ_i H_i as a flat `LinearOperator`."""
        return LinearOperator(Partial(_BroadcastMean(self.n), self.apply), self.size, self.dtype, self.unravel)

    def power_mean(self, v, k: int):
        """(1/n) Σ_i H_i^k v for a flat (p,) vector: k applications of the per-example map."""
        return _power_mean(self.apply, v, self.n, k)


@jit_fast_compile(static_argnames=("n", "k"))
def _power_mean(apply: Partial, v, n: int, k: int):
    u = jnp.broadcast_to(v, (n,) + v.shape)
    for _ in range(k):  # k ≤ 4: a fixed unroll over the power, not over iterations
        u = apply(u)
    return jnp.mean(u, axis=0)


@dataclasses.dataclass(frozen=True)
class _BroadcastMean:
    """(apply, v) ↦ mean_i (apply(v, …, v))_i = H v (hashable: equal n share compiled code)."""

    n: int

    def __call__(self, apply, v):
        return jnp.mean(apply(jnp.broadcast_to(v, (self.n,) + v.shape)), axis=0)


def per_example_hvp(problem: Problem, params) -> PerExampleHVP:
    """Per-example HVPs (H_i u_i)_i, vmapped over the n examples of ``problem`` (THEORY.md §4).

    Linearizes the stacked per-example gradient X ↦ (∇f_i(X_i))_{i=1..n} once at X_i = params, so a product
    with all n Hessians costs one vmapped tangent pass. Non-finite params raise a `ValueError`.

    Example:
      >>> import jax.numpy as jnp
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import per_example_hvp
      >>> from sam_theory.problems import LinearRegression
      >>> prob = LinearRegression(X=[[1.0, 0.0], [0.0, 2.0]], y=[0.0, 0.0])   # H_i = a_i a_iᵀ
      >>> with float64():
      ...     pe = per_example_hvp(prob, jnp.zeros(2))
      ...     out = pe(jnp.ones(2))                             # (H_i 1)_i
      >>> out.tolist()
      [[1.0, 0.0], [0.0, 4.0]]
    """
    check_finite_params("params", params, CURVATURE_HINT)
    flat, unravel = ravel_pytree(params)[0], Unravel.of(params)
    data = as_jax(problem.data)
    loss = _FlatLoss(problem.per_example_loss, unravel)
    lin = _linearize_stacked_grad(loss, jnp.broadcast_to(flat, (problem.n, flat.shape[0])), data)
    apply_at = Partial(_PerExampleAt(loss), flat, data)
    return PerExampleHVP(lin, apply_at, problem.n, flat.shape[0], flat.dtype, unravel)
