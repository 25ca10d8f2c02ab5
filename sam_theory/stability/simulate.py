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
    (T by set partitions, `sam_theory.stability.moments.second_moment_apply`)."""
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
