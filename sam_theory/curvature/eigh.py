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


def _unbatched(fn, doc: str):
    sequential = sequential_vmap(fn)

    def call(a):
        if jax.default_backend() != "cpu":
            return fn(a)
        if a.ndim == 2:
            return sequential(a)
        return lax.map(call, a)

    call.__doc__ = doc
    call.__name__ = call.__qualname__ = fn.__name__.lstrip("_")
    return call


def _eigh(a):
    """`jnp.linalg.eigh` on one (m, m) matrix (the kernel `eigh` keeps unbatched on CPU)."""
    w, v = jnp.linalg.eigh(a)
    return w, v


def _eigvalsh(a):
    """`jnp.linalg.eigvalsh` on one (m, m) matrix (the kernel `eigvalsh` keeps unbatched on CPU)."""
    return jnp.linalg.eigvalsh(a)


eigh = _unbatched(_eigh, """(eigenvalues ascending, eigenvectors as columns) of a symmetric (…, m, m) array.

    Example:
      >>> import jax.numpy as jnp
      >>> from sam_theory.curvature import eigh
      >>> A = jnp.array([[2.0, 1.0], [1.0, 2.0]])               # eigenvalues 1 and 3
      >>> w, v = eigh(A)
      >>> [round(x, 5) for x in w.tolist()], bool(jnp.allclose(A @ v, v * w, atol=1e-5))
      ([1.0, 3.0], True)
    """)
eigvalsh = _unbatched(_eigvalsh, """Eigenvalues (ascending) of a symmetric (…, m, m) array (leading axes: a batch).

    Example:
      >>> import jax.numpy as jnp
      >>> from sam_theory.curvature import eigvalsh
      >>> A = jnp.array([[2.0, 1.0], [1.0, 2.0]])
      >>> [[round(x, 5) for x in row] for row in eigvalsh(jnp.stack([A, 2 * A])).tolist()]   # a batch of two
      [[1.0, 3.0], [2.0, 6.0]]
    """)
