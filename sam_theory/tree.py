"""Small pytree helpers used across modules."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def tree_vdot(a, b):
    """Σ over leaves of ⟨a, b⟩."""
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def tree_sq_norm(a):
    return tree_vdot(a, a)


def tree_norm(a):
    return jnp.sqrt(tree_sq_norm(a))


def tree_add_scaled(a, b, scale):
    """a + scale · b."""
    return jax.tree.map(lambda x, y: x + scale * y, a, b)


def tree_scale(a, scale):
    return jax.tree.map(lambda x: scale * x, a)


def tree_all_finite(a):
    leaves = jax.tree.leaves(a)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves])) if leaves else jnp.array(True)


def num_elements(a) -> int:
    return int(sum(x.size for x in jax.tree.leaves(a)))
