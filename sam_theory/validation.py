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
