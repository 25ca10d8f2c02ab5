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

from ..compiler import jit_fast_compile
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


@jit_fast_compile(static_argnames=("num", "size", "dtype"))
def _rademacher(key, num: int, size: int, dtype):
    return jax.random.rademacher(key, (num, size), dtype=dtype)


def rademacher(key, num: int, size: int, dtype) -> jax.Array:
    """``num`` Rademacher (±1) vectors of length ``size`` as rows (``jax.random.rademacher``; compiled once per
    shape and shared by every estimator that draws that shape)."""
    return _rademacher(key, num, size, jnp.dtype(dtype))


def _quadratic_forms(op, vs):
    return jnp.sum(vs * op.matmat(vs), axis=1)


@jit_fast_compile
def _hutchinson(op, probes):
    samples = _quadratic_forms(op, probes)
    return (*mean_se(samples), samples)


@jit_fast_compile
def _hutchpp(op, sketch, probes):
    Q, _ = jnp.linalg.qr(op.matmat(sketch).T)  # (p, s)
    low_rank = jnp.sum(Q.T * op.matmat(Q.T))  # tr(QᵀAQ), exact
    samples = _quadratic_forms(op, probes - (probes @ Q) @ Q.T)  # probes projected onto range(Q)^⊥
    rest, se = mean_se(samples)
    return low_rank + rest, se, samples


@jit_fast_compile(static_argnames=("batch_size",))
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
        num_samples = check_int("num_samples", num_samples, minimum=2)
        estimate = _hutchinson(op, rademacher(key, num_samples, op.size, op.dtype))
    else:
        num_samples = check_int("num_samples", num_samples, minimum=4)
        sketch = num_samples // 3
        k_s, k_g = jax.random.split(key)
        estimate = _hutchpp(op, rademacher(k_s, sketch, op.size, op.dtype),
                            rademacher(k_g, num_samples - 2 * sketch, op.size, op.dtype))
    return TraceEstimate(*estimate, method, num_samples)


@functools.partial(jax.tree_util.register_dataclass, data_fields=["nodes", "weights"],
                   meta_fields=["size", "num_probes", "order"])
@dataclasses.dataclass(frozen=True)
class GaussQuadrature:
    """The stochastic Lanczos quadrature of an operator (THEORY.md §4): for probe j,
    zⱼᵀ f(A) zⱼ ≈ Σ_i ``weights[j, i]`` f(``nodes[j, i]``), with nodes θ the eigenvalues of that probe's Lanczos
    T_m and weights ‖z‖²τ² (τ the first components of T_m's eigenvectors; ‖z‖² = p for Rademacher probes). One
    Lanczos run per probe serves every f: `trace` gives tr f(A) ± SE, `density` the smoothed spectral density.

    Example:
      >>> import jax.numpy as jnp
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import from_dense, gauss_quadrature
      >>> with float64():
      ...     q = gauss_quadrature(from_dense(jnp.diag(jnp.array([1.0, 2.0, 3.0]))), num_probes=4)
      ...     mass = q.weights.sum(axis=1)
      >>> q.nodes.shape, q.weights.shape, q.order                # order capped at p = 3
      ((4, 3), (4, 3), 3)
      >>> [round(x, 8) for x in mass.tolist()]                  # Σ_i w_i = ‖z‖² = p for every probe
      [3.0, 3.0, 3.0, 3.0]
    """

    nodes: jax.Array
    weights: jax.Array
    size: int
    num_probes: int
    order: int

    def trace(self, f: Callable) -> SLQResult:
        """tr f(A) ± SE (THEORY.md §4): the probe mean of Σ_i w_i f(θ_i); ``f`` elementwise, or onto a trailing
        axis of several functions. Exact per probe for polynomials of degree ≤ 2·order − 1.

        Example:
          >>> import jax.numpy as jnp
          >>> from sam_theory import float64
          >>> from sam_theory.curvature import from_dense, gauss_quadrature
          >>> with float64():
          ...     q = gauss_quadrature(from_dense(jnp.diag(jnp.array([1.0, 2.0, 3.0]))), num_probes=4)
          ...     powers = q.trace(lambda t: t[..., None] ** jnp.arange(1, 4))   # tr A, tr A², tr A³
          >>> [round(x, 8) for x in powers.estimate.tolist()], powers.samples.shape   # diagonal A: zᵀAᵏz = tr Aᵏ
          ([6.0, 14.0, 36.0], (4, 3))
        """
        return SLQResult(*_quadrature_trace(self.nodes, self.weights, f), self.num_probes, self.order)

    def density(self, grid, sigma: float) -> SpectralDensity:
        """φ_σ(t) on ``grid`` (THEORY.md §4): the probe mean of Σ_i τ_i² N(t; θ_i, σ²), with its pointwise SE.

        Example:
          >>> import jax.numpy as jnp
          >>> from sam_theory import float64
          >>> from sam_theory.curvature import from_dense, gauss_quadrature
          >>> with float64():
          ...     q = gauss_quadrature(from_dense(jnp.diag(jnp.array([1.0, 2.0, 3.0]))), num_probes=4)
          ...     d = q.density(jnp.linspace(0, 4, 5), sigma=0.1)
          >>> [round(x, 4) for x in d.density.tolist()]             # 1/(3σ√(2π)) = 1.3298 at each eigenvalue
          [0.0, 1.3298, 1.3298, 1.3298, 0.0]
        """
        grid = _density_grid(grid, sigma, self.nodes.dtype)
        dens, se = _quadrature_density(self.nodes, self.weights, self.size, grid, sigma)
        return SpectralDensity(grid, dens, se, float(sigma), self.num_probes, self.order)


def _density_grid(grid, sigma, dtype) -> jax.Array:
    """The validated 1-D grid of a density (σ > 0), as an array of ``dtype``."""
    check_positive("sigma", sigma)
    grid = jnp.asarray(grid, dtype=dtype)
    if grid.ndim != 1:
        raise ValueError(f"grid must be 1-D, got shape {grid.shape}")
    return grid


@jit_fast_compile(static_argnames=("order", "reortho"))
def _gauss_nodes(op, probes, order: int, reortho: str):
    alphas, betas = lax.map(lambda z: lanczos_tridiag(op.matvec, z, order, reortho)[:2], probes)
    theta, s = eigh(jax.vmap(tridiagonal)(alphas, betas))
    return theta, s[:, 0, :] ** 2 * jnp.sum(probes**2, axis=1, keepdims=True)


@jit_fast_compile(static_argnames=("f",))
def _quadrature_trace(nodes, weights, f):
    samples = jnp.einsum("ji,ji...->j...", weights, f(nodes))
    return (*mean_se(samples), samples)


@jit_fast_compile(static_argnames=("size",))
def _quadrature_density(nodes, weights, size: int, grid, sigma):
    kernel = jnp.exp(-0.5 * ((grid[None, None, :] - nodes[..., None]) / sigma) ** 2) / (sigma * jnp.sqrt(2 * jnp.pi))
    return mean_se(jnp.einsum("ji,jit->jt", weights / size, kernel))  # τ² = w/‖z‖², ‖z‖² = p


def gauss_quadrature(op: LinearOperator, num_probes: int = 30, order: int = 30, key=None, *,
                     reortho: str = "full") -> GaussQuadrature:
    """The SLQ quadrature of ``op`` (Ubaru, Chen & Saad 2017; THEORY.md §4): ``order`` Lanczos steps (capped at
    p) from each of ``num_probes`` ≥ 2 Rademacher probes drawn with ``key`` (default key(0)). Compiled once per
    (operator, num_probes, order), whatever f is applied after (`GaussQuadrature.trace`, `.density`).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import from_dense, gauss_quadrature
      >>> with float64():
      ...     A = jnp.array([[2.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 4.0]])
      ...     q = gauss_quadrature(from_dense(A), num_probes=30, key=jax.random.key(0))
      ...     r2, r4 = q.trace(jnp.square), q.trace(lambda t: t**4)   # one Lanczos run per probe for both
      >>> abs(float(r2.estimate) - 33.0) < 4 * float(r2.standard_error)   # tr A² = ‖A‖_F² = 33
      True
    """
    check_choice("reortho", reortho, REORTHO)
    num_probes = check_int("num_probes", num_probes, minimum=2)
    order = min(check_int("order", order), op.size)
    key = jax.random.key(0) if key is None else key
    k_z, _ = jax.random.split(key)  # the probes of earlier versions (same key, same result)
    probes = rademacher(k_z, num_probes, op.size, op.dtype)
    nodes, weights = _gauss_nodes(op, probes, order, reortho)
    return GaussQuadrature(nodes, weights, op.size, num_probes, order)


def slq(op: LinearOperator, f: Callable, num_probes: int = 30, order: int = 30, key=None, *,
        reortho: str = "full") -> SLQResult:
    """tr f(A) by stochastic Lanczos quadrature with Rademacher probes, with its standard error (THEORY.md §4):
    ``gauss_quadrature(op, num_probes, order, key).trace(f)``.

    ``f`` maps an array of eigenvalues elementwise (e.g. ``lambda t: t**2``) or to a trailing axis of several
    functions (e.g. ``lambda t: t[..., None] ** jnp.arange(1, 5)`` gives tr(A), …, tr(A⁴) from one Lanczos run
    per probe). Each probe's value is exact for polynomials f of degree ≤ 2·order − 1 (Gauss quadrature), so for
    tr(A^k) with order ≥ (k+1)/2 the only error is the Monte Carlo error the SE measures. ``order`` is capped
    at p. The Lanczos runs compile once per (operator, num_probes, order); a new ``f`` only compiles its own
    small reduction. For several f, build the `gauss_quadrature` once and call its ``trace``.

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
    return gauss_quadrature(op, num_probes, order, key, reortho=reortho).trace(f)


def spectral_density(op: LinearOperator, grid, sigma: float, num_probes: int = 20, order: int = 60, key=None,
                     *, reortho: str = "full") -> SpectralDensity:
    """Gaussian-smoothed spectral density of ``op`` on ``grid`` by SLQ (THEORY.md §4; PyHessian-style):
    ``gauss_quadrature(op, num_probes, order, key).density(grid, sigma)``.

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
    _density_grid(grid, sigma, op.dtype)  # bad arguments fail before the Lanczos runs
    return gauss_quadrature(op, num_probes, order, key, reortho=reortho).density(grid, sigma)
