"""Argument checks that raise a `ValueError` naming the argument.

Values that are JAX tracers (an optimizer built inside `vmap` or `jit`, as in sweeps) are not checked: their
value is unknown at trace time.
"""
from __future__ import annotations

import numbers

import numpy as np
from jax import core


def _concrete(value) -> bool:
    return not isinstance(value, core.Tracer)


def check_positive(name: str, value, *, allow_zero: bool = False):
    if not _concrete(value):
        return value
    v = np.asarray(value)
    if v.size == 0 or not np.issubdtype(v.dtype, np.number) or not np.isfinite(v).all():
        raise ValueError(f"{name} must be finite (a scalar, or an array for sweeps), got {value!r}")
    if (v < 0).any() or (not allow_zero and (v == 0).any()):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return value


def check_nonnegative(name: str, value):
    return check_positive(name, value, allow_zero=True)


def check_int(name: str, value, *, minimum: int = 1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def check_finite_array(name: str, value):
    if not _concrete(value):
        return value
    arr = np.asarray(value)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return value


def check_choice(name: str, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value


# --- the arguments of `train` and `sweep` (checked up front, before anything is traced) --------------------------

def check_problem(problem, name: str = "problem"):
    """A `sam_theory.problems.Problem` instance."""
    from .problems.base import Problem
    if not isinstance(problem, Problem):
        raise ValueError(f"{name} must be a sam_theory.problems.Problem (e.g. linear_regression(...)), "
                         f"got {type(problem).__name__}")
    return problem


def check_optimizer(optimizer, name: str = "optimizer", *, scalar: bool = True):
    """A `sam_theory.optim.Optimizer`; with ``scalar`` every hyperparameter must be a scalar (a grid of values is a
    `sweep`, not one `train` run)."""
    from .optim.base import Optimizer
    if not isinstance(optimizer, Optimizer):
        raise ValueError(f"{name} must be a sam_theory.optim Optimizer (e.g. sam(lr, rho)), "
                         f"got {type(optimizer).__name__}")
    if scalar:
        for key, value in optimizer.hparams.items():
            if _concrete(value) and np.ndim(value) != 0:
                raise ValueError(f"{name} hyperparameter {key} must be a scalar for train, got shape "
                                 f"{np.shape(value)}; use sam_theory.sweep for a grid of values")
    return optimizer


def check_key(name: str, key):
    """A JAX PRNG key: a typed key ``jax.random.key(seed)`` (shape ()) or a raw ``jax.random.PRNGKey(seed)``."""
    import jax
    import jax.numpy as jnp
    if isinstance(key, (jax.Array, np.ndarray)) and not isinstance(key, core.Tracer):
        if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == ():
            return key
        if key.dtype == np.uint32 and key.shape == (2,):
            return key
    elif isinstance(key, core.Tracer):
        return key
    raise ValueError(f"{name} must be a single JAX PRNG key such as jax.random.key(0), got {key!r}")


def check_params(name: str, params, problem):
    """``params`` has the pytree structure and leaf shapes of ``problem.init(key)``, and finite entries."""
    import jax
    expected = jax.eval_shape(problem.init, jax.random.key(0))
    exp_struct, got_struct = jax.tree.structure(expected), jax.tree.structure(params)
    shapes = lambda tree: jax.tree.map(lambda x: tuple(np.shape(x)), tree)  # noqa: E731
    if exp_struct != got_struct:
        raise ValueError(f"{name} must have the structure of problem.init(key): expected {shapes(expected)}, "
                         f"got {got_struct}")
    for leaf_e, leaf_g, path in zip(jax.tree.leaves(expected), jax.tree.leaves(params),
                                    [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)]):
        if tuple(np.shape(leaf_g)) != tuple(leaf_e.shape):
            raise ValueError(f"{name}{path} must have shape {tuple(leaf_e.shape)} (as problem.init(key)), got "
                             f"{tuple(np.shape(leaf_g))}")
        if _concrete(leaf_g) and not np.issubdtype(np.asarray(leaf_g).dtype, np.number):
            raise ValueError(f"{name}{path} must be numeric, got dtype {np.asarray(leaf_g).dtype}")
        check_finite_array(f"{name}{path}", leaf_g)
    return params


def check_finite_params(name: str, params, hint: str = ""):
    """Every leaf of the pytree ``params`` is finite (tracers pass unchecked); the error names the leaf."""
    import jax
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        if _concrete(leaf) and not np.isfinite(np.asarray(leaf)).all():
            raise ValueError(f"{name}{jax.tree_util.keystr(path)} contains NaN or infinite values{hint}")
    return params


CURVATURE_HINT = ("; curvature is undefined there (the params of a diverged run are its last finite ones, "
                  "History.params_step says from which step)")
