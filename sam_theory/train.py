"""The compiled trainer: one `jax.jit` around a `lax.scan` over steps (THEORY.md §1–§2).

Batches are drawn per step, uniformly without replacement inside the step (default) or with replacement; with
``batch_size == n`` and ``replace=False`` every step uses the full data in order (deterministic full batch).
The full training loss f(x_t) is recorded at t = 0, log_every, 2·log_every, …, and at t = steps.

Divergence never crashes and never leaves a silent NaN: once the parameters become non-finite, or a recorded
loss is non-finite or exceeds ``max_loss``, the run is flagged ``diverged`` with the step index, the parameters
stay frozen at their last finite value (``History.params_step`` says from which step), and later recorded losses
are NaN.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .optim.base import Batch, Optimizer
from .problems.base import Problem, as_jax, take
from .tree import tree_all_finite, tree_norm
from .validation import check_int, check_key, check_optimizer, check_params, check_problem

DEFAULT_DIVERGENCE_FACTOR = 1e10


class TrainOutput(NamedTuple):
    """Raw arrays of one run (vmappable; `History` wraps them)."""

    losses: jax.Array
    test_losses: jax.Array
    grad_norms: jax.Array
    params: Any
    state: Any
    diverged: jax.Array
    diverged_at: jax.Array
    params_step: jax.Array  # the step t whose x_t ``params`` is (``steps``, or earlier after divergence)


@dataclasses.dataclass
class History:
    """The result of `train`.

    Attributes:
      steps: the steps t at which losses were recorded (0, log_every, …, steps).
      losses: full training loss f(x_t) at those steps (NaN after divergence).
      test_losses: test loss at those steps, or None if the problem has no test data.
      grad_norms: ‖∇f(x_t)‖ at those steps if ``track_grad_norm`` was set, else None.
      params: final parameters x_T; if the run diverged, the last ones kept: x_{params_step}.
      state: final optimizer state.
      diverged: whether the run diverged.
      diverged_at: the step index of divergence, or None.
      config: what was run (problem, optimizer, trainer arguments).
      params_step: the step t of the parameters held in ``params``: ``steps`` for a run that did not diverge;
        after divergence, diverged_at − 1 when the update to step diverged_at turned non-finite (x_{t−1} is the
        last finite point), or diverged_at when the recorded loss there was non-finite or above max_loss (the
        parameters of that step are kept: finite, but possibly huge).
    """

    steps: np.ndarray
    losses: np.ndarray
    test_losses: np.ndarray | None
    grad_norms: np.ndarray | None
    params: Any
    state: Any
    diverged: bool
    diverged_at: int | None
    config: dict
    params_step: int | None = None

    @property
    def final_loss(self) -> float:
        return float(self.losses[-1])


def log_steps(steps: int, log_every: int) -> np.ndarray:
    """0, log_every, 2·log_every, …, and ``steps`` itself if it is not a multiple of ``log_every``."""
    t = np.arange(0, steps + 1, log_every)
    return t if t[-1] == steps else np.append(t, steps)


def sample_indices(key, n: int, batch_size: int, replace: bool):
    """Indices of one batch: uniform without replacement inside the step, or i.i.d. with replacement."""
    if replace:
        return jax.random.randint(key, (batch_size,), 0, n)
    if batch_size == n:
        return jnp.arange(n)
    return jax.random.choice(key, n, (batch_size,), replace=False)


def run(optimizer: Optimizer, params, key, data, test_data=None, *, loss_fn, steps: int, batch_size: int,
        log_every: int = 1, replace: bool = False, max_loss=None, track_grad_norm: bool = False,
        penalty_fn=None, perturb_penalty: bool = False) -> TrainOutput:
    """The pure training function (no jit): vmap it over optimizers, keys or params, then jit.

    ``loss_fn(params, examples)`` is the batch-mean loss f_ξ (e.g. ``problem.batch_loss``); ``data`` and
    ``test_data`` are pytrees of JAX arrays with a leading example axis. ``max_loss=None`` means
    ``DEFAULT_DIVERGENCE_FACTOR · max(f(x_0), 1)``. ``penalty_fn`` (R, e.g. weight decay) and
    ``perturb_penalty`` go to every step's `Batch`; the recorded loss is the data loss f, without R.
    """
    n = jax.tree.leaves(data)[0].shape[0]
    full_loss = lambda p: loss_fn(p, data)
    nan = jnp.full((), jnp.nan, dtype=jnp.result_type(full_loss(params)))

    def record(params, diverged):
        f = full_loss(params)
        tl = loss_fn(params, test_data) if test_data is not None else nan
        gn = tree_norm(jax.grad(full_loss)(params)) if track_grad_norm else nan
        masked = lambda v: jnp.where(diverged, nan, v)
        return f, (masked(f), masked(tl), masked(gn))

    def step(carry, _):
        params, state, key, diverged, diverged_at, t, params_step = carry
        key, k_batch, k_extra, k_opt = jax.random.split(key, 4)
        examples = take(data, sample_indices(k_batch, n, batch_size, replace))
        extra = take(data, sample_indices(k_extra, n, batch_size, replace)) if "extra" in optimizer.needs else None
        full = data if "full" in optimizer.needs else None
        batch = Batch(examples, loss_fn, full=full, extra=extra, penalty_fn=penalty_fn,
                      perturb_penalty=perturb_penalty)
        new_params, new_state = optimizer.step(params, state, batch, k_opt)
        bad = ~tree_all_finite(new_params) & ~diverged
        diverged_at = jnp.where(bad, t + 1, diverged_at)
        diverged = diverged | bad
        keep = lambda old, new: jnp.where(diverged, old, new)
        params = jax.tree.map(keep, params, new_params)
        state = jax.tree.map(keep, state, new_state)
        params_step = jnp.where(diverged, params_step, t + 1)
        return (params, state, key, diverged, diverged_at, t + 1, params_step), None

    def segment(carry, length):
        carry, _ = jax.lax.scan(step, carry, None, length=length)
        params, state, key, diverged, diverged_at, t, params_step = carry
        f, rec = record(params, diverged)
        bad = (~jnp.isfinite(f) | (f > max_loss_)) & ~diverged
        diverged_at = jnp.where(bad, t, diverged_at)
        diverged = diverged | bad
        rec = tuple(jnp.where(diverged, nan, r) for r in rec)
        return (params, state, key, diverged, diverged_at, t, params_step), rec

    state = optimizer.init(params)
    f0, rec0 = record(params, jnp.array(False))
    max_loss_ = DEFAULT_DIVERGENCE_FACTOR * jnp.maximum(f0, 1.0) if max_loss is None else max_loss
    diverged0 = ~jnp.isfinite(f0)
    carry = (params, state, key, diverged0, jnp.where(diverged0, 0, -1), jnp.array(0), jnp.array(0))
    num_full, rest = divmod(steps, log_every)
    carry, recs = jax.lax.scan(lambda c, _: segment(c, log_every), carry, None, length=num_full)
    recs = [jnp.concatenate([r0[None], r]) for r0, r in zip(rec0, recs)]
    if rest:
        carry, rec_last = segment(carry, rest)
        recs = [jnp.concatenate([r, last[None]]) for r, last in zip(recs, rec_last)]
    params, state, _, diverged, diverged_at, _, params_step = carry
    return TrainOutput(recs[0], recs[1], recs[2], params, state, diverged, diverged_at, params_step)


_run_jit = jax.jit(run, static_argnames=("loss_fn", "steps", "batch_size", "log_every", "replace",
                                          "track_grad_norm", "penalty_fn", "perturb_penalty"))


def run_kwargs(problem: Problem, **kwargs) -> dict:
    """The static keyword arguments of `run` that come from ``problem`` (its loss and its penalty)."""
    penalty = problem.penalty if problem.weight_decay else None
    return dict(loss_fn=problem.batch_loss, penalty_fn=penalty, perturb_penalty=bool(problem.perturb_weight_decay),
                **kwargs)


def validate_batch(problem: Problem, batch_size: int, replace: bool) -> int:
    batch_size = check_int("batch_size", batch_size)
    if not replace and batch_size > problem.n:
        raise ValueError(f"batch_size={batch_size} exceeds n={problem.n}; use replace=True or a smaller batch_size")
    return batch_size


def train(problem: Problem, optimizer: Optimizer, *, steps: int, batch_size: int, key, log_every: int = 1,
          replace: bool = False, params=None, max_loss: float | None = None,
          track_grad_norm: bool = False) -> History:
    """Train ``problem`` with ``optimizer`` for ``steps`` steps in one jit-compiled `lax.scan`.

    Args:
      problem: a `sam_theory.problems.Problem`.
      optimizer: an `Optimizer` (`sam_theory.optim.sgd`, `sam`, `usam`, …).
      steps: number of steps T ≥ 0.
      batch_size: b; ``b == n`` with ``replace=False`` is deterministic full-batch.
      key: a JAX PRNG key (batches and any optimizer randomness).
      log_every: record f(x_t) every this many steps (t = 0 and t = steps are always recorded).
      replace: draw each batch with replacement (THEORY.md §6 assumes it) or without (default).
      params: starting point; ``problem.init(key)`` if None.
      max_loss: a recorded loss above this flags divergence (default 1e10 · max(f(x_0), 1)).
      track_grad_norm: also record ‖∇f(x_t)‖ at the logged steps.
    """
    check_problem(problem)
    check_optimizer(optimizer)
    check_key("key", key)
    steps = check_int("steps", steps, minimum=0)
    log_every = check_int("log_every", log_every)
    batch_size = validate_batch(problem, batch_size, replace)
    if max_loss is not None and not float(max_loss) > 0:  # inf is allowed: flag only non-finite losses
        raise ValueError(f"max_loss must be > 0, got {max_loss!r}")
    params = problem.init(key) if params is None else check_params("params", params, problem)
    data = as_jax(problem.data)
    test_data = as_jax(problem.test_data) if problem.test_data is not None else None
    params = jax.tree.map(lambda x: jnp.asarray(x, dtype=jnp.result_type(float)), params)
    out = _run_jit(optimizer, params, key, data, test_data, max_loss=max_loss,
                   **run_kwargs(problem, steps=steps, batch_size=batch_size, log_every=log_every, replace=replace,
                                track_grad_norm=track_grad_norm))
    diverged = bool(out.diverged)
    return History(
        steps=log_steps(steps, log_every) if steps else np.array([0]),
        losses=np.asarray(out.losses),
        test_losses=np.asarray(out.test_losses) if test_data is not None else None,
        grad_norms=np.asarray(out.grad_norms) if track_grad_norm else None,
        params=out.params, state=out.state, diverged=diverged,
        diverged_at=int(out.diverged_at) if diverged else None, params_step=int(out.params_step),
        config={"problem": problem.describe(), "optimizer": optimizer.describe(), "steps": steps,
                "batch_size": batch_size, "log_every": log_every, "replace": replace},
    )
