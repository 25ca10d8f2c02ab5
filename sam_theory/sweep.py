"""Hyperparameter sweeps: one compiled, vmapped training run over a whole grid (THEORY.md §2, §10.6).

``sweep(problem, method, grid={"lr": [...], "rho": [...], "seed": [...]}, steps=..., batch_size=...)`` trains
``method(**hparams, **method_kwargs)`` at every point of the Cartesian product of the grid axes. The grid is
flattened; every hyperparameter axis becomes an array leaf of the `Optimizer` pytree (its ``hparams``), so one
`sam_theory.train.run_many` call over the flattened grid (the optimizer and seed stacks zipped), compiled once,
trains every configuration. The axis
``"seed"`` gives the PRNG key ``jax.random.key(seed)`` that draws the batches and the initialization
``problem.init(key)``, exactly as ``train(problem, opt, key=jax.random.key(seed))`` does, so each member equals a
direct `train` call.

Long sweeps run in chunks of ``chunk_size`` configurations; the grid is padded to a whole number of chunks (the
padding repeats configuration 0 and is dropped), so the same compiled function serves every chunk. With
``sharded=True`` each chunk is split over ``jax.devices()`` (a `NamedSharding` over a 1-D mesh; the chunk is
padded to a multiple of the device count) — after `jax.distributed.initialize`, the devices of every process: the
mesh is global, each process holds and writes its own rows, and the rows are gathered so that every process
returns the whole result. With ``out_dir`` every finished chunk is written atomically next to a manifest that
identifies the sweep by content; a re-run of the same sweep loads the finished chunks and computes only the
missing ones, a different sweep in the folder is refused (`sam_theory.sweep_store`).

Divergence: `run` freezes a member's parameters at the step its update turns non-finite (or its loss exceeds
``max_loss``) and NaN-masks its later records; vmap keeps members independent, so a diverging configuration never
touches the others. `SweepResult.diverged` flags it and ``diverged_at`` gives the step (−1 if none).

The examples (``pytest --doctest-modules sam_theory/sweep.py``) sweep full-batch GD on f(w) = ¼‖w − y‖² (A = I_2,
y = (1, −1)), whose losses from w_0 = 0 have the closed form f(w_t) = ½(1 − η/2)^{2t} (`sam_theory.train`).
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from . import optim
from .optim.base import Optimizer
from .problems.base import Problem, as_jax
from .sweep_store import SweepStore, digest, problem_fingerprint
from .train import TRACES, log_steps, run_many, validate_batch
from .validation import check_finite_array, check_int, check_params, check_problem

SEED_AXIS = "seed"
MESH_AXIS = "grid"


@dataclasses.dataclass(frozen=True, eq=False)
class SweepResult:
    """The arrays of a sweep, with named axes (the grid's keys, in order).

    Attributes:
      method: the optimizer's name.
      axes: the axis names, e.g. ``("lr", "rho", "seed")``.
      coords: ``{axis: values}`` (NumPy arrays).
      steps: the logged steps t = 0, log_every, …, steps.
      losses: full training loss f(x_t), shape ``(*grid shape, len(steps))``; NaN after divergence.
      test_losses: test loss at the logged steps (same shape), or None without test data.
      test_accuracy: final test accuracy (grid shape) for classification problems, else None.
      grad_norms: ‖∇f(x_t)‖ at the logged steps (same shape as losses), or None if not tracked.
      diverged: bool, grid shape.  diverged_at: step of divergence, −1 where the member did not diverge.
      params: final parameters, each leaf with leading grid shape (``keep_params=True``), else None.
      info: how it ran: ``compiles`` (traces of the member function in this call), ``chunks``,
        ``chunks_computed``, ``chunks_loaded``, ``chunk_size``, ``num_devices``, ``output_devices`` (devices the
        last computed chunk's output was spread over), ``seconds``.

    Example (a 2 × 3 grid of learning rate × seed; ``sel`` drops the selected axis):
      >>> import numpy as np
      >>> from sam_theory import float64, sweep
      >>> from sam_theory.problems import LinearRegression
      >>> prob = LinearRegression(np.eye(2), np.array([1.0, -1.0]))
      >>> with float64():
      ...     res = sweep(prob, "sgd", {"lr": [0.5, 1.5], "seed": [0, 1, 2]}, steps=4, batch_size=2, progress=False)
      >>> res.method, res.axes, res.shape, res.losses.shape, res.steps.tolist()
      ('sgd', ('lr', 'seed'), (2, 3), (2, 3, 5), [0, 1, 2, 3, 4])
      >>> one = res.sel(lr=1.5)
      >>> one.axes, np.allclose(one.final_losses, 0.5 * (1 - 1.5 / 2) ** 8, rtol=1e-12), bool(res.diverged.any())
      (('seed',), True, False)
      >>> sorted(res.to_dict())[:4]
      ['axes', 'coords', 'diverged', 'diverged_at']
    """

    method: str
    axes: tuple
    coords: dict
    steps: np.ndarray
    losses: np.ndarray
    test_losses: np.ndarray | None
    test_accuracy: np.ndarray | None
    grad_norms: np.ndarray | None
    diverged: np.ndarray
    diverged_at: np.ndarray
    params: Any = None
    info: dict = dataclasses.field(default_factory=dict)

    @property
    def shape(self) -> tuple:
        """The grid shape: one length per axis, in ``axes`` order."""
        return tuple(len(self.coords[a]) for a in self.axes)

    @property
    def final_losses(self) -> np.ndarray:
        """f(x_T) per configuration (grid shape; NaN where diverged)."""
        return self.losses[..., -1]

    def sel(self, **selection) -> "SweepResult":
        """Select by axis value, e.g. ``res.sel(lr=0.1, rho=0.05)``; the selected axes are dropped.

        A value matches an axis value when they agree to a relative 1e-9 (float grids are rebuilt exactly).
        """
        index = [slice(None)] * len(self.axes)
        for name, value in selection.items():
            if name not in self.axes:
                raise ValueError(f"sel: unknown axis {name!r}; axes are {self.axes}")
            values = np.asarray(self.coords[name])
            hits = np.flatnonzero(np.isclose(values, value, rtol=1e-9, atol=0))
            if hits.size == 0:
                raise ValueError(f"sel: {name}={value!r} is not on the axis {name} = {values.tolist()}")
            index[self.axes.index(name)] = int(hits[0])
        index = tuple(index)
        keep = tuple(a for a in self.axes if a not in selection)
        pick = lambda x: None if x is None else np.asarray(x)[index]
        return dataclasses.replace(
            self, axes=keep, coords={a: self.coords[a] for a in keep}, losses=pick(self.losses),
            test_losses=pick(self.test_losses), test_accuracy=pick(self.test_accuracy),
            grad_norms=pick(self.grad_norms), diverged=pick(self.diverged), diverged_at=pick(self.diverged_at),
            params=None if self.params is None else jax.tree.map(lambda x: np.asarray(x)[index], self.params))

    def to_dict(self) -> dict:
        """Plain dict: ``method``, ``axes``, ``coords`` (lists), ``steps`` and the arrays (NumPy, None if absent)."""
        return {"method": self.method, "axes": list(self.axes),
                "coords": {a: np.asarray(v).tolist() for a, v in self.coords.items()}, "steps": self.steps,
                "losses": self.losses, "test_losses": self.test_losses, "test_accuracy": self.test_accuracy,
                "grad_norms": self.grad_norms, "diverged": self.diverged, "diverged_at": self.diverged_at,
                "info": dict(self.info)}


# --- argument handling ------------------------------------------------------------------------------------------

def resolve_method(method) -> Callable[..., Optimizer]:
    """An optimizer constructor, or its name in `sam_theory.optim` (e.g. ``"sam"``).

    Example:
      >>> from sam_theory import optim
      >>> resolve_method("sam") is optim.sam, resolve_method(optim.usam) is optim.usam
      (True, True)
      >>> resolve_method("Optimizer")  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      ValueError: method 'Optimizer' is not an optimizer constructor of sam_theory.optim: [...'sam', ...]
    """
    if isinstance(method, str):
        ctor = getattr(optim, method, None)
        if ctor is None or not callable(ctor) or method.startswith("_") or method in ("Batch", "Optimizer"):
            names = sorted(n for n in getattr(optim, "__all__", []) if n[0].islower() and callable(getattr(optim, n)))
            raise ValueError(f"method {method!r} is not an optimizer constructor of sam_theory.optim: {names}")
        return ctor
    if not callable(method):
        raise ValueError(f"method must be an optimizer constructor or its name, got {method!r}")
    return method


def _check_grid(grid, ctor, method_kwargs) -> tuple[dict, dict]:
    """Validate ``grid``; return ``({axis: values}, {hparam axis: float values})``."""
    if not isinstance(grid, dict) or not grid:
        raise ValueError(f"grid must be a non-empty dict {{axis: values}}, got {grid!r}")
    try:
        params = inspect.signature(ctor).parameters
    except (TypeError, ValueError):
        params = {}
    coords, hp = {}, {}
    for name, values in grid.items():
        values = np.asarray(values)
        if values.ndim != 1:
            raise ValueError(f"grid[{name!r}] must be a 1-D list of values, got shape {values.shape}")
        if values.size == 0:
            raise ValueError(f"grid[{name!r}] is empty: every axis needs at least one value")
        if name in method_kwargs:
            raise ValueError(f"grid key {name!r} is also given as a keyword argument; give it once")
        if name == SEED_AXIS:
            if not np.issubdtype(values.dtype, np.integer) or (values < 0).any():
                raise ValueError(f"grid['seed'] must hold non-negative integers, got {values.tolist()}")
        elif params and name not in params:
            raise ValueError(f"grid has unknown key {name!r}: {getattr(ctor, '__name__', ctor)} takes "
                             f"{[p for p in params]} (and the grid accepts 'seed')")
        else:
            check_finite_array(f"grid[{name!r}]", values.astype(float))
            hp[name] = values.astype(float)
        coords[name] = values
    return coords, hp


def _pad(x, total: int):
    """Pad the leading axis to ``total`` by repeating row 0 (valid configurations; dropped afterwards)."""
    extra = total - x.shape[0]
    return x if extra == 0 else np.concatenate([x, np.repeat(x[:1], extra, axis=0)])


@functools.lru_cache(maxsize=32)
def _test_accuracy(problem):
    """Final test accuracy of a stack of runs, NaN where a run diverged (jitted once per problem)."""
    return jax.jit(jax.vmap(lambda p, bad: jnp.where(bad, jnp.nan, problem.test_accuracy(p))))


@functools.lru_cache(maxsize=32)
def _keys_of(sharding):
    """``jax.random.key(seed)`` for a stack of seeds, laid out like ``sharding`` (None: default placement)."""
    return jax.jit(jax.vmap(jax.random.key), out_shardings=sharding)


class _Layout:
    """Where a chunk lives: one device, or split over a 1-D mesh of every device of every process (``sharded``).

    In a multi-process run (`jax.distributed.initialize`), arrays are global: built from the host arrays every
    process holds (the grid is deterministic), sharded over the global mesh; each process reads back the rows its
    own devices hold.
    """

    def __init__(self, sharded: bool):
        self.sharded = sharded
        self.devices = jax.devices() if sharded else jax.devices()[:1]
        self.multi = sharded and jax.process_count() > 1
        if sharded:
            mesh = jax.sharding.Mesh(np.array(self.devices), (MESH_AXIS,))
            self.split = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(MESH_AXIS))
            self.same = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
        else:
            self.split = self.same = None

    def put(self, tree, sharding):
        if sharding is None:
            return tree
        if not self.multi:
            return jax.device_put(tree, sharding)
        return jax.tree.map(lambda x: jax.make_array_from_callback(
            np.shape(x), sharding, lambda idx, x=np.asarray(x): x[idx]), tree)

    def local_rows(self, out: dict) -> tuple[np.ndarray, dict]:
        """(row indices, {name: rows}) of the chunk held by this process's devices (all rows without sharding)."""
        if not self.multi:
            return np.arange(out["losses"].shape[0]), {k: np.asarray(v) for k, v in out.items()}
        starts = sorted({sh.index[0].start or 0 for sh in out["losses"].addressable_shards})

        def mine(v):
            by_start = {sh.index[0].start or 0: np.asarray(sh.data) for sh in v.addressable_shards}
            return np.concatenate([by_start[s] for s in starts])

        piece = {k: mine(v) for k, v in out.items()}
        sizes = [len(np.asarray(sh.data)) for sh in sorted(out["losses"].addressable_shards,
                                                           key=lambda sh: sh.index[0].start or 0)]
        return np.concatenate([np.arange(s, s + n) for s, n in zip(starts, sizes)]), piece

    def gather(self, rows: np.ndarray, piece: dict) -> dict:
        """Every process's rows of a chunk, in row order (a no-op in a single process)."""
        if not self.multi:
            return piece
        from jax.experimental import multihost_utils
        allrows, allpiece = multihost_utils.process_allgather((rows, piece))
        order = np.argsort(np.asarray(allrows).reshape(-1), kind="stable")
        return {k: np.asarray(v).reshape((-1,) + np.shape(v)[2:])[order] for k, v in allpiece.items()}

    def all_true(self, flag: bool) -> bool:
        """Whether ``flag`` holds on every process (a collective in a multi-process run)."""
        if not self.multi:
            return flag
        from jax.experimental import multihost_utils
        return bool(np.asarray(multihost_utils.process_allgather(np.array(flag))).all())


def _manifest(problem, probe, ctor, coords, method_kwargs, settings) -> dict:
    """What identifies a sweep's numbers (`sweep_store` module docstring): compared field by field on resume."""
    from . import __version__
    return {"problem": problem_fingerprint(problem), "method": probe.name,
            "constructor": digest(ctor), "options": digest(dict(probe.options)),
            "method_kwargs": digest(method_kwargs), "grid": {a: np.asarray(v).tolist() for a, v in coords.items()},
            "settings": digest(settings), "version": __version__}


# --- the sweep --------------------------------------------------------------------------------------------------

def sweep(problem: Problem, method, grid: dict, *, steps: int, batch_size: int, sharded: bool = False,
          chunk_size: int | None = None, log_every: int = 1, replace: bool = False, progress: bool = True,
          out_dir=None, params=None, keep_params: bool = False, track_grad_norm: bool = True,
          max_loss: float | None = None, **method_kwargs) -> SweepResult:
    """Train ``method(**hparams, **method_kwargs)`` on ``problem`` at every point of ``grid`` in one compile.

    The grid is flattened and every chunk of configurations is one `sam_theory.train.run_many` call (the optimizer
    and seed stacks zipped); persistence is `sam_theory.sweep_store`.

    Args:
      problem: a `sam_theory.problems.Problem`.
      method: an optimizer constructor (``sam_theory.optim.sam``) or its name (``"sam"``).
      grid: ``{axis: values}``; axes are hyperparameters of ``method`` (array leaves of the optimizer: ``lr``,
        ``rho``, …) or ``"seed"`` (batches and init, ``jax.random.key(seed)``; seed 0 if absent). Static options
        (``m`` of msam, ``source`` of nsam) go in ``method_kwargs``: one sweep per value.
      steps, batch_size, log_every, replace, max_loss: as in `sam_theory.train.train`.
      sharded: split each chunk of the flattened grid over ``jax.devices()`` — every device of every process
        after `jax.distributed.initialize` (each process then writes its own chunk files).
      chunk_size: configurations per compiled call (default: the whole grid).
      progress: a tqdm bar over chunks.
      out_dir: folder for resumable chunk files (see `sam_theory.sweep_store`).
      params: a common starting point (default ``problem.init(key)`` per seed).
      keep_params: also return the final parameters of every configuration.
      track_grad_norm: record ‖∇f(x_t)‖ at the logged steps.
      method_kwargs: fixed arguments of ``method`` (e.g. ``rho=0.05``, ``m=4``).

    Example (full-batch GD at two learning rates, one compile; f(w_T) = ½(1 − η/2)^{2T}):
      >>> import numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.problems import LinearRegression
      >>> prob = LinearRegression(np.eye(2), np.array([1.0, -1.0]))
      >>> with float64():
      ...     res = sweep(prob, "sgd", {"lr": [0.5, 1.5]}, steps=3, batch_size=2, progress=False)
      >>> res.final_losses.round(6).tolist(), np.allclose(res.final_losses, 0.5 * (1 - res.coords["lr"] / 2) ** 6)
      ([0.088989, 0.000122], True)

    Resumable: with ``out_dir`` every chunk is written, and the same sweep again loads them instead of training:
      >>> import tempfile
      >>> grid = {"lr": [0.5, 1.5], "seed": [0, 1]}
      >>> with tempfile.TemporaryDirectory() as d, float64():
      ...     first = sweep(prob, "sam", grid, rho=0.05, steps=3, batch_size=1, chunk_size=2, out_dir=d,
      ...                   progress=False)
      ...     again = sweep(prob, "sam", grid, rho=0.05, steps=3, batch_size=1, chunk_size=2, out_dir=d,
      ...                   progress=False)
      >>> first.info["chunks_computed"], again.info["chunks_loaded"], again.info["compiles"]
      (2, 2, 0)
      >>> np.array_equal(first.losses, again.losses)
      True
    """
    t_start = time.perf_counter()
    check_problem(problem)
    if params is not None:
        check_params("params", params, problem)
    ctor = resolve_method(method)
    steps = check_int("steps", steps, minimum=0)
    log_every = check_int("log_every", log_every)
    batch_size = validate_batch(problem, batch_size, replace)
    if max_loss is not None and not float(max_loss) > 0:
        raise ValueError(f"max_loss must be > 0, got {max_loss!r}")
    coords, hp = _check_grid(grid, ctor, method_kwargs)
    probe = ctor(**{k: coords[k][0].item() for k in hp}, **method_kwargs)
    if not isinstance(probe, Optimizer):
        raise ValueError(f"method must return an Optimizer, got {type(probe).__name__}")
    static = [k for k in hp if k not in probe.hparams]
    if static:
        raise ValueError(f"grid key(s) {static} of {probe.name} are static options, not array hyperparameters "
                         f"{sorted(probe.hparams)}; run one sweep per value (pass them as keyword arguments)")
    ctor(**hp, **method_kwargs)  # the constructor's own checks, over whole axes, name a bad value (lr <= 0, …)

    axes = tuple(coords)
    shape = tuple(len(v) for v in coords.values())
    total = int(np.prod(shape))
    flat = dict(zip(axes, [np.ravel(m) for m in np.meshgrid(*coords.values(), indexing="ij")]))
    seeds = flat.get(SEED_AXIS, np.zeros(total, dtype=int)).astype(jnp.asarray(0).dtype)
    float_dtype = jnp.zeros(()).dtype
    hp_flat = {k: flat[k].astype(float_dtype) for k in hp}

    layout = _Layout(sharded)
    num_devices = len(layout.devices)
    chunk = total if chunk_size is None else check_int("chunk_size", chunk_size)
    chunk = -(-min(chunk, total) // num_devices) * num_devices
    num_chunks = -(-total // chunk)
    hp_flat = {k: _pad(v, num_chunks * chunk) for k, v in hp_flat.items()}
    seeds = _pad(seeds, num_chunks * chunk)

    classification = bool(problem.is_classification and problem.test_data is not None)
    if params is not None:
        for leaf in jax.tree.leaves(params):
            check_finite_array("params", leaf)
        params = jax.tree.map(lambda x: np.asarray(x, dtype=float_dtype), params)
    data = as_jax(problem.data)
    test_data = as_jax(problem.test_data) if problem.test_data is not None else None
    data, test_data, params_dev = layout.put((data, test_data, params), layout.same)
    make_keys = _keys_of(layout.split)
    make_opts = jax.vmap(lambda h: ctor(**h, **method_kwargs))  # fixed hyperparameters broadcast over the chunk

    store = None
    if out_dir is not None:
        settings = {"steps": steps, "batch_size": batch_size, "log_every": log_every, "replace": replace,
                    "chunk_size": chunk, "dtype": str(float_dtype), "keep_params": keep_params,
                    "track_grad_norm": track_grad_norm, "max_loss": max_loss, "params": params,
                    "num_devices": num_devices}
        store = SweepStore(out_dir, _manifest(problem, probe, ctor, coords, method_kwargs, settings),
                           process_index=jax.process_index() if layout.multi else 0,
                           process_count=jax.process_count() if layout.multi else 1)

    fields = ["losses", "test_losses", "grad_norms", "diverged", "diverged_at"] + (
        ["test_accuracy"] if classification else [])
    traces0 = TRACES[0]
    computed = loaded = 0
    output_devices = None
    pieces = []
    bar = range(num_chunks)
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(bar, desc=f"sweep {probe.name} ({total} configs × {steps} steps)", unit="chunk")
    for c in bar:
        piece = None if store is None else store.load(c, fields + ["rows"])
        if layout.all_true(piece is not None):
            pieces.append(layout.gather(piece.pop("rows"), piece))
            loaded += 1
            continue
        sl = slice(c * chunk, (c + 1) * chunk)
        hp_c, seeds_c = layout.put(({k: v[sl] for k, v in hp_flat.items()}, seeds[sl]), layout.split)
        out = run_many(problem, make_opts(hp_c), make_keys(seeds_c), params=params_dev, axes=(("optimizer", "seed"),),
                       steps=steps, batch_size=batch_size, every=log_every, replace=replace, max_loss=max_loss,
                       track_grad_norm=track_grad_norm)
        res = {"losses": out.losses, "test_losses": out.test_losses, "grad_norms": out.grad_norms,
               "diverged": out.diverged, "diverged_at": jnp.where(out.diverged, out.diverged_at, -1)}
        if classification:
            res["test_accuracy"] = _test_accuracy(problem)(out.params, out.diverged)
        if keep_params:
            res.update({f"param_{i}": leaf for i, leaf in enumerate(jax.tree.leaves(out.params))})
        output_devices = len(out.losses.sharding.device_set)
        rows, piece = layout.local_rows(res)
        if store is not None:
            store.save(c, {**piece, "rows": rows})
        pieces.append(layout.gather(rows, piece))
        computed += 1

    merged = {k: np.concatenate([p[k] for p in pieces])[:total] for k in pieces[0]}
    grid_shape = lambda x: x.reshape(shape + x.shape[1:])
    final_params = None
    if keep_params:
        treedef = jax.tree.structure(jax.eval_shape(problem.init, jax.random.key(0)) if params is None else params)
        leaves = [grid_shape(merged[f"param_{i}"]) for i in range(treedef.num_leaves)]
        final_params = jax.tree.unflatten(treedef, leaves)
    info = {"compiles": TRACES[0] - traces0, "chunks": num_chunks, "chunks_computed": computed,
            "chunks_loaded": loaded, "chunk_size": chunk, "num_devices": num_devices,
            "num_processes": jax.process_count() if layout.multi else 1,
            "output_devices": output_devices, "seconds": time.perf_counter() - t_start}
    return SweepResult(
        method=probe.name, axes=axes, coords=coords, steps=log_steps(steps, log_every) if steps else np.array([0]),
        losses=grid_shape(merged["losses"]),
        test_losses=grid_shape(merged["test_losses"]) if test_data is not None else None,
        test_accuracy=grid_shape(merged["test_accuracy"]) if classification else None,
        grad_norms=grid_shape(merged["grad_norms"]) if track_grad_norm else None,
        diverged=grid_shape(merged["diverged"]).astype(bool), diverged_at=grid_shape(merged["diverged_at"]),
        params=final_params, info=info)


__all__ = ["sweep", "SweepResult", "resolve_method"]
