"""Lanczos tridiagonalization for extreme eigenvalues of a symmetric operator (THEORY.md §4).

After m steps from a unit vector q_1, A Q_m = Q_m T_m + β_m q_{m+1} e_mᵀ with T_m tridiagonal (α on the diagonal,
β off it). The Ritz pairs (θ_i, y_i = Q_m s_i) of T_m s_i = θ_i s_i have residual ‖A y_i − θ_i y_i‖ = β_m |s_{m,i}|,
and every Ritz value lies within its residual of an eigenvalue of A (A symmetric). Full reorthogonalization
(classical Gram–Schmidt against the stored basis, repeated when it cancels, "twice is enough") keeps Q_m orthonormal to round-off, so the residual
formula stays exact. The loop is one ``lax.scan``.

Breakdown: if β_j falls to round-off (an invariant subspace has been found), the next basis vector is the
coordinate vector e_i least represented in Q (min_i ‖Q e_i‖² ≤ m/p < 1, so it is never in span Q) orthogonalized
against Q, and β_j is set to 0 (no random draw inside the loop: threefry there was ~0.3 s of every compile); T stays block-tridiagonal and all its Ritz values
remain eigenvalue approximations of A. No NaN is produced; ``num_iters`` is capped at p.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax import lax

from ..compiler import jit_fast_compile
from ..validation import check_choice, check_int
from .eigh import eigh
from .operators import LinearOperator

REORTHO = ("full", "none")


@functools.partial(jax.tree_util.register_dataclass,
                   data_fields=["ritz_values", "ritz_vectors", "residual_norms", "alphas", "betas"],
                   meta_fields=["num_iters", "reortho"])
@dataclasses.dataclass(frozen=True)
class LanczosResult:
    """Ritz values (ascending, shape (m,)), Ritz vectors (rows, shape (m, p)), residual norms β_m|s_{m,i}|,
    and the tridiagonal coefficients (α: (m,), β: (m,), the last β being the final residual norm).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import from_dense, lanczos
      >>> with float64():
      ...     res = lanczos(from_dense(jnp.diag(jnp.array([1.0, 2.0, 3.0]))), 3, jax.random.key(0))
      >>> res.num_iters, res.ritz_vectors.shape, res.reortho
      (3, (3, 3), 'full')
      >>> [round(abs(x), 6) for x in res.ritz_vectors[-1].tolist()]   # top Ritz vector: ±e_3
      [0.0, 0.0, 1.0]
    """

    ritz_values: jax.Array
    ritz_vectors: jax.Array
    residual_norms: jax.Array
    alphas: jax.Array
    betas: jax.Array
    num_iters: int
    reortho: str


@functools.partial(jax.tree_util.register_dataclass, data_fields=["values", "vectors", "residual_norms"],
                   meta_fields=["num_iters"])
@dataclasses.dataclass(frozen=True)
class Eigenpairs:
    """``values`` (descending for "largest", ascending for "smallest"), ``vectors`` as rows, and the explicit
    residual norms ‖A y − θ y‖ (one extra matvec per pair): each θ is within that distance of an eigenvalue.

    Example:
      >>> import jax.numpy as jnp
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import from_dense, top_eigenvalues
      >>> with float64():
      ...     pairs = top_eigenvalues(from_dense(jnp.diag(jnp.array([1.0, 2.0, 3.0]))), k=2)
      >>> [round(x, 8) for x in pairs.values.tolist()], pairs.vectors.shape   # descending, vectors as rows
      ([3.0, 2.0], (2, 3))
      >>> max(pairs.residual_norms.tolist()) < 1e-8             # ‖A y − θ y‖, computed explicitly
      True
    """

    values: jax.Array
    vectors: jax.Array
    residual_norms: jax.Array
    num_iters: int


def _orthogonalize(w, basis):
    """Classical Gram–Schmidt against the rows of ``basis`` (zero rows are harmless), repeated once when the
    first pass removed more than 30% of ‖w‖ (the Daniel–Gragg–Kaufman–Stewart "twice is enough" criterion):
    after the second pass w is orthogonal to working precision. In Lanczos the first pass usually removes only
    round-off, so the second (memory-bound, O(m p)) pass is mostly skipped."""
    once = w - basis.T @ (basis @ w)
    return lax.cond(jnp.linalg.norm(once) < 0.7 * jnp.linalg.norm(w),
                    lambda u: u - basis.T @ (basis @ u), lambda u: u, once)


def _normalize(v):
    return v / jnp.maximum(jnp.linalg.norm(v), jnp.finfo(v.dtype).tiny)


def lanczos_tridiag(matvec, v0, num_iters: int, reortho: str):
    """Run ``num_iters`` Lanczos steps from ``v0`` (any nonzero vector); return (α, β, Q) with Q of shape
    (num_iters + 1, p), its last row q_{m+1}. After a breakdown the next vector is the least represented
    coordinate vector, orthogonalized (deterministic)."""
    p = v0.shape[0]
    dtype = v0.dtype
    eps = jnp.finfo(dtype).eps
    basis = jnp.zeros((num_iters + 1, p), dtype).at[0].set(_normalize(v0))

    def restart(basis, j):
        least = jnp.argmin(jnp.sum(basis**2, axis=0))  # Σ_i ‖Q e_i‖² = rank Q < p, so its minimum is < 1
        return _normalize(_orthogonalize(jax.nn.one_hot(least, p, dtype=dtype), basis))

    def step(carry, j):
        basis, beta_prev, anorm = carry
        q = basis[j]
        q_prev = jnp.where(j > 0, basis[jnp.maximum(j - 1, 0)], jnp.zeros_like(q))
        w = matvec(q)
        alpha = jnp.vdot(q, w)
        w = w - alpha * q - beta_prev * q_prev
        if reortho == "full":
            w = _orthogonalize(w, basis)
        beta = jnp.linalg.norm(w)
        anorm = jnp.maximum(anorm, jnp.sqrt(alpha**2 + beta**2 + beta_prev**2))
        broken = beta <= 10 * eps * jnp.sqrt(p) * anorm
        q_next = lax.cond(broken, restart, lambda b, _: w / jnp.where(broken, 1.0, beta), basis, j)
        beta = jnp.where(broken, jnp.zeros_like(beta), beta)
        basis = basis.at[j + 1].set(q_next)
        return (basis, beta, anorm), (alpha, beta)

    zero = jnp.zeros((), dtype)
    (basis, _, _), (alphas, betas) = lax.scan(step, (basis, zero, zero), jnp.arange(num_iters))
    return alphas, betas, basis


def tridiagonal(alphas, betas):
    """The dense (m, m) T_m from α (m,) and β (m,) (β_m, the residual norm, is not part of T_m)."""
    return jnp.diag(alphas) + jnp.diag(betas[:-1], 1) + jnp.diag(betas[:-1], -1)


@jit_fast_compile(static_argnames=("size", "dtype"))
def _start_vector(key, size: int, dtype):
    k_start, _ = jax.random.split(key)  # the start vector of earlier versions (same key, same result)
    return jax.random.normal(k_start, (size,), dtype)


def start_vector(key, size: int, dtype) -> jax.Array:
    """The Gaussian start vector that `lanczos` and `top_eigenvalues` draw from ``key`` (a program of its own,
    compiled once per size and shared by both)."""
    return _start_vector(key, size, jnp.dtype(dtype))


@jit_fast_compile(static_argnames=("num_iters", "reortho"))
def _lanczos(op: LinearOperator, v0, num_iters: int, reortho: str) -> LanczosResult:
    alphas, betas, basis = lanczos_tridiag(op.matvec, v0, num_iters, reortho)
    theta, s = eigh(tridiagonal(alphas, betas))
    vectors = s.T @ basis[:num_iters]
    residuals = jnp.abs(betas[-1] * s[-1, :])
    return LanczosResult(theta, vectors, residuals, alphas, betas, num_iters, reortho)


def lanczos(op: LinearOperator, num_iters: int, key, reortho: str = "full") -> LanczosResult:
    """``num_iters`` Lanczos steps on the symmetric operator ``op`` from a Gaussian start vector drawn with ``key``.

    Returns a `LanczosResult` (Ritz values ascending, Ritz vectors as rows, residual norms β_m|s_{m,i}|).
    ``reortho="full"`` (default) reorthogonalizes against all stored vectors (Gram–Schmidt twice, O(m p) per
    step); ``"none"`` is the plain three-term recurrence (ghost eigenvalues appear once Ritz values converge).
    ``num_iters`` is capped at p, where the Krylov space is the whole space and the Ritz values are the
    eigenvalues to round-off.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import from_dense, lanczos
      >>> with float64():
      ...     res = lanczos(from_dense(jnp.diag(jnp.array([1.0, 2.0, 3.0]))), 3, jax.random.key(0))
      >>> [round(x, 8) for x in res.ritz_values.tolist()]      # m = p steps: the eigenvalues
      [1.0, 2.0, 3.0]
      >>> max(res.residual_norms.tolist()) < 1e-8
      True
    """
    check_choice("reortho", reortho, REORTHO)
    num_iters = min(check_int("num_iters", num_iters), op.size)
    return _lanczos(op, start_vector(key, op.size, op.dtype), num_iters, reortho)


def top_eigenvalues(op: LinearOperator, k: int = 1, *, num_iters: int | None = None, key=None,
                    which: str = "largest", reortho: str = "full") -> Eigenpairs:
    """The ``k`` largest (algebraic; ``which="largest"``) or smallest eigenpairs of ``op`` by Lanczos.

    ``num_iters`` defaults to min(p, max(4k, k + 40)). The residual norms returned are computed explicitly,
    ‖A y_i − θ_i y_i‖ (k extra matvecs); for a symmetric A each θ_i is within that distance of an eigenvalue,
    and within residual²/gap of it when the gap to the rest of the spectrum is known.

    Example:
      >>> import jax.numpy as jnp
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import from_dense, top_eigenvalues
      >>> with float64():
      ...     op = from_dense(jnp.diag(jnp.array([1.0, 2.0, 3.0])))
      ...     top = top_eigenvalues(op, k=2)
      >>> [round(x, 8) for x in top.values.tolist()]           # λ_max = 3, then 2
      [3.0, 2.0]
    """
    k = check_int("k", k)
    check_choice("which", which, ("largest", "smallest"))
    if k > op.size:
        raise ValueError(f"k must be <= p = {op.size}, got {k}")
    num_iters = min(op.size, max(4 * k, k + 40) if num_iters is None else check_int("num_iters", num_iters))
    if num_iters < k:
        raise ValueError(f"num_iters must be >= k = {k}, got {num_iters}")
    check_choice("reortho", reortho, REORTHO)
    key = jax.random.key(0) if key is None else key
    return _top(op, start_vector(key, op.size, op.dtype), num_iters, reortho, k, which == "largest")


@jit_fast_compile(static_argnames=("num_iters", "reortho", "k", "largest"))
def _top(op, v0, num_iters: int, reortho: str, k: int, largest: bool) -> Eigenpairs:
    """Lanczos and the selection of the k extreme pairs as one compiled program."""
    res = _lanczos(op, v0, num_iters, reortho)
    idx = jnp.arange(res.num_iters - 1, res.num_iters - 1 - k, -1) if largest else jnp.arange(k)
    values, vectors = res.ritz_values[idx], res.ritz_vectors[idx]
    residuals = jnp.linalg.norm(op.matmat(vectors) - values[:, None] * vectors, axis=1)
    return Eigenpairs(values, vectors, residuals, res.num_iters)
