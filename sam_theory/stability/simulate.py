"""Monte Carlo of the linearized recursion and escape of the nonlinear optimizer (THEORY.md §5, checks (ii)).

- `simulate_linearized`: e_{t+1} = (I − ηA_ξ) e_t with a fresh random batch ξ each step (vmapped over runs, one
  ``lax.scan`` over steps), E‖e_t‖² with standard errors, next to the exact E‖e_t‖² = tr Σ_t from Σ_{t+1} = T(Σ_t).
- `escape_test`: the real optimizer (one `sam_theory.train.run_many` run) started at x* + e_0, ‖e_0‖ = eps, random
  direction; the iterate is observed every ``log_every`` steps and its distance ‖x_t − x*‖ taken from it.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.flatten_util import ravel_pytree

from ..optim.base import Optimizer
from ..problems.base import Problem, as_jax
from ..stats import mean_se
from ..train import run_many, sample_indices, validate_batch
from ..validation import check_int, check_positive
from ..curvature import BatchCurvature
from .moments import apply_symmetrized
from .step_map import check_curvature, check_step, step_map


@dataclasses.dataclass(frozen=True)
class LinearizedSimulation:
    """E‖e_t‖² of the linearized USAM recursion, t = 0..steps (THEORY.md §5).

    Attributes:
      t: 0..steps.  mean_sq: Monte Carlo mean of ‖e_t‖² over runs.  se: its standard error (std/√runs).
      exact: tr Σ_t with Σ_0 = E[e_0 e_0ᵀ] and Σ_{t+1} = T(Σ_t) (exact expectation over batches).
      final: ‖e_T‖² of every run (for tail diagnostics).  num_runs, eta, rho, batch_size, replace.
      e0: "random" (e_0 uniform on the unit sphere, Σ_0 = I/p) or "fixed".

    ``z``: (Monte Carlo mean − exact)/SE per t.

    Example (returned by `simulate_linearized`; commuting H_i, b = 1, at the unstable η = 0.4, ρ = 0.5: the
    one-dimensional rates are E[(1 − ηA_ξ,j)²] = 2.08 and 0.68, so from e_0 uniform on the sphere (Σ_0 = I/2)
    E‖e_t‖² = (2.08^t + 0.68^t)/2 grows):
      >>> import numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import BatchCurvature
      >>> Hs = np.array([np.diag([3.0, 2.0]), np.diag([1.0, 0.0])])   # commuting H_1, H_2: H = diag(2, 1)
      >>> import jax
      >>> with float64():
      ...     curv = BatchCurvature.from_hessians(Hs, batch_size=1)
      ...     sim = simulate_linearized(curv, 0.4, 0.5, 5, 2000, jax.random.key(1))
      >>> sim.e0, sim.t.tolist(), sim.exact.round(6).tolist()
      ('random', [0, 1, 2, 3, 4, 5], [1.0, 1.38, 2.3944, 4.656672, 9.465775, 19.539143])
      >>> from sam_theory.stats import max_abs_z_bound                 # Bonferroni over t = 1..5, level 1e-3
      >>> [round((2.08 ** t + 0.68 ** t) / 2, 6) for t in range(6)], bool(np.abs(sim.z).max() < max_abs_z_bound(5))
      ([1.0, 1.38, 2.3944, 4.656672, 9.465775, 19.539143], True)
    """

    t: np.ndarray
    mean_sq: np.ndarray
    se: np.ndarray
    exact: np.ndarray
    final: np.ndarray
    num_runs: int
    eta: float
    rho: float
    batch_size: int
    replace: bool
    e0: str

    @property
    def z(self) -> np.ndarray:
        """(Monte Carlo mean − exact)/SE at each t (0 where SE = 0, e.g. at t = 0 with a fixed e_0)."""
        diff = self.mean_sq - self.exact
        return np.where(self.se > 0, diff / np.where(self.se > 0, self.se, 1.0), 0.0)


@functools.partial(jax.jit, static_argnames=("steps",))
def _simulate(curv, eta, rho, keys, e0s, *, steps):
    def one(key, e0):
        def body(e, k):
            rows = sample_indices(k, curv.n, curv.batch_size, curv.replace)
            e = step_map(curv, rows, e[:, None], eta, rho)[:, 0]
            return e, jnp.vdot(e, e)
        _, sq = lax.scan(body, e0, jax.random.split(key, steps))
        return jnp.concatenate([jnp.vdot(e0, e0)[None], sq])
    return jax.vmap(one)(keys, e0s)


@functools.partial(jax.jit, static_argnames=("steps",))
def _propagate(curv, eta, rho, sigma0, *, steps):
    def body(x, _):
        x = apply_symmetrized(curv, eta, rho, x)
        return x, jnp.trace(x.reshape(curv.size, curv.size))
    _, tr = lax.scan(body, sigma0.ravel(), None, length=steps)
    return jnp.concatenate([jnp.trace(sigma0)[None], tr])


def propagate_second_moment(curv: BatchCurvature, eta, rho, sigma0, steps: int) -> np.ndarray:
    """tr Σ_t, t = 0..steps, for Σ_{t+1} = T(Σ_t) from the symmetric (p, p) ``sigma0`` [exact, THEORY.md §5]
    (T by set partitions, `sam_theory.stability.moments.second_moment_apply`).

    Example (commuting H_i, b = 1, η = 0.25, ρ = 0.5: from Σ_0 = I/2, Σ_t = diag(g_1^t, g_2^t)/2 with the
    one-dimensional rates g = (0.578125, 0.5), so tr Σ_t = (0.578125^t + 0.5^t)/2):
      >>> import numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import BatchCurvature
      >>> Hs = np.array([np.diag([3.0, 2.0]), np.diag([1.0, 0.0])])   # commuting H_1, H_2: H = diag(2, 1)
      >>> with float64():
      ...     curv = BatchCurvature.from_hessians(Hs, batch_size=1)
      ...     tr = propagate_second_moment(curv, 0.25, 0.5, np.eye(2) / 2, 3)
      >>> tr.round(7).tolist(), [round((0.578125 ** t + 0.5 ** t) / 2, 7) for t in range(4)]
      ([1.0, 0.5390625, 0.2921143, 0.1591129], [1.0, 0.5390625, 0.2921143, 0.1591129])
    """
    check_curvature(curv)
    check_step(eta, rho)
    sigma0 = jnp.asarray(sigma0, curv.dtype)
    if sigma0.shape != (curv.size, curv.size):
        raise ValueError(f"sigma0 must have shape ({curv.size}, {curv.size}), got {sigma0.shape}")
    return np.asarray(_propagate(curv, jnp.asarray(eta, curv.dtype), jnp.asarray(rho, curv.dtype), sigma0,
                                 steps=check_int("steps", steps, minimum=0)))


def simulate_linearized(curv: BatchCurvature, eta, rho, steps: int, num_runs: int, key, *,
                        e0=None) -> LinearizedSimulation:
    """Monte Carlo of e_{t+1} = (I − η(H_ξ + ρH_ξ²)) e_t, ξ a fresh batch each step (THEORY.md §5).

    ``e0=None`` draws e_0 uniformly on the unit sphere per run (Σ_0 = I/p); a (p,) vector fixes it (Σ_0 = e_0e_0ᵀ).
    Batches are drawn as in `sam_theory.train` (uniform without replacement inside a step, or with replacement).
    The exact column propagates Σ_0 by the exact operator T (`propagate_second_moment`): the Monte Carlo mean
    agrees with it within its standard error when the theory and the code are right.

    Example (commuting H_i, b = 1, η = 0.25, ρ = 0.5, e_0 = e_1: each step multiplies e_t by 1 − ηA_ξ ∈ {−0.875,
    0.625}, so E‖e_t‖² = 0.578125^t exactly; 2000 runs agree with it at every t within the Bonferroni bound on
    max |z| over the 5 steps, family-wise level 1e-3, `sam_theory.stats.max_abs_z_bound`):
      >>> import numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import BatchCurvature
      >>> Hs = np.array([np.diag([3.0, 2.0]), np.diag([1.0, 0.0])])   # commuting H_1, H_2: H = diag(2, 1)
      >>> import jax
      >>> with float64():
      ...     curv = BatchCurvature.from_hessians(Hs, batch_size=1)
      ...     sim = simulate_linearized(curv, 0.25, 0.5, 5, 2000, jax.random.key(0), e0=[1.0, 0.0])
      >>> sim.exact.round(6).tolist(), [round(0.578125 ** t, 6) for t in range(6)]
      ([1.0, 0.578125, 0.334229, 0.193226, 0.111709, 0.064582], [1.0, 0.578125, 0.334229, 0.193226, 0.111709, 0.064582])
      >>> from sam_theory.stats import max_abs_z_bound
      >>> bool(np.abs(sim.z).max() < max_abs_z_bound(5)), sim.final.shape
      (True, (2000,))
    """
    pe = check_curvature(curv)
    check_step(eta, rho)
    steps = check_int("steps", steps)
    num_runs = check_int("num_runs", num_runs, minimum=2)
    k_e, k_run = jax.random.split(key)
    if e0 is None:
        e0s = jax.random.normal(k_e, (num_runs, pe.size), pe.dtype)
        e0s = e0s / jnp.linalg.norm(e0s, axis=1, keepdims=True)
        sigma0 = np.eye(pe.size) / pe.size
    else:
        e0 = np.asarray(e0, dtype=float)
        if e0.shape != (pe.size,):
            raise ValueError(f"e0 must have shape ({pe.size},), got {e0.shape}")
        e0s = jnp.broadcast_to(jnp.asarray(e0, pe.dtype), (num_runs, pe.size))
        sigma0 = np.outer(e0, e0)
    sq = np.asarray(_simulate(pe, jnp.asarray(eta, pe.dtype), jnp.asarray(rho, pe.dtype),
                              jax.random.split(k_run, num_runs), e0s, steps=steps))
    exact = propagate_second_moment(pe, eta, rho, sigma0, steps)
    return LinearizedSimulation(np.arange(steps + 1), *mean_se(sq), exact,
                                sq[:, -1], num_runs, float(eta), float(rho), pe.batch_size, pe.replace,
                                "random" if e0 is None else "fixed")


# --- the nonlinear optimizer ------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class EscapeResult:
    """The real optimizer started at x* + e_0, ‖e_0‖ = eps (THEORY.md §5, check (ii)).

    Attributes:
      escaped: max_t ‖x_t − x*‖ > escape_factor·eps, or the run diverged.
      t, distances: ‖x_t − x*‖ at t = 0, log_every, … (after divergence: that of the last finite iterate, held).
      losses: f(x_t) there (NaN after divergence).
      max_distance, final_distance, eps, escape_factor, diverged.

    Example (returned by `escape_test`; USAM on `sam_theory.problems.QuadraticSum` is exactly the linearized
    recursion; full batch at η = 0.45, ρ = 0.5: |1 − η(a_j + ρa_j²)| = 0.8 and 0.325, so ‖x_t − x*‖ ≤ 0.8^t·eps):
      >>> import numpy as np
      >>> from sam_theory import float64
      >>> Hs = np.array([np.diag([3.0, 2.0]), np.diag([1.0, 0.0])])   # commuting H_1, H_2: H = diag(2, 1)
      >>> import jax
      >>> from sam_theory.optim import usam
      >>> from sam_theory.problems import QuadraticSum
      >>> with float64():
      ...     r = escape_test(QuadraticSum(Hs), np.zeros(2), usam(0.45, 0.5), 1e-3, 40, jax.random.key(0),
      ...                     batch_size=2)
      >>> r.escaped, r.diverged, r.t.tolist(), bool(np.all(r.distances <= 0.8 ** r.t * r.eps * (1 + 1e-9)))
      (False, False, [0, 10, 20, 30, 40], True)
    """

    escaped: bool
    t: np.ndarray
    distances: np.ndarray
    losses: np.ndarray
    max_distance: float
    final_distance: float
    eps: float
    escape_factor: float
    diverged: bool


def _flat_params(params, member):
    """The observable of `escape_test`: x_t raveled (its distance to x* is taken outside the run)."""
    return ravel_pytree(params)[0]


@jax.jit
def _distances(flat_trace, x_star_flat, final_flat, diverged):
    """‖x_t − x*‖ per logged step; after divergence (NaN records) the distance of the last finite iterate kept."""
    dist = jnp.linalg.norm(flat_trace - x_star_flat, axis=1)
    held = jnp.linalg.norm(final_flat - x_star_flat)
    return jnp.where(diverged & jnp.isnan(dist), held, dist)


def escape_test(problem: Problem, params_star, optimizer: Optimizer, eps: float, steps: int, key, *,
                batch_size: int = 1, replace: bool = False, log_every: int = 10,
                escape_factor: float = 100.0) -> EscapeResult:
    """Run ``optimizer`` (e.g. `sam_theory.optim.usam`) from x* + e_0 with ‖e_0‖ = ``eps`` in a uniformly random
    direction (drawn with ``key``) for ``steps`` steps; escaped iff the distance to x* ever exceeds
    ``escape_factor``·eps or the run diverges (the linearization predicts E‖e_t‖² ≤ C eps² when r(T) ≤ 1 and
    geometric growth when r(T) > 1, THEORY.md §5). Returns an `EscapeResult` with the distance trace.

    Example (`sam_theory.problems.QuadraticSum` with the commuting H_i and x* = 0: USAM is exactly the linearized
    recursion; full batch b = n, ρ = 0.5: η_c = 2/(a + ρa²) = 0.5, and the iterate leaves x* just above it — the
    factor along e_1 is 1 − 0.55·4 = −1.2, and 1.2^100 ≫ escape_factor = 100):
      >>> import numpy as np
      >>> from sam_theory import float64
      >>> Hs = np.array([np.diag([3.0, 2.0]), np.diag([1.0, 0.0])])   # commuting H_1, H_2: H = diag(2, 1)
      >>> import jax
      >>> from sam_theory.optim import usam
      >>> from sam_theory.problems import QuadraticSum
      >>> with float64():
      ...     prob = QuadraticSum(Hs)
      ...     runs = [escape_test(prob, np.zeros(2), usam(eta, 0.5), 1e-3, 100, jax.random.key(0), batch_size=2)
      ...             for eta in (0.45, 0.55)]
      >>> [r.escaped for r in runs], runs[1].max_distance > 100 * 1e-3
      ([False, True], True)
    """
    check_positive("eps", eps)
    check_positive("escape_factor", escape_factor)
    steps = check_int("steps", steps)
    log_every = check_int("log_every", log_every)
    if steps % log_every:
        raise ValueError(f"steps must be a multiple of log_every={log_every}, got {steps}")
    batch_size = validate_batch(problem, batch_size, replace)
    flat, unravel = ravel_pytree(params_star)
    flat = jnp.asarray(flat, dtype=jnp.result_type(float))
    k_dir, k_run = jax.random.split(key)
    e0 = jax.random.normal(k_dir, flat.shape, flat.dtype)
    x0 = unravel(flat + eps * e0 / jnp.linalg.norm(e0))
    out = run_many(problem, optimizer, k_run, data=as_jax(problem.data), params=x0, observe=_flat_params,
                   every=log_every, steps=steps, batch_size=batch_size, replace=replace, key_per_log=True)
    dist = np.asarray(_distances(out.observed, flat, ravel_pytree(out.params)[0], out.diverged))
    losses = np.asarray(out.losses)
    diverged = bool(out.diverged)
    finite = dist[np.isfinite(dist)]
    max_distance = float(finite.max()) if finite.size else np.inf
    return EscapeResult(bool(diverged or max_distance > escape_factor * eps), np.arange(0, steps + 1, log_every),
                        dist, losses, max_distance, float(dist[-1]), float(eps), float(escape_factor), diverged)
