"""The linearized stochastic USAM map and its second-moment operator T (THEORY.md §5, Theorem A).

Near an interpolating minimum x*, with e_t = x_t − x*, H_ξ the batch Hessian and A_ξ = H_ξ + ρ H_ξ²,

  e_{t+1} = B_ξ e_t,   B_ξ = I − η A_ξ   (ρ = 0 is SGD),

so Σ_t = E[e_t e_tᵀ] obeys Σ_{t+1} = T(Σ_t) with T(Σ) = E_ξ[B_ξ Σ B_ξ] [exact]. T is self-adjoint for the
Frobenius inner product and maps PSD matrices to PSD matrices; x* is linearly stable iff r(T) ≤ 1.

Curvature source: every function takes either ``hessians``, a stacked (n, p, p) array of symmetric H_i, or a
problem at a point, given as the tuple ``(problem, params)`` (or ``problem`` with ``params=...``). For a problem the
batch products H_ξ v are per-example HVPs (`sam_theory.curvature.per_example_hvp`, jvp of the gradient); no dense
per-example Hessian is formed. The expectation E_ξ is exact: it runs over all batches with their probabilities
(`sam_theory.curvature.enumerate_batches`: n singletons for b = 1, C(n, b) subsets without replacement, multisets
with multinomial weights with replacement).

Dense vs matrix-free: for p ≤ ``DENSE_MAX_P`` the operator is the p²×p² matrix E[B_ξ ⊗ B_ξ] (row-major vec, so
vec(BΣB) = (B ⊗ B) vec Σ for symmetric B) and r(T) is the largest |eigenvalue| of its restriction to symmetric
matrices (an orthonormal basis of dimension p(p+1)/2, `eigvalsh`). Otherwise T acts on vec(Σ) as
vec(Σ) ↦ vec(E[B_ξ sym(Σ) B_ξ]) (sym(Σ) = (Σ + Σᵀ)/2, the orthogonal projector onto symmetric matrices, so the map
is symmetric on R^{p²} with the same nonzero spectrum as T on symmetric matrices), and r(T) comes from Lanczos with
full reorthogonalization (`sam_theory.curvature.lanczos`) with its residual norm.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.tree_util import Partial

from ..curvature import (PerExampleHVP, eigh, eigvalsh, enumerate_batches, lanczos, linear_operator,
                         moment_operator, per_example_hvp)
from ..problems.base import Problem
from ..validation import check_choice, check_finite_array, check_int, check_nonnegative, check_positive

DENSE_MAX_P = 24  # p(p+1)/2 = 300: a dense symmetric eigenproblem of that size costs milliseconds
STABILITY_TOL = 1e-9  # r(T) ≤ 1 + STABILITY_TOL counts as stable (round-off of an eigenvalue equal to 1)
METHODS = ("auto", "dense", "matrix_free")
MOMENT_METHODS = ("expectation", "formula")


# --- the curvature source: per-example products, from dense Hessians or from a problem -----------------------

def _dense_apply_all(Hi, us):
    return jnp.einsum("ipq,iq->ip", Hi, us)


def _dense_apply_at(Hi, idx, vs):
    return jnp.einsum("jpq,jq->jp", Hi[idx], vs)


@functools.partial(jax.jit, static_argnames=("n", "p"))
def _stacked_hessians(apply, *, n, p):
    """(H_i)_i from the n·p per-example HVPs H_i e_j: entry [i, :, j] = H_i e_j."""
    eye = jnp.eye(p, dtype=jnp.result_type(float))
    cols = jax.vmap(apply)(jnp.broadcast_to(eye[:, None], (p, n, p)))  # [j, i, :] = H_i e_j
    return jnp.transpose(cols, (1, 2, 0))


def curvature_source(hessians, params=None) -> PerExampleHVP:
    """The per-example products (H_i u_i)_i as a `PerExampleHVP`, from (n, p, p) ``hessians`` or a problem.

    ``hessians`` may be an array (n, p, p) of symmetric matrices, a tuple ``(problem, params)``, or a `Problem`
    together with ``params``. Raises `ValueError` naming ``hessians`` for a wrong shape, non-finite or
    non-symmetric entries.
    """
    if isinstance(hessians, PerExampleHVP):
        return hessians
    if isinstance(hessians, (tuple, list)) and len(hessians) == 2 and isinstance(hessians[0], Problem):
        hessians, params = hessians
    if isinstance(hessians, Problem):
        if params is None:
            raise ValueError("params must be given with a Problem (pass (problem, params) or params=...)")
        pe = per_example_hvp(hessians, params)
        if pe.size > DENSE_MAX_P:
            return pe
        # small p: the n·p products H_i e_j (per-example HVPs) give the stacked H_i once, which all later
        # batch products reuse (cheaper to compile and run than re-linearizing inside every operator)
        hessians = np.asarray(_stacked_hessians(pe.apply, n=pe.n, p=pe.size))
        hessians = 0.5 * (hessians + np.swapaxes(hessians, 1, 2))
    Hi = np.asarray(hessians)
    if Hi.ndim != 3 or Hi.shape[1] != Hi.shape[2] or Hi.shape[0] < 1 or Hi.shape[1] < 1:
        raise ValueError(f"hessians must have shape (n, p, p) (or be (problem, params)), got shape {Hi.shape}")
    if not np.issubdtype(Hi.dtype, np.number):
        raise ValueError(f"hessians must be numeric, got dtype {Hi.dtype}")
    check_finite_array("hessians", Hi)
    scale = max(float(np.abs(Hi).max()), np.finfo(float).tiny)
    if np.abs(Hi - np.swapaxes(Hi, 1, 2)).max() > 1e-10 * scale:
        raise ValueError("hessians must be symmetric matrices H_i = H_iᵀ")
    Hj = jnp.asarray(Hi, dtype=jnp.result_type(float))
    return PerExampleHVP(Partial(_dense_apply_all, Hj), Partial(_dense_apply_at, Hj), Hi.shape[0], Hi.shape[1],
                         Hj.dtype, None)


def validate(pe: PerExampleHVP, eta, rho, batch_size, replace):
    """Check η > 0, ρ ≥ 0, b an integer ≤ n without replacement (ValueError naming the argument)."""
    if eta is not None:
        check_positive("eta", eta)
    check_nonnegative("rho", rho)
    batch_size = check_int("batch_size", batch_size)
    if not replace and batch_size > pe.n:
        raise ValueError(f"batch_size must be <= n = {pe.n} without replacement, got {batch_size}")
    return batch_size


def batches_of(pe: PerExampleHVP, batch_size: int, replace: bool, max_batches: int = 5000):
    """All batches ξ (indices (B, b)) and their probabilities (B,), as JAX arrays."""
    idx, w = enumerate_batches(pe.n, batch_size, replace, check_int("max_batches", max_batches))
    return jnp.asarray(idx), jnp.asarray(w, dtype=pe.dtype)


def batch_hvp(pe: PerExampleHVP, rows, V):
    """H_ξ V = (1/b) Σ_{i∈ξ} H_i V for the batch ``rows`` (b,) and the columns of V (p, m)."""
    b, m = rows.shape[0], V.shape[1]
    out = pe.apply_at(jnp.repeat(rows, m), jnp.tile(V.T, (b, 1)))  # row j·m + c is H_{rows_j} V[:, c]
    return out.reshape(b, m, -1).mean(axis=0).T


def step_map(pe: PerExampleHVP, rows, V, eta, rho):
    """B_ξ V = V − η (H_ξ V + ρ H_ξ² V): the linearized USAM step on the columns of V (THEORY.md §5)."""
    HV = batch_hvp(pe, rows, V)
    return V - eta * (HV + rho * batch_hvp(pe, rows, HV))


def _batch_matrices(pe, idx, eta, rho):
    """B_ξ = I − η(H_ξ + ρH_ξ²) for every batch, dense (B, p, p)."""
    eye = jnp.eye(pe.size, dtype=pe.dtype)
    return lax.map(lambda rows: step_map(pe, rows, eye, eta, rho), idx)


# --- the moment matrix M = E[B_ξ²] ------------------------------------------------------------------------------

@jax.jit
def _moment_expectation(pe, idx, w, eta, rho):
    Bs = _batch_matrices(pe, idx, eta, rho)
    return jnp.einsum("b,bij,bjk->ik", w, Bs, Bs)


def moment_matrix(hessians, eta, rho, batch_size: int = 1, replace: bool = False, method: str = "expectation",
                  *, params=None, max_batches: int = 5000) -> np.ndarray:
    """M = E_ξ[(I − ηA_ξ)²], A_ξ = H_ξ + ρH_ξ², as a dense (p, p) array (THEORY.md §5).

    method="expectation": the weighted sum over all batches of B_ξ² (B_ξ built from batch products).
    method="formula": the moment identity [exact]
      M = (I − ηH − ηρH²)² + η(η − 2ρ) S_2 + 2η²ρ S_3 + η²ρ² S_4,  S_k = E_ξ[H_ξ^k] − H^k,
    with S_k from `sam_theory.curvature.moment_operator` (closed form for b = 1 and for S_2 at any b, batch
    enumeration for S_3, S_4 at b > 1). E‖e_{t+1}‖² = E[e_tᵀ M e_t]; λ_max(M) ≤ 1 is sufficient for stability.
    """
    pe = curvature_source(hessians, params)
    batch_size = validate(pe, eta, rho, batch_size, replace)
    check_choice("method", method, MOMENT_METHODS)
    if method == "expectation":
        idx, w = batches_of(pe, batch_size, replace, max_batches)
        return np.asarray(_moment_expectation(pe, idx, w, jnp.asarray(eta, pe.dtype), jnp.asarray(rho, pe.dtype)))
    H, S = stochastic_moments(pe, batch_size, replace, max_batches=max_batches)
    eye = np.eye(pe.size)
    D = eye - eta * H - eta * rho * H @ H
    return D @ D + eta * (eta - 2 * rho) * S[2] + 2 * eta**2 * rho * S[3] + eta**2 * rho**2 * S[4]


def stochastic_moments(hessians, batch_size: int = 1, replace: bool = False, *, params=None,
                       max_batches: int = 5000):
    """H and {k: S_k} for k = 2, 3, 4 as dense (p, p) arrays, from `moment_operator` (THEORY.md §4)."""
    pe = curvature_source(hessians, params)
    batch_size = validate(pe, None, 0.0, batch_size, replace)
    needs_batches = batch_size > 1
    batches = enumerate_batches(pe.n, batch_size, replace, max_batches) if needs_batches else None
    H = np.asarray(pe.mean_operator().as_dense())
    S = {}
    for k in (2, 3, 4):
        op = moment_operator(pe, k, batch_size=batch_size, replace=replace, batches=batches if k >= 3 else None)
        S[k] = np.asarray(op.as_dense())
        S[k] = 0.5 * (S[k] + S[k].T)
    return 0.5 * (H + H.T), S


# --- the second-moment operator T ---------------------------------------------------------------------------------

def _sym_basis(p: int) -> np.ndarray:
    """An orthonormal basis (columns, shape (p², p(p+1)/2)) of vec(symmetric p×p matrices), row-major vec."""
    cols = []
    for i in range(p):
        for j in range(i, p):
            E = np.zeros((p, p))
            if i == j:
                E[i, i] = 1.0
            else:
                E[i, j] = E[j, i] = 1.0 / np.sqrt(2.0)
            cols.append(E.ravel())
    return np.stack(cols, axis=1)


def _dense_T(pe, idx, w, eta, rho):
    Bs = _batch_matrices(pe, idx, eta, rho)
    p = pe.size
    return jnp.einsum("b,bij,bkl->ikjl", w, Bs, Bs).reshape(p * p, p * p)


_dense_T_jit = jax.jit(_dense_T)


def _apply_T(pe, idx, w, eta, rho, x):
    """vec(E_ξ[B_ξ sym(X) B_ξ]) for vec(X) = x (p²,): two step maps per batch, a scan over batches."""
    p = pe.size
    X = x.reshape(p, p)
    X = 0.5 * (X + X.T)

    def body(acc, inputs):
        rows, wi = inputs
        Y = step_map(pe, rows, X, eta, rho)  # B X
        return acc + wi * step_map(pe, rows, Y.T, eta, rho), None  # B (B X)ᵀ = B X B
    return lax.scan(body, jnp.zeros_like(X), (idx, w))[0].ravel()


def second_moment_operator(hessians, eta, rho, batch_size: int = 1, replace: bool = False, *, params=None,
                           method: str = "auto", max_batches: int = 5000):
    """T(Σ) = E_ξ[(I − ηA_ξ) Σ (I − ηA_ξ)] (THEORY.md §5).

    method="dense" (the default for p ≤ DENSE_MAX_P under "auto"): the (p², p²) NumPy array E[B_ξ ⊗ B_ξ] acting
    on row-major vec(Σ). method="matrix_free": a `sam_theory.curvature.LinearOperator` of size p² mapping
    vec(Σ) ↦ vec(T(sym Σ)) (symmetric on R^{p²}; its nonzero spectrum is that of T on symmetric matrices).
    """
    pe = curvature_source(hessians, params)
    batch_size = validate(pe, eta, rho, batch_size, replace)
    method = _resolve(method, pe.size)
    idx, w = batches_of(pe, batch_size, replace, max_batches)
    eta_, rho_ = jnp.asarray(eta, pe.dtype), jnp.asarray(rho, pe.dtype)
    if method == "dense":
        return np.asarray(_dense_T_jit(pe, idx, w, eta_, rho_))
    return linear_operator(Partial(_apply_T, pe, idx, w, eta_, rho_), pe.size**2, pe.dtype)


def _resolve(method, p):
    check_choice("method", method, METHODS)
    if method == "auto":
        return "dense" if p <= DENSE_MAX_P else "matrix_free"
    return method


# --- spectral radius -------------------------------------------------------------------------------------------

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


@jax.jit
def _radius_dense(pe, idx, w, etas, rho, U):
    """r(T) on symmetric matrices for every η in ``etas`` (vmapped): (values, residuals, eigen-vectors)."""
    def one(eta):
        K = U.T @ _dense_T(pe, idx, w, eta, rho) @ U
        K = 0.5 * (K + K.T)
        theta, vecs = eigh(K)
        j = jnp.argmax(jnp.abs(theta))
        v = vecs[:, j]
        return jnp.abs(theta[j]), jnp.linalg.norm(K @ v - theta[j] * v), U @ v
    return jax.vmap(one)(etas)


@functools.partial(jax.jit, static_argnames=("num_iters",))
def _radius_matrix_free(pe, idx, w, etas, rho, key, num_iters):
    def one(eta):
        op = linear_operator(Partial(_apply_T, pe, idx, w, eta, rho), pe.size**2, pe.dtype)
        res = lanczos(op, num_iters, key)
        theta = res.ritz_values
        j = jnp.where(jnp.abs(theta[-1]) >= jnp.abs(theta[0]), theta.shape[0] - 1, 0)
        return jnp.abs(theta[j]), res.residual_norms[j], res.ritz_vectors[j]
    return lax.map(one, etas)


def _radii(pe, idx, w, etas, rho, method, num_iters, key):
    etas = jnp.asarray(etas, pe.dtype)
    rho = jnp.asarray(rho, pe.dtype)
    if method == "dense":
        return _radius_dense(pe, idx, w, etas, rho, jnp.asarray(_sym_basis(pe.size), pe.dtype))
    iters = min(pe.size**2, num_iters)
    return _radius_matrix_free(pe, idx, w, etas, rho, key, iters)


def spectral_radius(hessians, eta, rho, batch_size: int = 1, replace: bool = False, *, params=None,
                    method: str = "auto", num_iters: int = 60, key=None, max_batches: int = 5000) -> SpectralRadius:
    """r(T) of the second-moment operator T (THEORY.md §5), with a residual.

    Dense (p ≤ DENSE_MAX_P under "auto"): `eigh` of T restricted to symmetric matrices in an orthonormal basis.
    Matrix-free: ``num_iters`` Lanczos steps (full reorthogonalization; capped at p²) on vec(Σ) ↦ vec(T(sym Σ)),
    started from a Gaussian vector drawn with ``key``; r = the Ritz value of largest modulus and its residual.
    """
    pe = curvature_source(hessians, params)
    batch_size = validate(pe, eta, rho, batch_size, replace)
    method = _resolve(method, pe.size)
    idx, w = batches_of(pe, batch_size, replace, max_batches)
    key = jax.random.key(0) if key is None else key
    vals, res, vecs = _radii(pe, idx, w, [eta], rho, method, check_int("num_iters", num_iters), key)
    V = np.asarray(vecs[0]).reshape(pe.size, pe.size)
    V = 0.5 * (V + V.T)
    return SpectralRadius(float(vals[0]), float(res[0]), V / np.linalg.norm(V), method,
                          0 if method == "dense" else min(pe.size**2, num_iters), float(eta), float(rho),
                          batch_size, bool(replace))


def is_linearly_stable(hessians, eta, rho, batch_size: int = 1, replace: bool = False, *, params=None,
                       tol: float = STABILITY_TOL, **kwargs) -> bool:
    """r(T) ≤ 1 + tol (THEORY.md §5). T is diagonalizable, so r(T) = 1 is still stable; ``tol`` (1e-9) absorbs the
    round-off of an eigenvalue exactly 1 (a direction v with H_i v = 0 for all i gives T(vvᵀ) = vvᵀ)."""
    check_nonnegative("tol", tol)
    return spectral_radius(hessians, eta, rho, batch_size, replace, params=params, **kwargs).value <= 1 + tol


# --- the critical learning rate ------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class CriticalLR:
    """η_c(ρ, b): the first η at which r(T) crosses 1 + tol (THEORY.md §5).

    Attributes:
      eta: the estimate (midpoint of the final bracket); bracket: (stable η, unstable η) with
        hi − lo ≤ rtol·hi.
      eta_max: 2/λ_max(H + ρE[H_ξ²]), an upper bound on η_c (the mean iterate diverges beyond it).
      grid, radii: the scan (r(T) at each grid η), for figures.
      rho, batch_size, replace, tol: the configuration.
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


@jax.jit
def _mean_A_top(pe, idx, w, rho):
    """λ_max(E[A_ξ]) = λ_max(H + ρE[H_ξ²]), dense from batch products (p ≤ DENSE_MAX_P)."""
    eye = jnp.eye(pe.size, dtype=pe.dtype)
    def one(rows):
        HV = batch_hvp(pe, rows, eye)
        return HV + rho * batch_hvp(pe, rows, HV)
    EA = jnp.einsum("b,bij->ij", w, lax.map(one, idx))
    return eigvalsh(0.5 * (EA + EA.T))[-1]


def _mean_A_apply(pe, idx, w, rho, v):
    def body(acc, inputs):
        rows, wi = inputs
        hv = batch_hvp(pe, rows, v[:, None])
        return acc + wi * (hv + rho * batch_hvp(pe, rows, hv))[:, 0], None
    return lax.scan(body, jnp.zeros_like(v), (idx, w))[0]


def mean_step_sharpness(hessians, rho, batch_size: int = 1, replace: bool = False, *, params=None,
                        max_batches: int = 5000, key=None) -> float:
    """λ_max(E[A_ξ]) = λ_max(H + ρE[H_ξ²]); stability needs it ≤ 2/η (THEORY.md §5, the mean iterate)."""
    pe = curvature_source(hessians, params)
    batch_size = validate(pe, None, rho, batch_size, replace)
    idx, w = batches_of(pe, batch_size, replace, max_batches)
    rho_ = jnp.asarray(rho, pe.dtype)
    if pe.size <= DENSE_MAX_P:
        return float(_mean_A_top(pe, idx, w, rho_))
    op = linear_operator(Partial(_mean_A_apply, pe, idx, w, rho_), pe.size, pe.dtype)
    res = lanczos(op, min(pe.size, 80), jax.random.key(0) if key is None else key)
    return float(res.ritz_values[-1] + res.residual_norms[-1])  # an upper bound on λ_max


@functools.partial(jax.jit, static_argnames=("method", "num_iters", "iters"))
def _bisect(pe, idx, w, rho, lo, hi, U, key, tol, *, method, num_iters, iters):
    def unstable(eta):
        if method == "dense":
            r = _radius_dense(pe, idx, w, eta[None], rho, U)[0][0]
        else:
            r = _radius_matrix_free(pe, idx, w, eta[None], rho, key, num_iters)[0][0]
        return r > 1 + tol

    def body(_, bracket):
        lo, hi = bracket
        mid = 0.5 * (lo + hi)
        bad = unstable(mid)
        return jnp.where(bad, lo, mid), jnp.where(bad, mid, hi)
    return lax.fori_loop(0, iters, body, (lo, hi))


def critical_learning_rate(hessians, rho, batch_size: int = 1, replace: bool = False, *, params=None,
                           num_grid: int = 48, rtol: float = 1e-12, tol: float = STABILITY_TOL,
                           method: str = "auto", num_iters: int = 60, key=None,
                           max_batches: int = 5000) -> CriticalLR:
    """η_c(ρ, b): scan r(T) on η ∈ (0, 1.02·η_max] (``num_grid`` points), then bisect the first crossing of
    r(T) = 1 + tol to relative width ``rtol`` (THEORY.md §5; r is not monotone in η in general).

    η_max = 2/λ_max(H + ρE[H_ξ²]) bounds η_c from above (the mean iterate E e_t = (I − ηE A_ξ)^t e_0 must stay
    bounded), so the scan always finds a crossing; if E A_ξ = 0, η_c = ∞.
    """
    pe = curvature_source(hessians, params)
    batch_size = validate(pe, None, rho, batch_size, replace)
    num_grid = check_int("num_grid", num_grid, minimum=2)
    check_positive("rtol", rtol)
    check_nonnegative("tol", tol)
    method = _resolve(method, pe.size)
    idx, w = batches_of(pe, batch_size, replace, max_batches)
    top = mean_step_sharpness(pe, rho, batch_size, replace, max_batches=max_batches)
    if top <= 0:
        return CriticalLR(np.inf, (np.inf, np.inf), np.inf, np.array([]), np.array([]), float(rho), batch_size,
                          bool(replace), tol)
    eta_max = 2.0 / top
    grid = np.linspace(1.02 * eta_max / num_grid, 1.02 * eta_max, num_grid)
    key = jax.random.key(0) if key is None else key
    U = jnp.asarray(_sym_basis(pe.size), pe.dtype) if method == "dense" else jnp.zeros((1, 1), pe.dtype)
    iters = min(pe.size**2, check_int("num_iters", num_iters))
    radii = np.asarray(_radii(pe, idx, w, grid, rho, method, iters, key)[0])
    bad = np.nonzero(radii > 1 + tol)[0]
    if bad.size == 0:
        raise ValueError(f"no crossing of r(T) = 1 found up to 1.02·η_max = {grid[-1]:.6g}; is the input PSD?")
    j = int(bad[0])
    lo, hi = (0.0 if j == 0 else grid[j - 1]), grid[j]
    steps = int(np.ceil(np.log2(1.0 / rtol))) + 1  # (hi − lo)/hi ≤ 1: a fixed count shares one compile
    lo, hi = _bisect(pe, idx, w, jnp.asarray(rho, pe.dtype), jnp.asarray(lo, pe.dtype), jnp.asarray(hi, pe.dtype),
                     U, key, tol, method=method, num_iters=iters, iters=max(steps, 1))
    lo, hi = float(lo), float(hi)
    return CriticalLR(0.5 * (lo + hi), (lo, hi), eta_max, grid, radii, float(rho), batch_size, bool(replace), tol)
