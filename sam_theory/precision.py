"""Floating-point precision, set in one place.

Theorem checks run in float64 (THEORY.md, tag conventions: [exact] means relative error below 1e-10).
`float64()` scopes that: JAX's x64 flag is switched on inside the ``with`` block only, so float32 code paths
elsewhere in the same process are untouched. Library code never casts to a fixed dtype; it follows its inputs,
and problem data are stored as NumPy float64 and become JAX arrays of the default float type when used.
"""
from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp


@contextlib.contextmanager
def float64():
    """Run the block with ``jax_enable_x64`` on; restore the previous setting after."""
    with jax.enable_x64(True):
        yield


def default_float():
    """The float dtype JAX creates by default right now (float32, or float64 inside `float64()`)."""
    return jnp.zeros(()).dtype


def x64_enabled() -> bool:
    return default_float() == jnp.float64
