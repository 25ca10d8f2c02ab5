"""Symmetric eigendecompositions that never emit a batched LAPACK kernel on XLA CPU.

jaxlib 0.10.2's batched `syevd` kernel spreads the batch over the XLA CPU thread pool and blocks a pool thread
until its pieces finish; two such kernels running at once in one jitted graph can deadlock the pool (seen on a
2-core machine in `stability.selection`). On CPU, `eigh` and `eigvalsh` turn `vmap` and leading batch axes into a
sequential `lax.map` of unbatched calls (`jax.custom_batching.sequential_vmap`); on GPU they are `jnp.linalg`'s.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_batching import sequential_vmap


def _unbatched(fn):
    sequential = sequential_vmap(fn)

    def call(a):
        if jax.default_backend() != "cpu":
            return fn(a)
        if a.ndim == 2:
            return sequential(a)
        return lax.map(call, a)

    call.__doc__ = fn.__doc__
    return call


def _eigh(a):
    """(eigenvalues ascending, eigenvectors as columns) of a symmetric (…, m, m) array."""
    w, v = jnp.linalg.eigh(a)
    return w, v


def _eigvalsh(a):
    """Eigenvalues (ascending) of a symmetric (…, m, m) array."""
    return jnp.linalg.eigvalsh(a)


eigh = _unbatched(_eigh)
eigvalsh = _unbatched(_eigvalsh)
