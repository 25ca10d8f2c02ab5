"""Hessian moments of the stochastic Hessian, dense and matrix-free (THEORY.md §4, used by Theorem A in §5).

At params x: H_i = ∇²f_i(x), H = (1/n) Σ_i H_i, H_ξ = (1/b) Σ_{i∈ξ} H_i for a batch ξ of size b, and

  S_k = E_ξ[H_ξ^k] − H^k,   s_k = λ_max(S_k)^{1/k}   (k = 2, 3, 4; S_1 = 0).

How E_ξ is computed:
- b = 1: S_k = (1/n) Σ_i H_i^k − H^k, for every k [exact].
- k = 2, any b: S_2 = c_b ((1/n) Σ_i H_i² − H²) with c_b = (n − b)/(b(n − 1)) without replacement and c_b = 1/b
  with replacement (independent draws: E[H_ξ²] = H² + (E H_I² − H²)/b) [exact].
- k ≥ 3 and b > 1: no closed form is used (H_i do not commute, so E[H_ξ^k] involves every ordered index pattern).
  The expectation is computed by enumerating all batches: the C(n, b) subsets (without replacement, equally likely)
  or the C(n + b − 1, b) multisets with multinomial weights b!/(∏ m_i!)/n^b (with replacement). If there are more
  than ``max_batches`` of them, a `ValueError` says so.

Matrix-free path: S_k acts as v ↦ E_ξ[H_ξ^k v] − H^k v, composed from vmapped per-example HVPs (`per_example_hvp`),
and Lanczos (full reorthogonalization) gives both ends of its spectrum with their residual norms: each reported
eigenvalue is within its residual norm of an eigenvalue of S_k. S_3 can be indefinite when the H_i do not commute
(or at a point where some H_i is indefinite), so λ_min(S_k) is reported too; s_k is the real k-th root
sign(λ)|λ|^{1/k} of λ_max(S_k). Traces tr(H^k) and tr(H_i^k) are computed exactly from p basis vectors (p·k
products, chunked) or, with ``trace_method="hutchinson"``, from Rademacher probes with standard errors.
"""
from __future__ import annotations

import dataclasses
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.tree_util import Partial

from ..problems.base import Problem
from ..stats import mean_se
from ..validation import CURVATURE_HINT, check_choice, check_finite_params, check_int
from .dense import per_example_hessians
from .lanczos import _lanczos
from .operators import LinearOperator, per_example_hvp
from .stochastic import rademacher

METHODS = ("dense", "matrix_free")
TRACE_METHODS = ("exact", "hutchinson")


@dataclasses.dataclass(frozen=True)
class HessianMoments:
    """Curvature summary at one point (THEORY.md §4). Dicts are keyed by the order k.

    Attributes:
      a: λ_max(H) (sharpness); a_residual: its Lanczos residual norm (0 for dense).
      traces: tr(H^k); trace_se: their standard errors (0 unless trace_method="hutchinson").
      frobenius: ‖H‖_F = √tr(H²).
      s_max, s_min: λ_max(S_k), λ_min(S_k); s: the real k-th root of λ_max(S_k).
      s_residuals: (residual of λ_max, residual of λ_min) from Lanczos (0 for dense).
      per_sample_trace_mean, per_sample_trace_std: mean and (population, ddof = 0) standard deviation over the
        n examples of tr(H_i^k) ("uniformity"); per_sample_trace_se: SE of the mean's estimate (hutchinson).
      batch_size, replace, method, n, p, orders: how it was computed.
    """

    a: float
    a_residual: float
    traces: dict
    trace_se: dict
    frobenius: float
    s_max: dict
    s_min: dict
    s: dict
    s_residuals: dict
    per_sample_trace_mean: dict
    per_sample_trace_std: dict
    per_sample_trace_se: dict
    batch_size: int
    replace: bool
    method: str
    n: int
    p: int
    orders: tuple


def moments_discrepancy(measured: HessianMoments, reference: HessianMoments, rtol: float = 1e-10) -> float:
    """max over every reported quantity of |measured − reference| / tolerance (≤ 1 means agreement).

    Tolerances: rtol·|reference| for a, ‖H‖_F, tr(H^k) and the per-sample statistics (plus the trace SE when
    ``measured`` used Hutchinson probes: then 4 SE); for the Lanczos values a and λ_max/λ_min(S_k) the residual
    norm r is added (a symmetric operator has an eigenvalue within r of each Ritz value), and S_k's ends are
    scaled by max(|λ_max(S_k)|, |λ_min(S_k)|) or, when S_k = 0 (b = n), by ‖H‖_F^k.
    """
    def ratio(got, ref, tol):
        err = abs(got - ref)
        return err / tol if tol > 0 else (0.0 if err == 0 else float("inf"))

    out = [ratio(measured.a, reference.a, rtol * abs(reference.a) + measured.a_residual),
           ratio(measured.frobenius, reference.frobenius, rtol * reference.frobenius)]
    for k in reference.orders:
        scale = max(abs(reference.s_max[k]), abs(reference.s_min[k])) or reference.frobenius**k
        for field, r in (("s_max", measured.s_residuals[k][0]), ("s_min", measured.s_residuals[k][1])):
            out.append(ratio(getattr(measured, field)[k], getattr(reference, field)[k], rtol * scale + r))
        for field, se in (("traces", measured.trace_se[k]), ("per_sample_trace_mean", measured.per_sample_trace_se[k]),
                          ("per_sample_trace_std", 0.0)):
            ref = getattr(reference, field)[k]
            out.append(ratio(getattr(measured, field)[k], ref, rtol * abs(ref) + 4 * se))
    return float(max(out))


def real_root(x: float, k: int) -> float:
    """sign(x)|x|^{1/k}: the real k-th root (s_k of an indefinite S_3 may be negative)."""
    return float(np.sign(x) * abs(x) ** (1.0 / k))


def s2_factor(n: int, batch_size: int, replace: bool) -> float:
    """c_b in S_2 = c_b((1/n)Σ H_i² − H²): (n − b)/(b(n − 1)) without replacement, 1/b with (THEORY.md §4)."""
    if replace:
        return 1.0 / batch_size
    return (n - batch_size) / (batch_size * (n - 1)) if n > 1 else 0.0


def enumerate_batches(n: int, batch_size: int, replace: bool, max_batches: int):
    """All batches of size b with their probabilities: index array (B, b) and weights (B,) summing to 1."""
    count = math.comb(n + batch_size - 1, batch_size) if replace else math.comb(n, batch_size)
    if count > max_batches:
        raise ValueError(
            f"batch_size={batch_size} with n={n} ({'with' if replace else 'without'} replacement) has {count} "
            f"batches, more than max_batches={max_batches}: S_k for k >= 3 and batch_size > 1 is computed by "
            f"enumerating batches (no closed form is implemented); raise max_batches or use batch_size=1")
    if not replace:
        idx = np.array(list(itertools.combinations(range(n), batch_size)), dtype=np.int32)
        return idx, np.full(len(idx), 1.0 / len(idx))
    idx = np.array(list(itertools.combinations_with_replacement(range(n), batch_size)), dtype=np.int32)
    fact = math.factorial(batch_size)
    weights = np.array([fact / np.prod([math.factorial(c) for c in np.unique(row, return_counts=True)[1]])
                        for row in idx]) / n**batch_size
    return idx, weights


def _validate(problem, batch_size, replace, orders, method, trace_method):
    batch_size = check_int("batch_size", batch_size)
    if not replace and batch_size > problem.n:
        raise ValueError(f"batch_size must be <= n = {problem.n} without replacement, got {batch_size}")
    if not isinstance(orders, (tuple, list)) or not orders:
        raise ValueError(f"orders must be a non-empty tuple of integers >= 1, got {orders!r}")
    orders = tuple(sorted({check_int("orders", k) for k in orders}))
    check_choice("method", method, METHODS)
    check_choice("trace_method", trace_method, TRACE_METHODS)
    return batch_size, orders


def hessian_moments(problem: Problem, params, *, batch_size: int = 1, replace: bool = False,
                    orders=(1, 2, 3, 4), method: str = "dense", lanczos_iters: int | None = None, key=None,
                    trace_method: str = "exact", num_samples: int = 100,
                    max_batches: int = 5000) -> HessianMoments:
    """a, tr(H^k), ‖H‖_F, the spectrum ends of S_k = E_ξ[H_ξ^k] − H^k, s_k, and per-sample tr(H_i^k) statistics.

    Args:
      problem, params: the finite sum and the point (THEORY.md §1).
      batch_size, replace: the batch distribution of ξ (see the module docstring for what is exact and how
        k ≥ 3 with b > 1 is handled).
      orders: the k's (≥ 1) to report.
      method: "dense" (per-example Hessians, eigh; memory n·p²) or "matrix_free" (per-example HVPs + Lanczos).
      lanczos_iters: Lanczos steps per operator (matrix-free; default min(p, 80)); at p steps the Krylov space is
        the whole space and the result is exact to round-off. Residual norms are returned either way.
      key: PRNG key for Lanczos start vectors and trace probes (default key(0)).
      trace_method: "exact" (p basis vectors) or "hutchinson" (``num_samples`` Rademacher probes, with SEs).
      max_batches: the largest number of batches enumerated for k ≥ 3, b > 1.
    Non-finite params, or per-example Hessians that overflow at params, raise a `ValueError`.
    """
    check_finite_params("params", params, CURVATURE_HINT)
    batch_size, orders = _validate(problem, batch_size, replace, orders, method, trace_method)
    batches = None
    if batch_size > 1 and any(k >= 3 for k in orders) and not (not replace and batch_size == problem.n):
        batches = enumerate_batches(problem.n, batch_size, replace, check_int("max_batches", max_batches))
    elif not replace and batch_size == problem.n:
        batches = (np.arange(problem.n, dtype=np.int32)[None], np.ones(1))  # the one batch: S_k = 0
    key = jax.random.key(0) if key is None else key
    if method == "dense":
        return _dense_moments(problem, params, batch_size, replace, orders, batches)
    return _matrix_free_moments(problem, params, batch_size, replace, orders, batches, lanczos_iters, key,
                                trace_method, num_samples)


# --- dense ------------------------------------------------------------------------------------------------

@jax.jit(static_argnames=("orders",))
def _dense_batch_powers(Hi, idx, weights, orders):
    """Σ_ξ w_ξ H_ξ^k for each k in ``orders``, by a scan over the enumerated batches."""
    def step(acc, inputs):
        rows, w = inputs
        Hxi = jnp.mean(Hi[rows], axis=0)
        return tuple(a + w * jnp.linalg.matrix_power(Hxi, k) for a, k in zip(acc, orders)), None
    init = tuple(jnp.zeros_like(Hi[0]) for _ in orders)
    return lax.scan(step, init, (idx, weights))[0]


def moment_matrices(Hi, orders, batch_size: int, replace: bool, batches=None):
    """(H, {k: S_k}) from per-example Hessians ``Hi`` (n, p, p), with S_k = E_ξ[H_ξ^k] − H^k symmetrized (§4).

    b = 1: S_k = (1/n)Σ H_i^k − H^k. b > 1: S_2 = c_b((1/n)Σ H_i² − H²) with c_b = `s2_factor`; k ≥ 3 (and k = 2
    when a single batch is enumerated) by the weighted sum over ``batches`` (`enumerate_batches`). S_1 = 0.
    Pure jnp: it jits and vmaps over points.
    """
    Hi = 0.5 * (Hi + jnp.swapaxes(Hi, 1, 2))
    n = Hi.shape[0]
    H = jnp.mean(Hi, axis=0)
    power = jnp.linalg.matrix_power
    enumerated = {}
    if batches is not None:
        high = tuple(k for k in orders if k >= 3 or (batches[0].shape[0] == 1 and k >= 2))
        if high:
            sums = _dense_batch_powers(Hi, jnp.asarray(batches[0]), jnp.asarray(batches[1], Hi.dtype), high)
            enumerated = dict(zip(high, sums))
    S = {}
    for k in orders:
        if k == 1:
            S[k] = jnp.zeros_like(H)
            continue
        if k in enumerated:
            Sk = enumerated[k] - power(H, k)
        else:
            factor = 1.0 if batch_size == 1 else s2_factor(n, batch_size, replace)
            Sk = factor * (jnp.mean(power(Hi, k), axis=0) - power(H, k))
        S[k] = 0.5 * (Sk + Sk.T)
    return H, S


def _dense_moments(problem, params, b, replace, orders, batches) -> HessianMoments:
    Hi = np.asarray(per_example_hessians(problem, params))
    if not np.isfinite(Hi).all():
        raise ValueError(f"the per-example Hessians at params overflow {Hi.dtype} (max |params| = "
                         f"{max(float(np.max(np.abs(x))) for x in jax.tree.leaves(params)):.3g}){CURVATURE_HINT}")
    n, p = Hi.shape[0], Hi.shape[1]
    H, S = moment_matrices(jnp.asarray(Hi), orders, b, replace, batches)
    ev = np.linalg.eigvalsh(np.asarray(H))
    ev_i = np.linalg.eigvalsh(0.5 * (Hi + np.swapaxes(Hi, 1, 2)))  # (n, p)
    s_max, s_min = {}, {}
    for k in orders:
        eS = np.linalg.eigvalsh(np.asarray(S[k]))
        s_max[k], s_min[k] = float(eS[-1]), float(eS[0])
    zeros = {k: 0.0 for k in orders}
    per_sample = {k: np.sum(ev_i**k, axis=1) for k in orders}
    return HessianMoments(
        a=float(ev[-1]), a_residual=0.0, traces={k: float(np.sum(ev**k)) for k in orders}, trace_se=dict(zeros),
        frobenius=float(np.linalg.norm(np.asarray(H))), s_max=s_max, s_min=s_min,
        s={k: real_root(v, k) for k, v in s_max.items()}, s_residuals={k: (0.0, 0.0) for k in orders},
        per_sample_trace_mean={k: float(v.mean()) for k, v in per_sample.items()},
        per_sample_trace_std={k: float(v.std()) for k, v in per_sample.items()}, per_sample_trace_se=dict(zeros),
        batch_size=b, replace=replace, method="dense", n=n, p=p, orders=orders)


# --- matrix-free ------------------------------------------------------------------------------------------

def _repeat(fn, x, k):
    return lax.fori_loop(0, k, lambda _, y: fn(y), x)


def _moment_apply(apply, apply_at, idx, weights, k, factor, mean_coef, v, *, n, enumerate_):
    """factor·(E_ξ[H_ξ^k v] − H^k v) + mean_coef·H^k v from per-example HVPs (THEORY.md §4).

    factor = 1, mean_coef = 0 is S_k v (b = 1, or enumerated batches); factor = c_b for S_2 with b > 1;
    factor = 0, mean_coef = 1 is H^k v. k is a traced integer, so operators of several orders share one
    compiled Lanczos (vmapped over k).
    """
    hk = _repeat(lambda y: jnp.mean(apply(jnp.broadcast_to(y, (n,) + y.shape)), axis=0), v, k)
    if enumerate_:
        num, b = idx.shape
        flat_idx = idx.reshape(-1)
        h_xi = lambda u: apply_at(flat_idx, jnp.repeat(u, b, axis=0)).reshape(num, b, -1).mean(axis=1)
        moment = weights @ _repeat(h_xi, jnp.broadcast_to(v, (num,) + v.shape), k)
    else:
        moment = jnp.mean(_repeat(apply, jnp.broadcast_to(v, (n,) + v.shape), k), axis=0)
    return factor * (moment - hk) + mean_coef * hk


@dataclasses.dataclass(frozen=True)
class _MomentApply:
    """Hashable static part of the S_k operator (equal configurations share one jit cache entry)."""

    n: int
    enumerate_: bool

    def __call__(self, *args):
        return _moment_apply(*args, n=self.n, enumerate_=self.enumerate_)


def _moment_op(pe, k, factor, mean_coef, idx, weights, enumerate_) -> LinearOperator:
    fn = Partial(_MomentApply(pe.n, enumerate_), pe.apply, pe.apply_at, idx, weights, k, factor, mean_coef)
    return LinearOperator(fn, pe.size, pe.dtype, pe.unravel)


def _no_batches(dtype):
    return jnp.zeros((1, 1), jnp.int32), jnp.ones((1,), dtype)


def moment_operator(pe, k: int, *, batch_size: int = 1, replace: bool = False, batches=None) -> LinearOperator:
    """S_k = E_ξ[H_ξ^k] − H^k as a matrix-free `LinearOperator` built on a `PerExampleHVP` ``pe``.

    ``batches = (idx (B, b), weights (B,))`` switches to the enumerated expectation (needed for k ≥ 3, b > 1);
    otherwise b = 1 (any k) or k = 2 (any b, factor c_b) is used, and other cases raise `ValueError`.
    """
    k = check_int("k", k)
    if batches is None and batch_size > 1 and k >= 3:
        raise ValueError(f"k={k} with batch_size={batch_size} > 1 needs enumerated batches (see hessian_moments)")
    factor = 1.0 if batch_size == 1 or batches is not None else s2_factor(pe.n, batch_size, replace)
    idx, weights = _no_batches(pe.dtype) if batches is None else \
        (jnp.asarray(batches[0]), jnp.asarray(batches[1], dtype=pe.dtype))
    return _moment_op(pe, jnp.asarray(k), jnp.asarray(factor, pe.dtype), jnp.zeros((), pe.dtype), idx, weights,
                      batches is not None)


@jax.jit(static_argnames=("n", "orders", "batch_size"))
def _power_quadratic_forms(apply, vectors, n, orders, batch_size):
    """For each row v: (vᵀH^k v)_k and (vᵀH_i^k v)_{k,i}, by chains of per-example HVPs."""
    def one(v):
        u_mean, u_each, total, each = v, jnp.broadcast_to(v, (n,) + v.shape), [], []
        for k in range(1, max(orders) + 1):
            u_each = apply(u_each)
            u_mean = jnp.mean(apply(jnp.broadcast_to(u_mean, (n,) + v.shape)), axis=0)
            if k in orders:
                total.append(jnp.vdot(v, u_mean))
                each.append(u_each @ v)
        return jnp.stack(total), jnp.stack(each)
    return lax.map(one, vectors, batch_size=batch_size)


def _spectrum_ends(pe, ks, factors, mean_coefs, idx, weights, key, iters, enumerate_):
    """Lanczos on several order-k operators at once (vmapped over k): (θ_max, θ_min, residuals) each."""
    def one(k, factor, mean_coef, kk):
        res = _lanczos(_moment_op(pe, k, factor, mean_coef, idx, weights, enumerate_), kk, iters, "full")
        return res.ritz_values[-1], res.ritz_values[0], res.residual_norms[-1], res.residual_norms[0]
    return jax.vmap(one)(jnp.asarray(ks), jnp.asarray(factors, pe.dtype), jnp.asarray(mean_coefs, pe.dtype),
                         jax.random.split(key, len(ks)))


@jax.jit(static_argnames=("closed", "enumerated", "factor", "powers", "iters", "num_probes", "chunk"))
def _matrix_free_arrays(pe, idx, weights, key, *, closed, enumerated, factor, powers, iters, num_probes, chunk):
    """Everything of the matrix-free path in one compiled program: Lanczos for H (k=1, mean_coef=1) and the
    closed-form S_k in one vmapped run, the enumerated S_k in another, and the power traces."""
    k_c, k_e, k_t = jax.random.split(key, 3)
    no_idx, no_w = _no_batches(pe.dtype)
    ks = (1,) + closed
    factors = (0.0,) + tuple(factor if k == 2 else 1.0 for k in closed)
    ends = _spectrum_ends(pe, ks, factors, (1.0,) + (0.0,) * len(closed), no_idx, no_w, k_c, iters, False)
    enum_ends = _spectrum_ends(pe, enumerated, (1.0,) * len(enumerated), (0.0,) * len(enumerated), idx, weights,
                               k_e, iters, True) if enumerated else None
    if num_probes is None:  # exact traces from the p basis vectors
        basis = jax.vmap(lambda j: jax.nn.one_hot(j, pe.size, dtype=pe.dtype))(jnp.arange(pe.size))
        total, each = _power_quadratic_forms(pe.apply, basis, pe.n, powers, chunk)
        total, each, each_probe = total.sum(0), each.sum(0), None
    else:
        z = rademacher(k_t, num_probes, pe.size, pe.dtype)
        total, each_probe = _power_quadratic_forms(pe.apply, z, pe.n, powers, chunk)
        each = each_probe.mean(0)
    return ends, enum_ends, total, each, each_probe


def _matrix_free_moments(problem, params, b, replace, orders, batches, lanczos_iters, key, trace_method,
                         num_samples) -> HessianMoments:
    pe = per_example_hvp(problem, params)
    n, p = pe.n, pe.size
    iters = min(p, 80) if lanczos_iters is None else min(p, check_int("lanczos_iters", lanczos_iters))
    powers = tuple(sorted(set(orders) | {2}))  # tr(H²) gives ‖H‖_F
    probes = None if trace_method == "exact" else check_int("num_samples", num_samples, minimum=2)
    enumerated = () if batches is None else tuple(k for k in orders if k >= 3 or (batches[0].shape[0] == 1 and k >= 2))
    closed = tuple(k for k in orders if k >= 2 and k not in enumerated)
    idx, weights = (np.zeros((1, 1), np.int32), np.ones(1)) if batches is None else batches
    ends, enum_ends, total, each, each_probe = _matrix_free_arrays(
        pe, jnp.asarray(idx), jnp.asarray(weights, dtype=pe.dtype), key, closed=closed, enumerated=enumerated,
        factor=1.0 if b == 1 else s2_factor(n, b, replace), powers=powers, iters=iters, num_probes=probes,
        chunk=min(p, 32))
    ends = np.stack([np.asarray(e) for e in ends], axis=1)  # (1 + len(closed), 4)
    a, a_residual = float(ends[0, 0]), float(ends[0, 2])
    ends = {k: tuple(float(x) for x in row) for k, row in zip(closed, ends[1:])}
    if enum_ends is not None:
        enum_ends = np.stack([np.asarray(e) for e in enum_ends], axis=1)
        ends.update({k: tuple(float(x) for x in row) for k, row in zip(enumerated, enum_ends)})
    total, each = np.asarray(total), np.asarray(each)
    if probes is None:
        traces, trace_se, each_se = total, np.zeros(len(powers)), np.zeros(len(powers))
    else:  # total: (probes, K); each_probe: (probes, K, n)
        traces, trace_se = mean_se(total)
        each_se = mean_se(np.asarray(each_probe).mean(2))[1]  # SE of mean_i tr(H_i^k)
    ends.update({k: (0.0, 0.0, 0.0, 0.0) for k in orders if k == 1})  # S_1 = E H_ξ − H = 0 exactly
    pick = lambda values: {k: values[powers.index(k)] for k in orders}
    tr2 = float(traces[powers.index(2)])
    traces, trace_se, each, each_se = pick(traces), pick(trace_se), pick(each), pick(each_se)
    s_max = {k: ends[k][0] for k in orders}
    return HessianMoments(
        a=a, a_residual=a_residual, traces={k: float(t) for k, t in traces.items()}, trace_se={k: float(s) for k, s in trace_se.items()},
        frobenius=float(np.sqrt(max(tr2, 0.0))), s_max=s_max, s_min={k: ends[k][1] for k in orders},
        s={k: real_root(v, k) for k, v in s_max.items()}, s_residuals={k: ends[k][2:] for k in orders},
        per_sample_trace_mean={k: float(e.mean()) for k, e in each.items()},
        per_sample_trace_std={k: float(e.std()) for k, e in each.items()},
        per_sample_trace_se={k: float(s) for k, s in each_se.items()},
        batch_size=b, replace=replace, method="matrix_free", n=n, p=p, orders=orders)
