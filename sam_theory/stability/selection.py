"""Which minima SGD and SAM select: Hessian moments at the points they reach from the same init (THEORY.md §5 (iv)).

Theorem A's necessary conditions bound the curvature of any minimum at which stochastic (U)SAM can stay,

  a ≤ (√(1 + 8ρ/η) − 1)/(2ρ) < 2/η,   s_3 ≤ (2η²ρ)^{−1/3},   s_4 ≤ (ηρ)^{−1/2}   (SGD: a ≤ 2/η, s_2 ≤ 1/η),

with a = λ_max(H) and s_k = λ_max(S_k)^{1/k}, S_k = E_ξ[H_ξ^k] − H^k (§4). The [trend] claim (iv) is that the minima
SAM actually reaches have smaller a, s_2, s_3, s_4 than those SGD reaches from the same initialization.

`minima_moments` measures it: for every seed it draws one initialization x_0 = problem.init(key_s) and one batch
sequence (the trainer's PRNG key k_s), trains every optimizer from that same x_0 with that same key — hence the same
batch ξ_t at every step t — by `sam_theory.train.run_many` over seeds (one `lax.scan` over steps, one
compile per optimizer kind), and computes `sam_theory.curvature.hessian_moments` at each final point with the batch size
and sampling used in training. The final losses f(x_T) and max_i f_i(x_T) are returned with the moments, because
Hessian moments are meaningful only near an interpolating minimum (there H_i = J_iᵀJ_i for square losses, §4).

s_3 can be negative (S_3 is indefinite when the H_i do not commute); s_3 is the real cube root of λ_max(S_3), the
quantity that enters the moment identity and the necessary condition through 2η²ρ s_3³, so "smaller" means smaller
as a signed number.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ..curvature import (BatchCurvature, batch_distribution, expected_product, hessian_moments,
                         per_example_hessians, real_root, stochastic_moment)
from ..optim import Optimizer
from ..problems.base import Problem
from ..train import run_many, validate_batch
from ..validation import check_choice, check_int

MOMENTS = ("a", "s2", "s3", "s4")
METHODS = ("auto", "dense", "matrix_free")
DENSE_MAX_PARAMS = 400  # method="auto": dense per-example Hessians (n·p² floats) up to this p, matrix-free above


@dataclasses.dataclass(frozen=True)
class MinimaMoments:
    """Hessian moments at the points each optimizer reached, one entry per seed (arrays of shape (seeds,)).

    Attributes:
      names: the optimizer names (keys of every dict below).
      seeds: the integer seeds (seed s: init key and batch key both derived from ``jax.random.key(s)``).
      a, s2, s3, s4: dict name → array; a = λ_max(H), s_k = real k-th root of λ_max(S_k) (§4). NaN for a run
        that diverged.
      final_loss: dict name → f(x_T) (full training loss at the last step).
      max_example_loss: dict name → max_i f_i(x_T) (≤ tol means every example is interpolated to tol).
      initial_loss: f(x_0) per seed (the same for every optimizer: same init).
      diverged: dict name → bool array (the trainer's divergence flag).
      batch_size, replace, steps, method: how the runs and the moments were computed; p, n: problem sizes.

    ``moment(name, m)``: the per-seed array; ``paired_gap(m, first, second)``: per-seed m(first) − m(second).

    Example (returned by `minima_moments`; `sam_theory.problems.QuadraticSum` has the same Hessians H_i at every
    point, so both optimizers see a = 2, s_2 = 1 and the paired gap is 0 to round-off — the control case; a
    problem with many minima, e.g. a diagonal net, is where the gap says something):
      >>> import numpy as np
      >>> from sam_theory import float64
      >>> Hs = np.array([np.diag([3.0, 2.0]), np.diag([1.0, 0.0])])   # commuting H_1, H_2: H = diag(2, 1)
      >>> from sam_theory.optim import usam      # USAM at ρ = 0 is SGD: one optimizer kind, one compile
      >>> from sam_theory.problems import QuadraticSum
      >>> with float64():
      ...     m = minima_moments(QuadraticSum(Hs), {"SGD": usam(0.2, 0.0), "SAM": usam(0.2, 0.5)}, seeds=[0, 1],
      ...                        steps=60)
      >>> m.names, m.seeds.tolist(), m.moment("SAM", "a").round(6).tolist(), m.moment("SGD", "s2").round(6).tolist()
      (('SGD', 'SAM'), [0, 1], [2.0, 2.0], [1.0, 1.0])
      >>> bool(np.all(np.abs(m.paired_gap("s4", "SGD", "SAM")) < 1e-9)), m.batch_size, m.method, (m.n, m.p)
      (True, 1, 'dense', (2, 2))
    """

    names: tuple
    seeds: np.ndarray
    a: dict
    s2: dict
    s3: dict
    s4: dict
    final_loss: dict
    max_example_loss: dict
    initial_loss: np.ndarray
    diverged: dict
    batch_size: int
    replace: bool
    steps: int
    method: str
    p: int
    n: int

    def moment(self, name: str, moment: str) -> np.ndarray:
        """The per-seed array of ``moment`` ∈ {a, s2, s3, s4} for optimizer ``name``."""
        check_choice("moment", moment, MOMENTS)
        check_choice("name", name, self.names)
        return getattr(self, moment)[name]

    def paired_gap(self, moment: str, first: str, second: str, *, relative: bool = False) -> np.ndarray:
        """Per-seed differences m(first) − m(second) from the same init and batches; with ``relative``, divided
        by |m(first)| (the gap as a fraction of the first optimizer's value)."""
        x, y = self.moment(first, moment), self.moment(second, moment)
        return (x - y) / np.abs(x) if relative else x - y


def _train_group(problem, optimizers, keys, *, steps, batch_size, replace, log_every):
    """Final params (leading axes: optimizer, seed), losses and divergence flags of optimizers of one kind.

    One compile: `sam_theory.train.run_many` with the optimizer stack outside and the (seed, init) stacks zipped
    inside. Seed s uses k_init, k_run = split(key_s) for every optimizer: the same x_0 and the same batches ξ_t.
    """
    k_init, k_run = jax.vmap(jax.random.split, out_axes=1)(keys)
    inits = jax.vmap(problem.init)(k_init)
    out = run_many(problem, list(optimizers), k_run, params=inits, axes=("optimizer", ("seed", "init")),
                   steps=steps, batch_size=batch_size, every=log_every, replace=replace)
    return out.params, np.asarray(out.losses), np.asarray(out.diverged)


def _dense_moments_batched(problem, params, batch_size, replace):
    """a and λ_max(S_k), k = 2, 3, 4, for a stack of points (leading axis), by dense per-example Hessians.

    The set-partition moments of `sam_theory.curvature.stochastic_moment` (§4.1) on a `BatchCurvature` built
    inside the traced function, vmapped over the points: one compile.
    """
    dist = batch_distribution(problem.n, batch_size, replace)

    def one(x):
        Hi = per_example_hessians(problem, x)
        Hi = 0.5 * (Hi + jnp.swapaxes(Hi, 1, 2))
        curv = BatchCurvature(None, Hi, dist, Hi.shape[1], Hi.dtype)
        return jnp.stack([expected_product(curv, ("H",))] + [stochastic_moment(curv, k) for k in (2, 3, 4)])

    # eigvalsh outside jit: several batched `eigh` kernels in one XLA CPU graph can deadlock its thread pool
    # (jaxlib 0.10.2: each blocks a pool thread in ParallelBatchMap); numpy's LAPACK has no such interaction.
    mats = np.asarray(jax.jit(jax.vmap(one))(params))
    mats = 0.5 * (mats + np.swapaxes(mats, -1, -2))
    finite = np.isfinite(mats).all(axis=(-2, -1))  # a diverged run: NaN moments, not a LAPACK failure
    return np.where(finite, np.linalg.eigvalsh(np.where(finite[..., None, None], mats, 0.0))[..., -1], np.nan)


def minima_moments(problem: Problem, optimizers: dict, *, seeds, steps: int, batch_size: int = 1,
                   replace: bool = False, method: str = "auto", log_every: int | None = None,
                   lanczos_iters: int | None = None) -> MinimaMoments:
    """Train every optimizer from the same init and batch sequence per seed; Hessian moments at each end point.

    For seed s: k_init, k_run = split(key(s)); x_0 = problem.init(k_init); every optimizer runs ``steps`` steps of
    `sam_theory.train.run_many` from x_0 with key k_run (so the same batches ξ_t), over the seed stack. At each final
    x_T: a = λ_max(H), s_k = λ_max(S_k)^{1/k} for k = 2, 3, 4 with S_k = E_ξ[H_ξ^k] − H^k for the training batch
    distribution (size ``batch_size``, with or without replacement) — THEORY.md §4, §5 (iv).

    Args:
      problem: the finite sum (a problem with several interpolating minima: not linear regression, §5).
      optimizers: dict name → `Optimizer` (e.g. {"SGD": sgd(η), "SAM": usam(η, ρ)}).
      seeds: iterable of integer seeds (at least one).
      steps, batch_size, replace: the trainer's arguments.
      method: "dense", "matrix_free" or "auto" (dense iff p ≤ 400).
      log_every: loss logging period (default: only f(x_0) and f(x_T) are recorded).
      lanczos_iters: passed to `hessian_moments` (matrix-free).

    Example (`sam_theory.problems.QuadraticSum` with H_1 = diag(3, 2), H_2 = diag(1, 0): ∇²f_i = H_i everywhere, so
    at any end point a = 2, s_2 = 1, s_3 = 6^{1/3}, s_4 = √5 for b = 1 (`batch_moment_matrices`); both runs are
    stable (η = 0.2 < η_c = 0.8 for SGD and 4/13 for USAM at ρ = 0.5) and reach w★ = 0 from the same init):
      >>> import numpy as np
      >>> from sam_theory import float64
      >>> Hs = np.array([np.diag([3.0, 2.0]), np.diag([1.0, 0.0])])   # commuting H_1, H_2: H = diag(2, 1)
      >>> from sam_theory.optim import usam      # USAM at ρ = 0 is SGD: one optimizer kind, one compile
      >>> from sam_theory.problems import QuadraticSum
      >>> with float64():
      ...     m = minima_moments(QuadraticSum(Hs), {"SGD": usam(0.2, 0.0), "SAM": usam(0.2, 0.5)}, seeds=[0, 1],
      ...                        steps=60)
      >>> {k: getattr(m, k)["SAM"].round(6).tolist() for k in ("a", "s2", "s3", "s4")}
      {'a': [2.0, 2.0], 's2': [1.0, 1.0], 's3': [1.817121, 1.817121], 's4': [2.236068, 2.236068]}
      >>> bool(np.all(m.final_loss["SGD"] < 1e-8)), bool(np.all(m.final_loss["SAM"] < 1e-8)), m.steps
      (True, True, 60)
    """
    if not isinstance(optimizers, dict) or not optimizers:
        raise ValueError(f"optimizers must be a non-empty dict name -> Optimizer, got {optimizers!r}")
    for name, opt in optimizers.items():
        if not isinstance(opt, Optimizer):
            raise ValueError(f"optimizers[{name!r}] must be an Optimizer, got {type(opt).__name__}")
    seeds = np.asarray([check_int("seeds", s, minimum=0) for s in np.atleast_1d(seeds)], dtype=int)
    if seeds.size == 0:
        raise ValueError("seeds must contain at least one seed")
    steps = check_int("steps", steps)
    batch_size = validate_batch(problem, batch_size, replace)
    check_choice("method", method, METHODS)
    p = problem.num_params
    method = ("dense" if p <= DENSE_MAX_PARAMS else "matrix_free") if method == "auto" else method
    log_every = steps if log_every is None else check_int("log_every", log_every)
    keys = jax.vmap(jax.random.key)(jnp.asarray(seeds))
    groups = {}
    for name, opt in optimizers.items():
        groups.setdefault(jax.tree.structure(opt), []).append(name)
    num = seeds.size
    values = {m: {} for m in MOMENTS}
    final_loss, max_loss, diverged, initial = {}, {}, {}, None
    per_example = jax.jit(jax.vmap(problem.losses))
    for names in groups.values():
        params, losses, div = _train_group(problem, [optimizers[k] for k in names], keys, steps=steps,
                                           batch_size=batch_size, replace=replace, log_every=log_every)
        flat = jax.tree.map(lambda leaf: leaf.reshape((-1,) + leaf.shape[2:]), params)  # (optimizer·seed, ...)
        if method == "dense":
            ends = _dense_moments_batched(problem, flat, batch_size, replace)
        else:
            ends = np.array([_matrix_free_ends(problem, jax.tree.map(lambda leaf: leaf[j], flat), batch_size,
                                               replace, lanczos_iters, int(seeds[j % num]))
                             for j in range(len(names) * num)])
        ex_max = np.asarray(per_example(flat)).max(axis=1).reshape(len(names), num)
        ends = ends.reshape(len(names), num, len(MOMENTS))
        initial = losses[0, :, 0]
        for g, name in enumerate(names):
            final_loss[name], diverged[name], max_loss[name] = losses[g, :, -1], div[g], ex_max[g]
            for m, (moment, col) in enumerate(zip(MOMENTS, ends[g].T)):
                root = 1 if m == 0 else m + 1
                values[moment][name] = np.where(div[g], np.nan, [real_root(v, root) for v in col])
    order = tuple(optimizers)
    return MinimaMoments(names=order, seeds=seeds, **{m: {k: values[m][k] for k in order} for m in MOMENTS},
                         final_loss={k: final_loss[k] for k in order},
                         max_example_loss={k: max_loss[k] for k in order}, initial_loss=initial,
                         diverged={k: diverged[k] for k in order}, batch_size=batch_size, replace=bool(replace),
                         steps=steps, method=method, p=p, n=problem.n)


def _matrix_free_ends(problem, x, batch_size, replace, lanczos_iters, seed):
    """(a, λ_max(S_2), λ_max(S_3), λ_max(S_4)) at one point by `hessian_moments` on per-example HVPs."""
    curv = BatchCurvature.from_problem(problem, x, batch_size, replace, method="matrix_free")
    hm = hessian_moments(curv, orders=(2, 3, 4), lanczos_iters=lanczos_iters, key=jax.random.key(seed))
    return [hm.a, hm.s_max[2], hm.s_max[3], hm.s_max[4]]
