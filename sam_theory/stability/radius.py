"""Spectral radius r(T) of the second-moment operator and the critical learning rate η_c (THEORY.md §5).

x* is linearly stable iff r(T) ≤ 1 (T is self-adjoint and positive on symmetric matrices, hence diagonalizable:
r(T) = 1 is still stable). Dense (p ≤ `DENSE_MAX_P` under "auto", within the memory budget): `eigh` of T restricted
to symmetric matrices in an orthonormal basis, from η-, ρ-independent pieces built once
(`sam_theory.stability.moments.operator_pieces`). Matrix-free: Lanczos with full reorthogonalization on
vec(Σ) ↦ vec(T(sym Σ)), T applied by set partitions (§4.1), with its residual norm.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.tree_util import Partial

from ..curvature import BatchCurvature, eigh, lanczos, linear_operator
from ..validation import check_int, check_nonnegative, check_positive
from .moments import apply_symmetrized, operator_pieces, resolve_method
from .step_map import check_curvature, check_step, mean_step_spectrum

STABILITY_TOL = 1e-9  # r(T) ≤ 1 + STABILITY_TOL counts as stable (round-off of an eigenvalue equal to 1)


@dataclasses.dataclass(frozen=True)
class SpectralRadius:
    """r(T) for one (η, ρ, b) (THEORY.md §5).

    Attributes:
      value: r(T) = max |eigenvalue| of T on symmetric matrices (= λ_max(T): T is positive, Perron).
      residual: ‖T(V) − θ V‖_F of the reported unit eigen-matrix V (dense: explicit; Lanczos: β_m|s_m|); the true
        eigenvalue is within ``residual`` of ``value``.
      eigenmatrix: V, a symmetric (p, p) matrix with ‖V‖_F = 1.
      method: "dense" or "matrix_free";  num_iters: Lanczos steps (0 for dense).
      eta, rho, batch_size, replace: the configuration.
    """

    value: float
    residual: float
    eigenmatrix: np.ndarray
    method: str
    num_iters: int
    eta: float
    rho: float
    batch_size: int
    replace: bool

    def __float__(self) -> float:
        return self.value


def _top(K):
    theta, vecs = eigh(K)
    j = jnp.argmax(jnp.abs(theta))
    v = vecs[:, j]
    return jnp.abs(theta[j]), jnp.linalg.norm(K @ v - theta[j] * v), v


@jax.jit
def _radius_dense(pieces, etas, rho):
    """(r, residual, eigen-matrix) for every η (a sequential map: one eigh at a time on CPU)."""
    def one(eta):
        r, res, v = _top(pieces.matrix(eta, rho))
        return r, res, jnp.einsum("c,cpq->pq", v, pieces.basis)
    return lax.map(one, etas)


@functools.partial(jax.jit, static_argnames=("num_iters",))
def _radius_matrix_free(curv, etas, rho, key, num_iters):
    def one(eta):
        op = linear_operator(Partial(apply_symmetrized, curv, eta, rho), curv.size**2, curv.dtype)
        res = lanczos(op, num_iters, key)
        theta = res.ritz_values
        j = jnp.where(jnp.abs(theta[-1]) >= jnp.abs(theta[0]), theta.shape[0] - 1, 0)
        return jnp.abs(theta[j]), res.residual_norms[j], res.ritz_vectors[j].reshape(curv.size, curv.size)
    return lax.map(one, etas)


@dataclasses.dataclass(frozen=True)
class RadiusEvaluator:
    """r(T) at many η for one (curvature, ρ-independent setup): dense pieces built once, or Lanczos settings."""

    curv: BatchCurvature
    method: str
    pieces: object
    num_iters: int
    key: object

    def __call__(self, etas, rho):
        etas = jnp.atleast_1d(jnp.asarray(etas, self.curv.dtype))
        rho = jnp.asarray(rho, self.curv.dtype)
        if self.method == "dense":
            return _radius_dense(self.pieces, etas, rho)
        return _radius_matrix_free(self.curv.batch_as_data(), etas, rho, self.key, self.num_iters)


def radius_evaluator(curv: BatchCurvature, *, method: str = "auto", num_iters: int = 60, key=None,
                     memory_budget=None) -> RadiusEvaluator:
    """Set up r(T) evaluation (THEORY.md §5): "dense" builds the η-, ρ-independent pieces once."""
    check_curvature(curv)
    method = resolve_method(curv, method, memory_budget)
    iters = min(curv.size**2, check_int("num_iters", num_iters))
    pieces = operator_pieces(curv, memory_budget=memory_budget) if method == "dense" else None
    return RadiusEvaluator(curv, method, pieces, 0 if method == "dense" else iters,
                           jax.random.key(0) if key is None else key)


def spectral_radius(curv: BatchCurvature, eta, rho, *, method: str = "auto", num_iters: int = 60, key=None,
                    memory_budget=None) -> SpectralRadius:
    """r(T) of the second-moment operator T (THEORY.md §5), with a residual.

    Dense (p ≤ DENSE_MAX_P under "auto"): `eigh` of T restricted to symmetric matrices in an orthonormal basis.
    Matrix-free: ``num_iters`` Lanczos steps (full reorthogonalization; capped at p²) on vec(Σ) ↦ vec(T(sym Σ)),
    started from a Gaussian vector drawn with ``key``; r = the Ritz value of largest modulus and its residual.
    """
    check_step(eta, rho)
    ev = radius_evaluator(curv, method=method, num_iters=num_iters, key=key, memory_budget=memory_budget)
    vals, res, vecs = ev([eta], rho)
    V = np.asarray(vecs[0])
    V = 0.5 * (V + V.T)
    return SpectralRadius(float(vals[0]), float(res[0]), V / np.linalg.norm(V), ev.method, ev.num_iters,
                          float(eta), float(rho), curv.batch_size, curv.replace)


def is_linearly_stable(curv: BatchCurvature, eta, rho, *, tol: float = STABILITY_TOL, **kwargs) -> bool:
    """r(T) ≤ 1 + tol (THEORY.md §5). T is diagonalizable, so r(T) = 1 is still stable; ``tol`` (1e-9) absorbs the
    round-off of an eigenvalue exactly 1 (a direction v with H_i v = 0 for all i gives T(vvᵀ) = vvᵀ)."""
    check_nonnegative("tol", tol)
    return spectral_radius(curv, eta, rho, **kwargs).value <= 1 + tol


@dataclasses.dataclass(frozen=True)
class CriticalLR:
    """η_c(ρ, b): the first η at which r(T) crosses 1 + tol (THEORY.md §5).

    Attributes:
      eta: the estimate (midpoint of the final bracket); bracket: (stable η, unstable η) with hi − lo ≤ rtol·hi.
        eta = 0 when every η > 0 is unstable, eta = inf when every η is stable; ``reason`` then says why.
      eta_max: 2/λ_max(H + ρE[H_ξ²]), an upper bound on η_c (the mean iterate diverges beyond it).
      grid, radii: the scan (r(T) at each grid η), for figures.
      rho, batch_size, replace, tol, method: the configuration.  reason: "" when a threshold was found.
    """

    eta: float
    bracket: tuple
    eta_max: float
    grid: np.ndarray
    radii: np.ndarray
    rho: float
    batch_size: int
    replace: bool
    tol: float
    method: str
    reason: str = ""


@functools.partial(jax.jit, static_argnames=("iters",))
def _bisect(ev_fn, lo, hi, rho, tol, *, iters):
    def body(_, bracket):
        lo, hi = bracket
        mid = 0.5 * (lo + hi)
        bad = ev_fn(mid[None], rho)[0][0] > 1 + tol
        return jnp.where(bad, lo, mid), jnp.where(bad, mid, hi)
    return lax.fori_loop(0, iters, body, (lo, hi))


def _bisect_evaluator(ev):
    if ev.method == "dense":
        return Partial(_radius_dense, ev.pieces)
    return Partial(_MatrixFreeRadius(ev.num_iters), ev.curv.batch_as_data(), key=ev.key)


@dataclasses.dataclass(frozen=True)
class _MatrixFreeRadius:
    num_iters: int

    def __call__(self, curv, etas, rho, key):
        return _radius_matrix_free(curv, etas, rho, key, self.num_iters)


def critical_learning_rate(curv: BatchCurvature, rho, *, num_grid: int = 48, rtol: float = 1e-12,
                           tol: float = STABILITY_TOL, method: str = "auto", num_iters: int = 60, key=None,
                           memory_budget=None, evaluator: RadiusEvaluator | None = None) -> CriticalLR:
    """η_c(ρ, b): scan r(T) on η ∈ (0, 1.02·η_max] (``num_grid`` points), then bisect the first crossing of
    r(T) = 1 + tol to relative width ``rtol`` (THEORY.md §5; r is not monotone in η in general).

    η_max = 2/λ_max(E[A_ξ]), E[A_ξ] = H + ρE[H_ξ²], bounds η_c from above (the mean iterate E e_t =
    (I − ηE[A_ξ])^t e_0 must stay bounded), so the scan finds a crossing when E[A_ξ] ⪰ 0. Without a threshold:
    - E[A_ξ] has no positive eigenvalue but a negative one (e.g. H_i = −I at ρ < 1): `ValueError` "unstable for
      every η > 0";
    - E[A_ξ] is indefinite: every η > 0 is unstable too (for vᵀE[A_ξ]v < 0, r(T) ≥ E[(vᵀB_ξv)²] > 1); the result
      has eta = 0 and ``reason`` says so;
    - E[A_ξ] = 0: eta = inf if r(T) ≤ 1 + tol at η = 1 (T = I), else eta = 0, with the reason.
    ``evaluator`` reuses a `radius_evaluator` (dense pieces built once) across calls with other ρ.
    """
    check_curvature(curv)
    check_step(None, rho)
    num_grid = check_int("num_grid", num_grid, minimum=2)
    check_positive("rtol", rtol)
    check_nonnegative("tol", tol)
    ev = evaluator or radius_evaluator(curv, method=method, num_iters=num_iters, key=key,
                                       memory_budget=memory_budget)
    spec = mean_step_spectrum(curv, rho)
    scale = max(abs(spec.top), abs(spec.bottom), np.finfo(float).tiny)
    base = dict(rho=float(rho), batch_size=curv.batch_size, replace=curv.replace, tol=tol, method=ev.method)
    empty = np.array([])
    if spec.bottom < -1e-12 * scale:
        what = f"λ_min(H + ρE[H_ξ²]) = {spec.bottom:.6g} < 0 at ρ = {rho}"
        if spec.top <= 1e-12 * scale:
            raise ValueError(f"unstable for every η > 0: {what} and λ_max = {spec.top:.6g} ≤ 0 (negative "
                             f"curvature: x* is not a minimum of the linearized dynamics); no critical learning rate")
        return CriticalLR(0.0, (0.0, 0.0), 2.0 / spec.top, empty, empty, **base,
                          reason=f"unstable for every η > 0: {what} (indefinite; r(T) ≥ E[(vᵀB_ξv)²] > 1)")
    if spec.top <= 1e-12 * scale or spec.top == 0.0:
        r1 = float(ev([1.0], rho)[0][0])
        if r1 <= 1 + tol:
            return CriticalLR(np.inf, (np.inf, np.inf), np.inf, empty, empty, **base,
                              reason="E[A_ξ] = 0 and T = I: stable for every η")
        return CriticalLR(0.0, (0.0, 0.0), np.inf, empty, empty, **base,
                          reason=f"E[A_ξ] = 0 but r(T) = {r1:.6g} > 1 at η = 1: unstable for every η > 0")
    eta_max = 2.0 / spec.top
    grid = np.linspace(1.02 * eta_max / num_grid, 1.02 * eta_max, num_grid)
    radii = np.asarray(ev(grid, rho)[0])
    bad = np.nonzero(radii > 1 + tol)[0]
    if bad.size == 0:
        raise ValueError(f"no crossing of r(T) = 1 found up to 1.02·η_max = {grid[-1]:.6g} (λ_max(E[A_ξ]) = "
                         f"{spec.top:.6g}); increase num_iters for the matrix-free radius")
    j = int(bad[0])
    lo, hi = (0.0 if j == 0 else grid[j - 1]), grid[j]
    steps = int(np.ceil(np.log2(1.0 / rtol))) + 1  # (hi − lo)/hi ≤ 1: a fixed count shares one compile
    dt = curv.dtype
    lo, hi = _bisect(_bisect_evaluator(ev), jnp.asarray(lo, dt), jnp.asarray(hi, dt), jnp.asarray(rho, dt),
                     tol, iters=max(steps, 1))
    lo, hi = float(lo), float(hi)
    return CriticalLR(0.5 * (lo + hi), (lo, hi), eta_max, grid, radii, **base)
