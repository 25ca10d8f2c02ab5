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

    Example (returned by `spectral_radius`; the commuting example at b = 1, η = 0.25, ρ = 0.5: the top mode of T
    is e_1e_1ᵀ with eigenvalue E[(1 − ηA_ξ,1)²] = 0.578125):
      >>> import numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import BatchCurvature
      >>> Hs = np.array([np.diag([3.0, 2.0]), np.diag([1.0, 0.0])])   # commuting H_1, H_2: H = diag(2, 1)
      >>> with float64():
      ...     r = spectral_radius(BatchCurvature.from_hessians(Hs, batch_size=1), 0.25, 0.5)
      >>> round(float(r), 6), r.method, r.num_iters, r.batch_size, np.abs(r.eigenmatrix).round(6).tolist()
      (0.578125, 'dense', 0, 1, [[1.0, 0.0], [0.0, 0.0]])
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
    """Set up r(T) evaluation (THEORY.md §5): "dense" builds the η-, ρ-independent pieces once.

    The evaluator maps (etas, rho) to arrays (r(T), residual, eigen-matrix) with one entry per η. Example (full
    batch b = n: T(Σ) = BΣB with B = I − η(H + ρH²), so r(T) = max_j (1 − η(a_j + ρa_j²))²; at ρ = 0.5,
    a + ρa² = 4 and 1.5, r = (1 − 4η)² for η ≥ 4/11, = 1 at η_c = 2/(a + ρa²) = 0.5):
      >>> import numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import BatchCurvature
      >>> Hs = np.array([np.diag([3.0, 2.0]), np.diag([1.0, 0.0])])   # commuting H_1, H_2: H = diag(2, 1)
      >>> with float64():
      ...     ev = radius_evaluator(BatchCurvature.from_hessians(Hs, batch_size=2))
      ...     radii, residuals, eigenmatrices = ev([0.4, 0.5, 0.55], 0.5)
      >>> ev.method, np.asarray(radii).round(6).tolist()
      ('dense', [0.36, 1.0, 1.44])
    """
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

    Example (commuting H_i, b = 1: r(T) is the largest one-dimensional rate E[(1 − ηA_ξ,j)²], 0.578125 at
    η = 0.25, ρ = 0.5 (`one_dimensional_rate`); dense and matrix-free agree):
      >>> import numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import BatchCurvature
      >>> Hs = np.array([np.diag([3.0, 2.0]), np.diag([1.0, 0.0])])   # commuting H_1, H_2: H = diag(2, 1)
      >>> with float64():
      ...     curv = BatchCurvature.from_hessians(Hs, batch_size=1)
      ...     dense = spectral_radius(curv, 0.25, 0.5)
      ...     lanczos = spectral_radius(curv, 0.25, 0.5, method="matrix_free")
      >>> round(dense.value, 6), round(lanczos.value, 6), lanczos.num_iters, lanczos.residual < 1e-8
      (0.578125, 0.578125, 4, True)
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
    round-off of an eigenvalue exactly 1 (a direction v with H_i v = 0 for all i gives T(vvᵀ) = vvᵀ).

    Example (full batch b = n: stable iff η ≤ 2/(a + ρa²), THEORY.md §5; a = 2, so η_c = 1 for SGD and 0.5 for
    USAM at ρ = 0.5):
      >>> import numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import BatchCurvature
      >>> Hs = np.array([np.diag([3.0, 2.0]), np.diag([1.0, 0.0])])   # commuting H_1, H_2: H = diag(2, 1)
      >>> with float64():
      ...     full = BatchCurvature.from_hessians(Hs, batch_size=2)
      ...     checks = [is_linearly_stable(full, eta, rho) for eta, rho in [(0.95, 0.0), (1.05, 0.0), (0.45, 0.5),
      ...                                                                 (0.55, 0.5)]]
      >>> checks
      [True, False, True, False]
    """
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

    Example (returned by `critical_learning_rate`; full batch: η_c = 2/(a + ρa²) = 0.5 for a = 2, ρ = 0.5, and
    η_max = 2/λ_max(H + ρH²) is the same number because B = I − η(H + ρH²) is deterministic; the bisection
    bracket has relative width ≤ rtol = 1e-12, and the scan's last grid point, 1.02·η_max, is unstable):
      >>> import numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import BatchCurvature
      >>> Hs = np.array([np.diag([3.0, 2.0]), np.diag([1.0, 0.0])])   # commuting H_1, H_2: H = diag(2, 1)
      >>> with float64():
      ...     c = critical_learning_rate(BatchCurvature.from_hessians(Hs, batch_size=2), 0.5)
      >>> round(c.eta, 6), round(c.eta_max, 6), c.bracket[1] - c.bracket[0] <= 1e-12 * c.bracket[1], c.reason
      (0.5, 0.5, True, '')
      >>> c.grid.shape, bool(c.radii[-1] > 1)
      ((48,), True)
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

    Example (THEORY.md §5 closed forms: full batch b = n gives 2/(a + ρa²) — 2/a = 1 for SGD, 2/(2 + 0.5·4) = 0.5
    for USAM at ρ = 0.5; with commuting H_i and b = 1 the threshold of direction j is 2E[A_ξ,j]/E[A_ξ,j²], the
    root of the one-dimensional rate, and η_c is the smallest: at ρ = 0.5, A_ξ,1 ∈ {7.5, 1.5} gives
    2·4.5/29.25 = 4/13 and A_ξ,2 ∈ {4, 0} gives 2·2/8 = 0.5):
      >>> import numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import BatchCurvature
      >>> Hs = np.array([np.diag([3.0, 2.0]), np.diag([1.0, 0.0])])   # commuting H_1, H_2: H = diag(2, 1)
      >>> with float64():
      ...     full, single = (BatchCurvature.from_hessians(Hs, batch_size=b) for b in (2, 1))
      ...     ev = radius_evaluator(single)                 # dense pieces built once for every ρ
      ...     etas = [critical_learning_rate(full, 0.0).eta, critical_learning_rate(full, 0.5).eta,
      ...             critical_learning_rate(single, 0.5, evaluator=ev).eta]
      >>> np.round(etas, 6).tolist(), round(4 / 13, 6)
      ([1.0, 0.5, 0.307692], 0.307692)
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
