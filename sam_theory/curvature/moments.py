"""Hessian moments of the stochastic Hessian, dense and matrix-free (THEORY.md §4, used by Theorem A in §5).

At params x: H_i = ∇²f_i(x), H = (1/n) Σ_i H_i, H_ξ = (1/b) Σ_{i∈ξ} H_i for a batch ξ of size b, and

  S_k = E_ξ[H_ξ^k] − H^k,   s_k = λ_max(S_k)^{1/k}   (k = 2, 3, 4; S_1 = 0).

E_ξ is exact for every b, with or without replacement, by set partitions (THEORY.md §4.1,
`sam_theory.curvature.batch_moments`): no batch is enumerated. The curvature comes as a `BatchCurvature`
(per-example Hessians: method "dense", eigvalsh; or per-example HVPs: method "matrix_free", Lanczos with full
reorthogonalization giving both ends of each spectrum with their residual norms: each reported eigenvalue is within
its residual norm of an eigenvalue of S_k). S_3 can be indefinite when the H_i do not commute, so λ_min(S_k) is
reported too; s_k is the real k-th root sign(λ)|λ|^{1/k} of λ_max(S_k). Traces tr(H^k) and tr(H_i^k) are exact from
p basis vectors (p·k products, chunked) or, with ``trace_method="hutchinson"``, from Rademacher probes with
standard errors. With ``crossing="monte_carlo"`` the crossing term of S_4 is estimated from random index pairs and
its standard error at the reported top eigenvector is returned (``s_crossing_se``).
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..compiler import jit_fast_compile
from ..stats import mean_se
from ..validation import check_choice, check_int
from .batch_moments import CROSSING, BatchCurvature, crossing_estimate, stochastic_moment, word_operator
from .lanczos import lanczos
from .stochastic import rademacher

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
      s_crossing_se: {k: SE} of the Monte Carlo crossing term at the top eigenvector of S_k (0 when exact).
      batch_size, replace, method, n, p, orders: how it was computed.

    Example:
      >>> import numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import BatchCurvature, hessian_moments
      >>> with float64():
      ...     m = hessian_moments(BatchCurvature.from_hessians(np.array([[[1.0]], [[3.0]]])))   # H_i = 1, 3
      >>> m.method, m.n, m.p, m.batch_size, m.orders
      ('dense', 2, 1, 1, (1, 2, 3, 4))
      >>> {k: round(v, 6) for k, v in m.per_sample_trace_mean.items()}   # (1/n) Σ_i h_i^k
      {1: 2.0, 2: 5.0, 3: 14.0, 4: 41.0}
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
    s_crossing_se: dict
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

    Example:
      >>> import dataclasses
      >>> import numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import BatchCurvature, hessian_moments, moments_discrepancy
      >>> with float64():
      ...     m = hessian_moments(BatchCurvature.from_hessians(np.array([[[1.0]], [[3.0]]])))
      >>> moments_discrepancy(m, m)
      0.0
      >>> off = dataclasses.replace(m, a=m.a * (1 + 3e-10))     # |Δa| = 3 × (rtol·|a|)
      >>> round(moments_discrepancy(off, m), 3)
      3.0
    """
    def ratio(got, ref, tol):
        err = abs(got - ref)
        return err / tol if tol > 0 else (0.0 if err == 0 else float("inf"))

    out = [ratio(measured.a, reference.a, rtol * abs(reference.a) + measured.a_residual),
           ratio(measured.frobenius, reference.frobenius, rtol * reference.frobenius)]
    for k in reference.orders:
        scale = max(abs(reference.s_max[k]), abs(reference.s_min[k])) or reference.frobenius**k
        for field, r in (("s_max", measured.s_residuals[k][0]), ("s_min", measured.s_residuals[k][1])):
            r = r + 4 * measured.s_crossing_se[k]  # a Monte Carlo crossing term (0 when exact)
            out.append(ratio(getattr(measured, field)[k], getattr(reference, field)[k], rtol * scale + r))
        for field, se in (("traces", measured.trace_se[k]), ("per_sample_trace_mean", measured.per_sample_trace_se[k]),
                          ("per_sample_trace_std", 0.0)):
            ref = getattr(reference, field)[k]
            out.append(ratio(getattr(measured, field)[k], ref, rtol * abs(ref) + 4 * se))
    return float(max(out))


def real_root(x: float, k: int) -> float:
    """sign(x)|x|^{1/k}: the real k-th root (s_k of an indefinite S_3 may be negative).

    Example:
      >>> real_root(-8.0, 3), real_root(16.0, 4)
      (-2.0, 2.0)
    """
    return float(np.sign(x) * abs(x) ** (1.0 / k))


def _validate(orders, trace_method):
    if not isinstance(orders, (tuple, list)) or not orders:
        raise ValueError(f"orders must be a non-empty tuple of integers >= 1, got {orders!r}")
    orders = tuple(sorted({check_int("orders", k) for k in orders}))
    if orders[-1] > 4:
        raise ValueError(f"orders must be at most 4 (batch moments by set partitions, THEORY.md §4.1), got {orders}")
    check_choice("trace_method", trace_method, TRACE_METHODS)
    return orders


def hessian_moments(curv: BatchCurvature, *, orders=(1, 2, 3, 4), lanczos_iters: int | None = None, key=None,
                    trace_method: str = "exact", num_samples: int = 100, crossing: str = "exact",
                    crossing_samples: int = 256) -> HessianMoments:
    """a, tr(H^k), ‖H‖_F, the spectrum ends of S_k = E_ξ[H_ξ^k] − H^k, s_k, and per-sample tr(H_i^k) statistics.

    Args:
      curv: a `BatchCurvature` (``BatchCurvature.from_problem(problem, params, batch_size, replace)`` or
        ``.from_hessians``): the per-example curvature and the batch distribution of ξ (THEORY.md §1, §4.1).
      orders: the k's (1 ≤ k ≤ 4) to report.
      lanczos_iters: Lanczos steps per operator (matrix-free; default min(p, 80)); at p steps the Krylov space is
        the whole space and the result is exact to round-off. Residual norms are returned either way.
      key: PRNG key for Lanczos start vectors, trace probes and crossing pairs (default key(0)).
      trace_method: "exact" (p basis vectors) or "hutchinson" (``num_samples`` Rademacher probes, with SEs).
      crossing, crossing_samples: the crossing partition {1,3}{2,4} of S_4 exactly (n² products) or by Monte
        Carlo (matrix-free only; `sam_theory.curvature.batch_moments.expected_product`).

    Example (two examples, H_1 = 1, H_2 = 3, p = 1, batches of b = 1: S_k = (1/n) Σ_i h_i^k − H^k):
      >>> import numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import BatchCurvature, hessian_moments
      >>> with float64():
      ...     m = hessian_moments(BatchCurvature.from_hessians(np.array([[[1.0]], [[3.0]]]), batch_size=1))
      >>> m.a, m.traces[2]                                      # H = 2, tr H² = 4
      (2.0, 4.0)
      >>> {k: round(v, 6) for k, v in m.s_max.items()}          # 0, 5 − 4, 14 − 8, 41 − 16
      {1: 0.0, 2: 1.0, 3: 6.0, 4: 25.0}
      >>> round(m.s[4], 6)                                      # s_4 = 25^{1/4} = √5
      2.236068
    """
    if not isinstance(curv, BatchCurvature):
        raise ValueError(f"curv must be a BatchCurvature (BatchCurvature.from_problem / .from_hessians), "
                         f"got {type(curv).__name__}")
    orders = _validate(orders, trace_method)
    check_choice("crossing", crossing, CROSSING)
    key = jax.random.key(0) if key is None else key
    if curv.method == "dense":
        return _dense_moments(curv, orders)
    return _matrix_free_moments(curv, orders, lanczos_iters, key, trace_method, num_samples, crossing,
                                crossing_samples)


# --- dense ------------------------------------------------------------------------------------------------

@functools.partial(jit_fast_compile, static_argnames=("orders",))
def _dense_matrices(curv, orders):
    S = [stochastic_moment(curv, k) for k in orders]
    return jnp.mean(curv.hessians, axis=0), jnp.stack([0.5 * (x + x.T) for x in S])


def _dense_moments(curv, orders) -> HessianMoments:
    H, S = _dense_matrices(curv, orders)
    Hi = np.asarray(curv.hessians)
    ev = np.linalg.eigvalsh(np.asarray(H))
    ev_i = np.linalg.eigvalsh(Hi)  # (n, p)
    eS = np.linalg.eigvalsh(np.asarray(S))
    s_max = {k: float(e[-1]) for k, e in zip(orders, eS)}
    s_min = {k: float(e[0]) for k, e in zip(orders, eS)}
    zeros = {k: 0.0 for k in orders}
    per_sample = {k: np.sum(ev_i**k, axis=1) for k in orders}
    return HessianMoments(
        a=float(ev[-1]), a_residual=0.0, traces={k: float(np.sum(ev**k)) for k in orders}, trace_se=dict(zeros),
        frobenius=float(np.linalg.norm(np.asarray(H))), s_max=s_max, s_min=s_min,
        s={k: real_root(v, k) for k, v in s_max.items()}, s_residuals={k: (0.0, 0.0) for k in orders},
        per_sample_trace_mean={k: float(v.mean()) for k, v in per_sample.items()},
        per_sample_trace_std={k: float(v.std()) for k, v in per_sample.items()}, per_sample_trace_se=dict(zeros),
        s_crossing_se=dict(zeros), batch_size=curv.batch_size, replace=curv.replace, method="dense", n=curv.n,
        p=curv.size, orders=orders)


# --- matrix-free ------------------------------------------------------------------------------------------

@functools.partial(jit_fast_compile, static_argnames=("n", "orders", "batch_size"))
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


@functools.partial(jax.jit, static_argnames=("orders", "powers", "iters", "num_probes", "chunk", "crossing",
                                             "samples"))
def _matrix_free_arrays(curv, key, *, orders, powers, iters, num_probes, chunk, crossing, samples):
    """Everything of the matrix-free path in one compiled program: Lanczos on H and on each S_k (set partitions,
    per-example HVPs), and the power traces."""
    keys = jax.random.split(key, 2 * len(orders) + 3)
    res = lanczos(word_operator(curv, ("H",)), iters, keys[0])
    ends = [(res.ritz_values[-1], res.ritz_values[0], res.residual_norms[-1], res.residual_norms[0])]
    tops = []
    for j, k in enumerate(orders):
        op = word_operator(curv, ("H",) * k, minus_mean=True, crossing=crossing, crossing_samples=samples,
                           key=keys[2 + 2 * j])
        res = lanczos(op, iters, keys[3 + 2 * j])
        ends.append((res.ritz_values[-1], res.ritz_values[0], res.residual_norms[-1], res.residual_norms[0]))
        tops.append(res.ritz_vectors[-1])
    apply = curv.hvp.apply
    if num_probes is None:  # exact traces from the p basis vectors
        basis = jax.vmap(lambda j: jax.nn.one_hot(j, curv.size, dtype=curv.dtype))(jnp.arange(curv.size))
        total, each = _power_quadratic_forms(apply, basis, curv.n, powers, chunk)
        total, each, each_probe = total.sum(0), each.sum(0), None
    else:
        z = rademacher(keys[1], num_probes, curv.size, curv.dtype)
        total, each_probe = _power_quadratic_forms(apply, z, curv.n, powers, chunk)
        each = each_probe.mean(0)
    return jnp.asarray(ends), jnp.stack(tops), total, each, each_probe


def _matrix_free_moments(curv, orders, lanczos_iters, key, trace_method, num_samples, crossing,
                         samples) -> HessianMoments:
    n, p = curv.n, curv.size
    iters = min(p, 80) if lanczos_iters is None else min(p, check_int("lanczos_iters", lanczos_iters))
    powers = tuple(sorted(set(orders) | {2}))  # tr(H²) gives ‖H‖_F
    probes = None if trace_method == "exact" else check_int("num_samples", num_samples, minimum=2)
    high = tuple(k for k in orders if k >= 2)
    samples = check_int("crossing_samples", samples)
    ends, tops, total, each, each_probe = _matrix_free_arrays(
        curv, key, orders=high, powers=powers, iters=iters, num_probes=probes, chunk=min(p, 32),
        crossing=crossing, samples=samples)
    ends = np.asarray(ends)
    a, a_residual = float(ends[0, 0]), float(ends[0, 2])
    ends = {k: tuple(float(x) for x in row) for k, row in zip(high, ends[1:])}
    ends.update({k: (0.0, 0.0, 0.0, 0.0) for k in orders if k == 1})  # S_1 = E H_ξ − H = 0 exactly
    crossing_se = {k: 0.0 for k in orders}
    if crossing == "monte_carlo" and 4 in high:
        crossing_se[4] = crossing_estimate(curv, np.asarray(tops)[high.index(4)], samples,
                                           jax.random.fold_in(key, 4))[1]
    total, each = np.asarray(total), np.asarray(each)
    if probes is None:
        traces, trace_se, each_se = total, np.zeros(len(powers)), np.zeros(len(powers))
    else:  # total: (probes, K); each_probe: (probes, K, n)
        traces, trace_se = mean_se(total)
        each_se = mean_se(np.asarray(each_probe).mean(2))[1]  # SE of mean_i tr(H_i^k)
    pick = lambda values: {k: values[powers.index(k)] for k in orders}
    tr2 = float(traces[powers.index(2)])
    traces, trace_se, each, each_se = pick(traces), pick(trace_se), pick(each), pick(each_se)
    s_max = {k: ends[k][0] for k in orders}
    return HessianMoments(
        a=a, a_residual=a_residual, traces={k: float(t) for k, t in traces.items()},
        trace_se={k: float(x) for k, x in trace_se.items()},
        frobenius=float(np.sqrt(max(tr2, 0.0))), s_max=s_max, s_min={k: ends[k][1] for k in orders},
        s={k: real_root(v, k) for k, v in s_max.items()}, s_residuals={k: ends[k][2:] for k in orders},
        per_sample_trace_mean={k: float(e.mean()) for k, e in each.items()},
        per_sample_trace_std={k: float(e.std()) for k, e in each.items()},
        per_sample_trace_se={k: float(x) for k, x in each_se.items()}, s_crossing_se=crossing_se,
        batch_size=curv.batch_size, replace=curv.replace, method="matrix_free", n=n, p=p, orders=orders)
