"""The compiled trainer: one `jax.jit` around a `lax.scan` over steps (THEORY.md §1–§2).

Batches are drawn per step, uniformly without replacement inside the step (default) or with replacement; with
``batch_size == n`` and ``replace=False`` every step uses the full data in order (deterministic full batch).
The full training loss f(x_t) is recorded at t = 0, log_every, 2·log_every, …, and at t = steps.

Divergence never crashes and never leaves a silent NaN: once the parameters become non-finite, or a recorded
loss is non-finite or exceeds ``max_loss``, the run is flagged ``diverged`` with the step index, the parameters
stay frozen at their last finite value (``History.params_step`` says from which step), and later recorded losses
are NaN.

Every public name has a runnable example (``pytest --doctest-modules sam_theory/train.py``); the examples share
one problem with a closed form, f(w) = (1/n) Σ_i ½(a_iᵀw − y_i)² with A = I_2, y = (1, −1): f(w) = ¼‖w − y‖²,
∇f(w) = (w − y)/2, so full-batch GD from w_0 = 0 gives w_t − y = (1 − η/2)^t (w_0 − y) and f(w_t) = ½(1 − η/2)^{2t}.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .optim.base import Batch, Optimizer
from .problems.base import Problem, as_jax, stack_trees, take
from .tree import tree_all_finite, tree_norm
from .validation import check_finite_array, check_int, check_key, check_optimizer, check_params, check_problem

__all__ = ["train", "History", "run_many", "TrainOutput", "Member", "run", "stack_optimizers", "log_steps",
           "sample_indices", "validate_batch", "DEFAULT_DIVERGENCE_FACTOR"]

DEFAULT_DIVERGENCE_FACTOR = 1e10


class TrainOutput(NamedTuple):
    """Raw arrays of one run, or of many with leading stack axes (`run_many`); `History` wraps one run.

    ``observed``: the pytree ``observe(x_t, member)`` at the logged steps (leading axis: logged steps; NaN after
    divergence), or None. ``accumulated``: Σ_{s<t} ``accumulate(x_s, member)`` at the logged steps, or None.

    Example (two learning rates stacked: one leading axis, then the 4 logged steps t = 0…3):
      >>> import jax, numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.optim import sgd
      >>> from sam_theory.problems import LinearRegression
      >>> prob = LinearRegression(np.eye(2), np.array([1.0, -1.0]))
      >>> with float64():
      ...     out = run_many(prob, [sgd(0.5), sgd(1.0)], jax.random.key(0), steps=3, batch_size=2)
      >>> out.losses.shape, out.params.shape, out.diverged.tolist(), out.observed is None
      ((2, 4), (2, 2), [False, False], True)
    """

    losses: jax.Array
    test_losses: jax.Array
    grad_norms: jax.Array
    params: Any
    state: Any
    diverged: jax.Array
    diverged_at: jax.Array
    params_step: jax.Array  # the step t whose x_t ``params`` is (``steps``, or earlier after divergence)
    observed: Any = None
    accumulated: Any = None


class Member(NamedTuple):
    """What ``observe`` and ``accumulate`` see of one run: the problem (its loss structure), the run's optimizer
    (its hyperparameters, e.g. ``member.optimizer.lr``), and the run's own data (a member of a data stack).

    Example (observe ‖∇f(x_t)‖ through ``member.loss``: it equals the trainer's own ``track_grad_norm`` record):
      >>> import jax, numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.optim import sgd
      >>> from sam_theory.problems import LinearRegression
      >>> prob = LinearRegression(np.eye(2), np.array([1.0, -1.0]))
      >>> grad_norm = lambda x, member: jax.numpy.linalg.norm(jax.grad(member.loss)(x))
      >>> with float64():
      ...     out = run_many(prob, sgd(0.5), jax.random.key(0), observe=grad_norm, steps=3, batch_size=2,
      ...                    track_grad_norm=True)
      >>> np.allclose(out.observed, out.grad_norms, rtol=1e-12), round(float(out.observed[0]), 6)  # ‖y‖/2 = 1/√2
      (True, 0.707107)
    """

    problem: Problem
    optimizer: Optimizer
    data: Any
    test_data: Any

    def loss(self, params):
        """f(params) on this run's training data (without the penalty R)."""
        return self.problem.batch_loss(params, self.data)


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

    Example (GD with η = 5 multiplies f by (1 − η/2)² = 2.25 per step: f(w_t) = ½·2.25^t first exceeds the default
    ``max_loss`` = 1e10 · max(f(w_0), 1) = 1e10 at t = 30: the run is flagged there, keeps w_30, and records NaN
    from t = 30 on):
      >>> import jax, numpy as np
      >>> from sam_theory import float64, train
      >>> from sam_theory.optim import sgd
      >>> from sam_theory.problems import LinearRegression
      >>> prob = LinearRegression(np.eye(2), np.array([1.0, -1.0]))
      >>> with float64():
      ...     hist = train(prob, sgd(5.0), steps=40, batch_size=2, key=jax.random.key(0))
      >>> hist.diverged, hist.diverged_at, hist.params_step, bool(np.isnan(hist.losses[30:]).all())
      (True, 30, 30, True)
      >>> f"{hist.losses[29]:.6e}", f"{0.5 * 2.25 ** 29:.6e}"    # the last recorded loss, below 1e10
      ('8.170771e+09', '8.170771e+09')
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
        """f(x_T): the last recorded training loss (NaN if the run diverged)."""
        return float(self.losses[-1])


def log_steps(steps: int, log_every: int) -> np.ndarray:
    """0, log_every, 2·log_every, …, and ``steps`` itself if it is not a multiple of ``log_every``.

    Example:
      >>> log_steps(10, 4).tolist(), log_steps(8, 4).tolist()
      ([0, 4, 8, 10], [0, 4, 8])
    """
    t = np.arange(0, steps + 1, log_every)
    return t if t[-1] == steps else np.append(t, steps)


SELECT_MAX_WORK = 16384  # b·n up to which `sample_indices` selects the b smallest sort keys instead of sorting


def _one_sort_round(n: int) -> bool:
    """Whether `jax.random.permutation` of n items sorts once (its heuristic: ⌈3 ln n / ln(2³² − 1)⌉ rounds)."""
    return int(np.ceil(3 * np.log(max(1, n)) / np.log(np.iinfo(np.uint32).max))) == 1


def _first_of_permutation(key, n: int, b: int):
    """``jax.random.permutation(key, n)[:b]`` bit for bit, without the sort, when it sorts once.

    permutation draws 32-bit sort keys k = bits(split(key)[1], (n,)) and stably sorts arange(n) by them; its first b
    entries are the indices of the b smallest keys, ties to the lower index (`_smallest_first`).
    """
    return _smallest_first(jax.random.bits(jax.random.split(key)[1], (n,), jnp.uint32), b)


def _smallest_first(bits, b: int):
    """``argsort(bits, stable)[:b]``: the indices of the b smallest of the uint32 ``bits``, ties to the lower index.

    Picked by b passes of a min over n (b·n work, vectorized; XLA's CPU sort calls a comparator per comparison:
    several times slower under vmap at small b).
    """
    top = jnp.asarray(np.iinfo(np.uint32).max, jnp.uint32)

    def pick(taken, _):
        smallest = jnp.min(jnp.where(taken, top, bits))
        j = jnp.argmax(~taken & (bits == smallest))  # the first untaken index holding the smallest key
        return taken.at[j].set(True), j

    return jax.lax.scan(pick, jnp.zeros(bits.shape[0], bool), None, length=b)[1]


def sample_indices(key, n: int, batch_size: int, replace: bool):
    """Indices of one batch: uniform without replacement inside the step, or i.i.d. with replacement.

    Without replacement the batch is ``jax.random.choice(key, n, (b,), replace=False)`` (= the first b of
    ``jax.random.permutation(key, n)``), computed by `_first_of_permutation` where that is exact and cheaper.

    Example (b = n without replacement is the full data in order; b < n is ``jax.random.choice`` bit for bit):
      >>> import jax
      >>> key = jax.random.key(0)
      >>> sample_indices(key, 5, 5, replace=False).tolist()
      [0, 1, 2, 3, 4]
      >>> idx = sample_indices(key, 10, 3, replace=False)
      >>> idx.shape, len(set(idx.tolist())), bool((idx == jax.random.choice(key, 10, (3,), replace=False)).all())
      ((3,), 3, True)
    """
    if replace:
        return jax.random.randint(key, (batch_size,), 0, n)
    if batch_size == n:
        return jnp.arange(n)
    if _one_sort_round(n) and batch_size * n <= SELECT_MAX_WORK:
        return _first_of_permutation(key, n, batch_size)
    return jax.random.choice(key, n, (batch_size,), replace=False)


def _nan_after(diverged, tree):
    """``tree`` with its inexact leaves replaced by NaN where ``diverged`` (integer leaves are kept)."""
    def mask(x):
        x = jnp.asarray(x)
        return jnp.where(diverged, jnp.nan, x) if jnp.issubdtype(x.dtype, jnp.inexact) else x
    return jax.tree.map(mask, tree)


def run(problem: Problem, optimizer: Optimizer, params, key, data, test_data=None, *, steps: int,
        batch_size: int, log_every: int = 1, replace: bool = False, max_loss=None, track_grad_norm: bool = False,
        observe: Callable | None = None, accumulate: Callable | None = None,
        key_per_log: bool = False) -> TrainOutput:
    """One training run, pure (no jit): `run_many` vmaps it over its stacks and jits it.

    The loss is ``problem.batch_loss`` (f_ξ, which reads no data arrays of ``problem``); ``data`` and ``test_data``
    are pytrees of JAX arrays with a leading example axis. The penalty R (weight decay) and its perturbation flag
    come from ``problem`` and go to every step's `Batch`; the recorded loss is the data loss f, without R.
    ``max_loss=None`` means ``DEFAULT_DIVERGENCE_FACTOR · max(f(x_0), 1)``. ``observe(x_t, member)`` is recorded
    with the losses at t = 0, log_every, …, steps; ``accumulate(x_t, member)`` is summed over the steps t taken
    (evaluated at x_t before step t) and its running sum recorded at the same steps (``member``: a `Member`).
    ``key_per_log``: the k-th segment of ``log_every`` steps starts its key chain from ``split(key, K)[k]`` (K
    segments, the last one possibly shorter) instead of continuing one chain from ``key`` over all steps.

    Example (full-batch GD, η = 0.5, from w_0 = 0: f(w_t) = ½(1 − η/2)^{2t} = ½·0.5625^t):
      >>> import jax, jax.numpy as jnp, numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.optim import sgd
      >>> from sam_theory.problems import LinearRegression, as_jax
      >>> prob = LinearRegression(np.eye(2), np.array([1.0, -1.0]))
      >>> with float64():
      ...     out = run(prob, sgd(0.5), jnp.zeros(2), jax.random.key(0), as_jax(prob.data), steps=3, batch_size=2)
      >>> np.round(np.asarray(out.losses), 6).tolist(), int(out.params_step), bool(out.diverged)
      ([0.5, 0.28125, 0.158203, 0.088989], 3, False)
    """
    loss_fn = problem.batch_loss
    penalty_fn = problem.penalty if problem.weight_decay else None
    perturb_penalty = bool(problem.perturb_weight_decay)
    member = Member(problem, optimizer, data, test_data)
    n = jax.tree.leaves(data)[0].shape[0]
    full_loss = lambda p: loss_fn(p, data)
    nan = jnp.full((), jnp.nan, dtype=jnp.result_type(full_loss(params)))

    def record(params, acc):
        f = full_loss(params)
        tl = loss_fn(params, test_data) if test_data is not None else nan
        gn = tree_norm(jax.grad(full_loss)(params)) if track_grad_norm else nan
        obs = observe(params, member) if observe is not None else None
        return f, (f, tl, gn, obs, acc)

    def mask(diverged, rec):
        *values, acc = rec
        return (*_nan_after(diverged, tuple(values)), acc)

    def step(carry, _):
        params, state, key, diverged, diverged_at, t, params_step, acc = carry
        key, k_batch, k_extra, k_opt = jax.random.split(key, 4)
        examples = take(data, sample_indices(k_batch, n, batch_size, replace))
        extra = take(data, sample_indices(k_extra, n, batch_size, replace)) if "extra" in optimizer.needs else None
        full = data if "full" in optimizer.needs else None
        batch = Batch(examples, loss_fn, full=full, extra=extra, penalty_fn=penalty_fn,
                      perturb_penalty=perturb_penalty)
        if accumulate is not None:
            acc = jax.tree.map(lambda a, v: a + jnp.where(diverged, 0, v), acc, accumulate(params, member))
        new_params, new_state = optimizer.step(params, state, batch, k_opt)
        bad = ~tree_all_finite(new_params) & ~diverged
        diverged_at = jnp.where(bad, t + 1, diverged_at)
        diverged = diverged | bad
        keep = lambda old, new: jnp.where(diverged, old, new)
        params = jax.tree.map(keep, params, new_params)
        state = jax.tree.map(keep, state, new_state)
        params_step = jnp.where(diverged, params_step, t + 1)
        return (params, state, key, diverged, diverged_at, t + 1, params_step, acc), None

    def segment(carry, length, seg_key=None):
        if seg_key is not None:  # key_per_log: this segment's own key chain
            carry = (*carry[:2], seg_key, *carry[3:])
        carry, _ = jax.lax.scan(step, carry, None, length=length)
        params, state, key, diverged, diverged_at, t, params_step, acc = carry
        f, rec = record(params, acc)
        bad = (~jnp.isfinite(f) | (f > max_loss_)) & ~diverged
        diverged_at = jnp.where(bad, t, diverged_at)
        diverged = diverged | bad
        return (params, state, key, diverged, diverged_at, t, params_step, acc), mask(diverged, rec)

    state = optimizer.init(params)
    acc0 = None
    if accumulate is not None:
        acc0 = jax.tree.map(lambda v: jnp.zeros(v.shape, v.dtype), jax.eval_shape(lambda p: accumulate(p, member), params))
    f0, rec0 = record(params, acc0)
    max_loss_ = DEFAULT_DIVERGENCE_FACTOR * jnp.maximum(f0, 1.0) if max_loss is None else max_loss
    diverged0 = ~jnp.isfinite(f0)
    rec0 = mask(diverged0, rec0)
    carry = (params, state, key, diverged0, jnp.where(diverged0, 0, -1), jnp.array(0), jnp.array(0), acc0)
    num_full, rest = divmod(steps, log_every)
    seg_keys = jax.random.split(key, num_full + bool(rest)) if key_per_log else None
    carry, recs = jax.lax.scan(lambda c, k: segment(c, log_every, k), carry,
                               None if seg_keys is None else seg_keys[:num_full], length=num_full)
    recs = jax.tree.map(lambda r0, r: jnp.concatenate([r0[None], r]), rec0, recs)
    if rest:
        carry, rec_last = segment(carry, rest, None if seg_keys is None else seg_keys[num_full])
        recs = jax.tree.map(lambda r, last: jnp.concatenate([r, last[None]]), recs, rec_last)
    params, state, _, diverged, diverged_at, _, params_step, _ = carry
    losses, test_losses, grad_norms, observed, accumulated = recs
    return TrainOutput(losses, test_losses, grad_norms, params, state, diverged, diverged_at, params_step, observed,
                       accumulated)


# --- run_many: every training run of the package goes through here --------------------------------------------

STACKS = ("optimizer", "seed", "data", "init")
TRACES = [0]  # how many times a run_many member was traced (= compiled); sweep and tests read it


def _axes(axes) -> tuple:
    """Normalize ``axes`` to a tuple of tuples of stack names (each group is zipped; groups are an outer product)."""
    groups = []
    for entry in axes:
        group = (entry,) if isinstance(entry, str) else tuple(entry)
        if not group:
            raise ValueError(f"axes: empty group in {axes!r}")
        for name in group:
            if name not in STACKS:
                raise ValueError(f"axes: unknown stack {name!r}; stacks are {STACKS}")
        groups.append(group)
    names = [n for g in groups for n in g]
    if len(set(names)) != len(names):
        raise ValueError(f"axes: a stack appears twice in {axes!r}")
    return tuple(groups)


def _run_many(problem, optimizers, keys, data, test_data, params, max_loss, *, axes, steps, batch_size, every,
              replace, track_grad_norm, observe, accumulate, key_per_log):
    dtype = jnp.result_type(float)

    def member(opt, key, data, test_data, params):
        TRACES[0] += 1
        p0 = problem.init(key) if params is None else params
        p0 = jax.tree.map(lambda x: jnp.asarray(x, dtype=dtype), p0)
        return run(problem, opt, p0, key, data, test_data, steps=steps, batch_size=batch_size, log_every=every,
                   replace=replace, max_loss=max_loss, track_grad_norm=track_grad_norm, observe=observe,
                   accumulate=accumulate, key_per_log=key_per_log)

    fn = member
    for group in reversed(axes):
        in_axes = tuple(0 if name in group else None for name in ("optimizer", "seed", "data", "data", "init"))
        fn = jax.vmap(fn, in_axes=in_axes)
    return fn(optimizers, keys, data, test_data, params)


_run_many_jit = jax.jit(_run_many, static_argnames=("problem", "axes", "steps", "batch_size", "every", "replace",
                                                    "track_grad_norm", "observe", "accumulate", "key_per_log"))


def stack_optimizers(optimizers) -> Optimizer:
    """One `Optimizer` whose hyperparameters carry a leading axis over ``optimizers`` (one kind, same options).

    Example:
      >>> from sam_theory import float64
      >>> from sam_theory.optim import sam
      >>> with float64():
      ...     opt = stack_optimizers([sam(0.1, 0.05), sam(0.2, 0.05)])
      >>> opt.name, opt.lr.tolist(), opt.rho.tolist()
      ('sam', [0.1, 0.2], [0.05, 0.05])
    """
    optimizers = list(optimizers)
    if not optimizers or not all(isinstance(o, Optimizer) for o in optimizers):
        raise ValueError("optimizers must be a non-empty sequence of Optimizer")
    if len({jax.tree.structure(o) for o in optimizers}) != 1:
        raise ValueError(f"optimizers must share one kind and static options to be stacked, got "
                         f"{[o.name for o in optimizers]}")
    return stack_trees([jax.tree.map(lambda x: jnp.asarray(x, dtype=jnp.result_type(float)), o)
                        for o in optimizers])


def run_many(problem: Problem, optimizers, keys, *, data=None, test_data=None, params=None, axes=None,
             observe: Callable | None = None, accumulate: Callable | None = None, every: int = 1, steps: int,
             batch_size: int, replace: bool = False, max_loss=None, track_grad_norm: bool = False,
             key_per_log: bool = False) -> TrainOutput:
    """Many training runs in one jit-compiled `lax.scan` over steps, vmapped over explicit stacks (THEORY.md §1–§2).

    Stacks (each either shared by every run, or stacked along a leading axis):
      ``"optimizer"``: ``optimizers`` — an `Optimizer`, or a sequence of one kind (stacked by `stack_optimizers`),
        or an `Optimizer` whose hyperparameters already carry a leading axis;
      ``"seed"``: ``keys`` — a PRNG key or an array of keys (batches, optimizer randomness, and the init when
        ``params`` is None: x_0 = problem.init(key), as in `train`);
      ``"data"``: ``data`` and ``test_data`` — the problem's own (default) or pytrees stacked over data sets
        (``problem`` then supplies only the loss structure: ``batch_loss`` reads no data arrays);
      ``"init"``: ``params`` — one starting point or a stack of them.
    ``axes`` names the stacked ones and how they combine: a tuple of groups, the output carrying one leading axis
    per group in that order (an outer product); the stacks inside a group (a tuple) are zipped along one axis.
    E.g. ``axes=("optimizer", ("seed", "init"))`` trains every optimizer from every (key, x_0) pair. Default: the
    optimizer stack if ``optimizers`` is a sequence, then the seed stack if ``keys`` has a leading axis.

    Observables: ``observe(x_t, member) -> pytree`` is recorded with the losses at t = 0, every, 2·every, …, steps
    (e.g. λ_max by a few Lanczos steps, c = u² − v²); ``accumulate(x_t, member) -> pytree`` is summed over every
    step taken (at x_t, before the step) and its running sum is recorded at the same steps. ``member`` is a
    `Member`: the problem, this run's optimizer and data. Both are static: pass the same function object to reuse
    a compile.

    Random stream: one key chain per run from its key (``key, k_batch, k_extra, k_opt = split(key, 4)`` each
    step); ``key_per_log=True`` restarts the chain every ``every`` steps from ``split(key, segments)[k]`` (the
    stream of `sam_theory.stability.escape_test`, see `run`).

    Divergence (as in `train`): once a run's parameters become non-finite, or a recorded loss is non-finite or
    exceeds ``max_loss``, it is flagged (``diverged``, ``diverged_at``), its parameters stay frozen at their last
    finite value and its later records (losses, observations) are NaN; runs never influence each other.

    Returns a `TrainOutput` of JAX arrays, each with the leading stack axes, then (for records) the logged steps
    ``log_steps(steps, every)``.

    Example (two learning rates × three seeds in one compile; full-batch GD from w_0 = 0 is seed-free and follows
    f(w_t) = ½(1 − η/2)^{2t}; ``observe`` records w_t, which is y(1 − (1 − η/2)^t)):
      >>> import jax, numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.optim import sgd
      >>> from sam_theory.problems import LinearRegression
      >>> prob = LinearRegression(np.eye(2), np.array([1.0, -1.0]))
      >>> keys = jax.random.split(jax.random.key(0), 3)
      >>> with float64():
      ...     out = run_many(prob, [sgd(0.5), sgd(1.0)], keys, observe=lambda w, member: w, every=2, steps=5,
      ...                    batch_size=2)
      >>> out.losses.shape, out.observed.shape        # (lr, seed, t = 0, 2, 4, 5) and w_t ∈ R² at those t
      ((2, 3, 4), (2, 3, 4, 2))
      >>> lr, t = np.array([0.5, 1.0])[:, None, None], log_steps(5, 2)
      >>> np.allclose(out.losses, 0.5 * (1 - lr / 2) ** (2 * t), rtol=1e-12)
      True
      >>> np.allclose(out.observed[..., 0], 1 - (1 - lr / 2) ** t, rtol=1e-12)
      True
    """
    check_problem(problem)
    steps = check_int("steps", steps, minimum=0)
    every = check_int("every", every)
    batch_size = validate_batch(problem, batch_size, replace)
    if max_loss is not None and not float(max_loss) > 0:  # inf is allowed: flag only non-finite losses
        raise ValueError(f"max_loss must be > 0, got {max_loss!r}")
    if isinstance(optimizers, (list, tuple)):
        optimizers = stack_optimizers(optimizers)
        default = ["optimizer"]
    elif isinstance(optimizers, Optimizer):
        default = []
    else:
        raise ValueError(f"optimizers must be an Optimizer or a sequence of them, got {type(optimizers).__name__}")
    keys = jnp.asarray(keys) if not isinstance(keys, jax.Array) else keys
    key_ndim = keys.ndim if jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key) else keys.ndim - 1
    if key_ndim not in (0, 1):
        raise ValueError(f"keys must be one PRNG key or a 1-D array of keys, got shape {keys.shape}")
    default += ["seed"] if key_ndim == 1 else []
    axes = _axes(default if axes is None else axes)
    stacked = {n for g in axes for n in g}
    if data is None:
        if "data" in stacked:
            raise ValueError("axes names the 'data' stack but no data were given")
        data = as_jax(problem.data)
        test_data = as_jax(problem.test_data) if problem.test_data is not None else None
    if params is None and "init" in stacked:
        raise ValueError("axes names the 'init' stack but no params were given")
    if params is not None:
        for leaf in jax.tree.leaves(params):
            check_finite_array("params", leaf)
        params = jax.tree.map(lambda x: jnp.asarray(x, dtype=jnp.result_type(float)), params)
    if "seed" in stacked and key_ndim != 1:
        raise ValueError("axes names the 'seed' stack but keys is a single key")
    return _run_many_jit(problem, optimizers, keys, data, test_data, params, max_loss, axes=axes, steps=steps,
                         batch_size=batch_size, every=every, replace=bool(replace),
                         track_grad_norm=bool(track_grad_norm), observe=observe, accumulate=accumulate,
                         key_per_log=bool(key_per_log))


def validate_batch(problem: Problem, batch_size: int, replace: bool) -> int:
    """``batch_size`` as an int ≥ 1, checked against ``problem.n`` (without replacement b ≤ n); else `ValueError`.

    Example:
      >>> import numpy as np
      >>> from sam_theory.problems import LinearRegression
      >>> prob = LinearRegression(np.eye(2), np.array([1.0, -1.0]))
      >>> validate_batch(prob, 2, replace=False), validate_batch(prob, 5, replace=True)
      (2, 5)
      >>> validate_batch(prob, 3, replace=False)
      Traceback (most recent call last):
      ...
      ValueError: batch_size=3 exceeds n=2; use replace=True or a smaller batch_size
    """
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

    Returns a `History`.

    Example (full-batch GD, η = 0.5, on f(w) = ¼‖w − y‖² from w_0 = 0: f(w_t) = ½(1 − η/2)^{2t} = ½·0.5625^t):
      >>> import jax, numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.optim import sgd
      >>> from sam_theory.problems import LinearRegression
      >>> prob = LinearRegression(np.eye(2), np.array([1.0, -1.0]))
      >>> with float64():
      ...     hist = train(prob, sgd(0.5), steps=3, batch_size=2, key=jax.random.key(0))
      >>> hist.steps.tolist(), hist.losses.round(6).tolist()
      ([0, 1, 2, 3], [0.5, 0.28125, 0.158203, 0.088989])
      >>> np.allclose(hist.losses, 0.5 * 0.5625 ** hist.steps, rtol=1e-12), hist.diverged
      (True, False)
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
    test_data = problem.test_data
    out = run_many(problem, optimizer, key, params=params, steps=steps, batch_size=batch_size, every=log_every,
                   replace=replace, max_loss=max_loss, track_grad_norm=track_grad_norm)
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
