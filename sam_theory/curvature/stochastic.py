"""Stochastic trace estimation, stochastic Lanczos quadrature and spectral densities (THEORY.md §4).

- Hutchinson: tr(A) ≈ (1/N) Σ_j z_jᵀ A z_j with Rademacher z_j (unbiased; Var zᵀAz = 2(‖A‖_F² − Σ_i A_ii²)).
  Standard error: the sample standard deviation of the N quadratic forms over √N.
- Hutch++ (Meyer, Musco, Musco & Woodruff 2021): with a budget of N matvecs, s = ⌊N/3⌋ sketch vectors S,
  Q = orth(A S), then tr(A) = tr(QᵀAQ) + tr((I − QQᵀ)A(I − QQᵀ)), the first term exact (s matvecs), the second by
  Hutchinson with g = N − 2s probes projected onto range(Q)^⊥. Standard error: from the sample variance of the g
  residual-part quadratic forms, SE = std/√g. It is the exact conditional standard error given Q, and because the
  split is an identity for every Q (E[estimate | Q] = tr A), E[SE²] = Var(estimate): it is calibrated unconditionally.
- SLQ (Ubaru, Chen & Saad 2017): zᵀ f(A) z ≈ ‖z‖² Σ_i τ_i² f(θ_i) with (θ_i, τ_i) the eigenvalues and first
  eigenvector components of the Lanczos T_m started at z/‖z‖ (Gauss quadrature, exact for polynomials of degree
  ≤ 2m − 1). tr f(A) is the mean over Rademacher probes; its SE is std/√N over probes.
- Spectral density: φ_σ(t) = (1/p) Σ_λ N(t; λ, σ²), estimated by the probe mean of Σ_i τ_i² N(t; θ_i, σ²).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp
from jax import lax

from ..compiler import jit
from ..stats import mean_se
from ..validation import check_choice, check_int, check_positive
from .eigh import eigh
from .lanczos import REORTHO, lanczos_tridiag, tridiagonal
from .operators import LinearOperator

TRACE_METHODS = ("hutchinson", "hutch++", "exact")


@functools.partial(jax.tree_util.register_dataclass, data_fields=["estimate", "standard_error", "samples"],
                   meta_fields=["method", "num_matvecs"])
@dataclasses.dataclass(frozen=True)
class TraceEstimate:
    """``estimate`` ± ``standard_error`` (0 for "exact"); ``samples`` are the per-probe quadratic forms that
    the SE is computed from (Hutch++: the residual part only); ``num_matvecs`` is the cost.

    Example:
      >>> import jax.numpy as jnp
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import from_dense, trace
      >>> with float64():
      ...     op = from_dense(jnp.array([[2.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 4.0]]))
      ...     t = trace(op, "hutchinson", num_samples=30)
      >>> t.method, t.num_matvecs, t.samples.shape
      ('hutchinson', 30, (30,))
      >>> sorted({round(x, 6) for x in t.samples.tolist()})    # zᵀAz = tr A + 2 Σ_{i<j} A_ij z_i z_j
      [5.0, 9.0, 13.0]
    """

    estimate: jax.Array
    standard_error: jax.Array
    samples: jax.Array
    method: str
    num_matvecs: int


@functools.partial(jax.tree_util.register_dataclass, data_fields=["estimate", "standard_error", "samples"],
                   meta_fields=["num_probes", "order"])
@dataclasses.dataclass(frozen=True)
class SLQResult:
    """tr f(A): ``estimate`` ± ``standard_error`` over ``num_probes`` probes; ``samples[j]`` is probe j's Gauss
    quadrature of z_jᵀ f(A) z_j (a trailing axis when f returns several functions).

    Example:
      >>> import jax.numpy as jnp
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import from_dense, slq
      >>> with float64():
      ...     r = slq(from_dense(jnp.array([[2.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 4.0]])), jnp.square)
      >>> r.num_probes, r.order, r.samples.shape                # order is capped at p = 3
      (30, 3, (30,))
    """

    estimate: jax.Array
    standard_error: jax.Array
    samples: jax.Array
    num_probes: int
    order: int


@functools.partial(jax.tree_util.register_dataclass, data_fields=["grid", "density", "standard_error"],
                   meta_fields=["sigma", "num_probes", "order"])
@dataclasses.dataclass(frozen=True)
class SpectralDensity:
    """The Gaussian-smoothed eigenvalue density on ``grid`` (integrates to ≈ 1) and its pointwise SE.

    Example:
      >>> import jax.numpy as jnp
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import from_dense, spectral_density
      >>> with float64():
      ...     d = spectral_density(from_dense(jnp.diag(jnp.array([1.0, 2.0, 3.0]))), jnp.linspace(0, 4, 81), 0.1)
      ...     mass = float(jnp.sum(d.density) * 0.05)               # Riemann sum, grid step σ/2
      >>> round(mass, 4), d.sigma, d.grid.shape, d.num_probes
      (1.0, 0.1, (81,), 20)
    """

    grid: jax.Array
    density: jax.Array
    standard_error: jax.Array
    sigma: float
    num_probes: int
    order: int


def rademacher(key, num: int, size: int, dtype) -> jax.Array:
    """``num`` Rademacher (±1) vectors of length ``size`` as rows."""
    return jax.random.rademacher(key, (num, size), dtype=dtype)


def _quadratic_forms(op, vs):
    return jnp.sum(vs * op.matmat(vs), axis=1)


@jit(static_argnames=("num_samples",))
def _hutchinson(op, key, num_samples: int):
    samples = _quadratic_forms(op, rademacher(key, num_samples, op.size, op.dtype))
    est, se = mean_se(samples)
    return TraceEstimate(est, se, samples, "hutchinson", num_samples)


@jit(static_argnames=("num_samples",))
def _hutchpp(op, key, num_samples: int):
    sketch = num_samples // 3
    probes = num_samples - 2 * sketch
    k_s, k_g = jax.random.split(key)
    Q, _ = jnp.linalg.qr(op.matmat(rademacher(k_s, sketch, op.size, op.dtype)).T)  # (p, s)
    low_rank = jnp.sum(Q.T * op.matmat(Q.T))  # tr(QᵀAQ), exact
    G = rademacher(k_g, probes, op.size, op.dtype)
    G = G - (G @ Q) @ Q.T  # project onto range(Q)^⊥
    samples = _quadratic_forms(op, G)
    rest, se = mean_se(samples)
    return TraceEstimate(low_rank + rest, se, samples, "hutch++", num_samples)


@jit(static_argnames=("batch_size",))
def _exact_trace(op, batch_size: int):
    p = op.size
    diag = lax.map(lambda j: op.matvec(jax.nn.one_hot(j, p, dtype=op.dtype))[j], jnp.arange(p),
                   batch_size=batch_size)
    total = jnp.sum(diag)
    return TraceEstimate(total, jnp.zeros_like(total), diag, "exact", p)


def trace(op: LinearOperator, method: str = "hutchinson", num_samples: int = 30, key=None, *,
          batch_size: int = 64) -> TraceEstimate:
    """tr(A) with a standard error (THEORY.md §4).

    Args:
      op: a symmetric `LinearOperator`.
      method: "hutchinson" (Rademacher, ``num_samples`` ≥ 2 probes), "hutch++" (``num_samples`` ≥ 4 matvecs:
        ⌊N/3⌋ sketch, ⌊N/3⌋ for QᵀAQ, the rest as residual probes) or "exact" (Σ_j e_jᵀ A e_j, p matvecs in
        vmapped chunks of ``batch_size``; SE = 0).
      key: PRNG key of the probes (default key(0)).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import from_dense, trace
      >>> with float64():
      ...     op = from_dense(jnp.array([[2.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 4.0]]))   # tr A = 9
      ...     exact = trace(op, "exact")
      ...     hutch = trace(op, "hutchinson", num_samples=30, key=jax.random.key(0))
      ...     hpp = trace(op, "hutch++", num_samples=9)
      >>> float(exact.estimate), float(exact.standard_error)
      (9.0, 0.0)
      >>> abs(float(hutch.estimate) - 9.0) < 4 * float(hutch.standard_error)
      True
      >>> round(float(hpp.estimate), 8)                         # ⌊9/3⌋ = p sketch vectors span R³: exact
      9.0
    """
    check_choice("method", method, TRACE_METHODS)
    if method == "exact":
        return _exact_trace(op, min(check_int("batch_size", batch_size), op.size))
    key = jax.random.key(0) if key is None else key
    if method == "hutchinson":
        return _hutchinson(op, key, check_int("num_samples", num_samples, minimum=2))
    return _hutchpp(op, key, check_int("num_samples", num_samples, minimum=4))


def _slq_nodes(op, key, num_probes: int, order: int, reortho: str):
    """Gauss quadrature nodes θ (num_probes, order) and weights ‖z‖²τ² of every probe (traced inside `_slq` and
    `_density`, so each is one compiled program with its post-processing)."""
    k_z, _ = jax.random.split(key)  # the probes of earlier versions (same key, same result)
    probes = rademacher(k_z, num_probes, op.size, op.dtype)
    alphas, betas = lax.map(lambda z: lanczos_tridiag(op.matvec, z, order, reortho)[:2], probes)
    theta, s = eigh(jax.vmap(tridiagonal)(alphas, betas))
    weights = s[:, 0, :] ** 2
    return theta, weights * op.size  # ‖z‖² = p for Rademacher probes


def _check_slq_args(op, num_probes, order, reortho):
    check_choice("reortho", reortho, REORTHO)
    num_probes = check_int("num_probes", num_probes, minimum=2)
    order = min(check_int("order", order), op.size)
    return num_probes, order


def slq(op: LinearOperator, f: Callable, num_probes: int = 30, order: int = 30, key=None, *,
        reortho: str = "full") -> SLQResult:
    """tr f(A) by stochastic Lanczos quadrature with Rademacher probes, with its standard error (THEORY.md §4).

    ``f`` maps an array of eigenvalues elementwise (e.g. ``lambda t: t**2``) or to a trailing axis of several
    functions (e.g. ``lambda t: t[..., None] ** jnp.arange(1, 5)`` gives tr(A), …, tr(A⁴) from one Lanczos run
    per probe). Each probe's value is exact for polynomials f of degree ≤ 2·order − 1 (Gauss quadrature), so for
    tr(A^k) with order ≥ (k+1)/2 the only error is the Monte Carlo error the SE measures. ``order`` is capped
    at p. ``f`` should be a module-level function or otherwise hashable (it is a jit-static argument).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import from_dense, slq
      >>> with float64():
      ...     op = from_dense(jnp.array([[2.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 4.0]]))
      ...     r = slq(op, jnp.square, num_probes=30, key=jax.random.key(0))   # tr A² = ‖A‖_F² = 33
      >>> abs(float(r.estimate) - 33.0) < 4 * float(r.standard_error)
      True
    """
    num_probes, order = _check_slq_args(op, num_probes, order, reortho)
    key = jax.random.key(0) if key is None else key
    return _slq(op, key, f, num_probes, order, reortho)


@jit(static_argnames=("f", "num_probes", "order", "reortho"))
def _slq(op, key, f, num_probes: int, order: int, reortho: str) -> SLQResult:
    theta, weights = _slq_nodes(op, key, num_probes, order, reortho)
    samples = jnp.einsum("ji,ji...->j...", weights, f(theta))
    est, se = mean_se(samples)
    return SLQResult(est, se, samples, num_probes, order)


def spectral_density(op: LinearOperator, grid, sigma: float, num_probes: int = 20, order: int = 60, key=None,
                     *, reortho: str = "full") -> SpectralDensity:
    """Gaussian-smoothed spectral density of ``op`` on ``grid`` by SLQ (THEORY.md §4; PyHessian-style).

    φ(t) = (1/p) Σ_λ exp(−(t − λ)²/(2σ²))/(σ√(2π)) ≈ mean over probes of Σ_i τ_i² N(t; θ_i, σ²), with the
    pointwise standard error over probes.

    Example:
      >>> import jax.numpy as jnp
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import from_dense, spectral_density
      >>> with float64():
      ...     op = from_dense(jnp.diag(jnp.array([1.0, 2.0, 3.0])))            # eigenvalues 1, 2, 3
      ...     d = spectral_density(op, jnp.linspace(0, 4, 81), sigma=0.1)
      >>> [round(x, 4) for x in d.density.tolist()[::20]]       # t = 0, 1, 2, 3, 4: 1/(3σ√(2π)) = 1.3298 at λ
      [0.0, 1.3298, 1.3298, 1.3298, 0.0]
    """
    check_positive("sigma", sigma)
    num_probes, order = _check_slq_args(op, num_probes, order, reortho)
    grid = jnp.asarray(grid, dtype=op.dtype)
    if grid.ndim != 1:
        raise ValueError(f"grid must be 1-D, got shape {grid.shape}")
    key = jax.random.key(0) if key is None else key
    dens, se = _density(op, key, grid, sigma, num_probes, order, reortho)
    return SpectralDensity(grid, dens, se, float(sigma), num_probes, order)


@jit(static_argnames=("num_probes", "order", "reortho"))
def _density(op, key, grid, sigma, num_probes: int, order: int, reortho: str):
    theta, weights = _slq_nodes(op, key, num_probes, order, reortho)
    kernel = jnp.exp(-0.5 * ((grid[None, None, :] - theta[..., None]) / sigma) ** 2) / (sigma * jnp.sqrt(2 * jnp.pi))
    per_probe = jnp.einsum("ji,jit->jt", weights / op.size, kernel)
    return mean_se(per_probe)
