"""Random initializations that do not depend on the precision mode.

Rule: ``problem.init(key)`` draws its standard normals in float64 and rounds them to the current default float.
Under `sam_theory.precision.float64()` that is ``jax.random.normal(key, shape, float64)`` itself (so every float64
check keeps its draws); in float32 mode `normal` reproduces the same float64 draw from the same 64 random bits per
entry with 32-bit arithmetic only (x64 cannot be switched on inside a trace, and ``init`` runs inside `vmap`/`jit`
in sweeps), so the same key gives the same initial point in both modes to float32 precision
(``tests/test_init_precision.py``: a few float32 ulps).

How: JAX's float64 normal is √2·erfinv(u), u = 2m/2^52 − 1 + 2^-53, with m the top 52 of 64 random bits
(threefry2x32, two 32-bit words hi, lo per entry). Here u is formed from the exact integer m − 2^51 where |u| ≤ ½
(√2·erfinv, relative precision kept near 0), and in the tails from the exact integer tail mass
q = min(m, 2^52 − m)/2^52 (z = ±Φ⁻¹(q) by `ndtri`, relative precision kept near ±1, where erfinv(u) of a float32
u would lose it). Keys of another PRNG implementation than threefry fall back to ``jax.random.normal`` in the
current dtype (then the two modes draw differently).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend.random import threefry2x32_p, threefry_2x32
from jax.scipy.special import ndtri

from ..compiler import jit_fast_compile
from ..precision import default_float


def _bits64(key, shape):
    """The (hi, lo) uint32 words of ``jax.random.bits(key, shape, uint64)`` without x64, for either setting of
    ``jax_threefry_partitionable``."""
    size = math.prod(shape)
    k = jax.random.key_data(key)
    if jax.config.jax_threefry_partitionable:
        counts = lax.iota(np.uint32, size).reshape(shape)
        hi, lo = threefry2x32_p.bind(k[0], k[1], jnp.zeros(shape, np.uint32), counts)
        return hi, lo
    bits = threefry_2x32(k, lax.iota(np.uint32, 2 * size))
    return bits[:size].reshape(shape), bits[size:].reshape(shape)


@jit_fast_compile(static_argnames=("shape",))
def _normal32(key, shape):
    return _normal_from_bits(*_bits64(key, shape))


def _normal_from_bits(hi, lo):
    """√2·erfinv(u) of JAX's float64 uniform u, evaluated in float32 (module docstring)."""
    f32 = jnp.float32
    low = (lo >> 12).astype(f32) * f32(2.0 ** -20)                              # the low 20 mantissa bits / 2^20
    centred = lax.bitcast_convert_type(hi ^ np.uint32(0x80000000), np.int32)     # hi − 2^31, exact
    u = (centred.astype(f32) + low) * f32(2.0 ** -31)                          # u = m/2^51 − 1 (+2^-53, dropped)
    q_left = (hi.astype(f32) + low + f32(2.0 ** -22)) * f32(2.0 ** -32)          # (1 + u)/2
    q_right = ((~hi).astype(f32) + (f32(1.0) - low)) * f32(2.0 ** -32)           # (1 − u)/2
    central = f32(np.sqrt(2.0)) * lax.erf_inv(jnp.clip(u, -0.5, 0.5))
    tail = jnp.where(u < 0, ndtri(q_left), -ndtri(q_right))
    return jnp.where(jnp.abs(u) <= 0.5, central, tail)


def normal(key, shape) -> jax.Array:
    """Standard normals of ``shape`` in the current default float, the same draw in float32 and float64 modes
    (module docstring)."""
    shape = tuple(shape)
    dtype = default_float()
    if dtype == jnp.float64 or str(jax.random.key_impl(key)) != "threefry2x32" or math.prod(shape) == 0:
        return jax.random.normal(key, shape, dtype)
    return _normal32(key, shape).astype(dtype)
