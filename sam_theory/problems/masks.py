"""Sparsity masks at initialization (THEORY.md §10.3), as in the official SAM-overparam code's pruners.

A mask keeps the top (1 − sparsity) fraction of all weights (a global ranking over every leaf) by a score:
  random:    i.i.d. uniform scores;
  magnitude: |w| at the reference initialization;
  snip:      |w ⊙ ∇_w f(w)| at the reference initialization on the training data (Lee et al. 2019).
The mask is fixed per problem (deterministic from its seed) and applied inside the loss (params ⊙ mask), so masked
weights receive zero gradient and, initialized at zero, stay exactly zero under every optimizer.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..validation import check_choice

PRUNERS = ("random", "magnitude", "snip")


def check_sparsity(sparsity: float) -> float:
    s = float(sparsity)
    if not (0.0 <= s < 1.0) or not np.isfinite(s):
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity!r}")
    return s


def make_mask(reference_params, sparsity: float, pruner: str, *, seed: int = 0, grad=None):
    """A 0/1 mask pytree (NumPy float64) keeping the top (1 − sparsity) fraction of weights by score.

    ``grad`` (the training-loss gradient at ``reference_params``) is required for ``pruner="snip"``.

    Example:
      >>> import numpy as np
      >>> mask = make_mask({"w": np.ones(10)}, 0.5, "random", seed=0)
      >>> int(mask["w"].sum())                                 # half of the entries kept
      5
    """
    check_sparsity(sparsity)
    check_choice("pruner", pruner, PRUNERS)
    leaves, treedef = jax.tree.flatten(jax.tree.map(np.asarray, reference_params))
    if pruner == "random":
        rng = np.random.default_rng(seed + 7919)
        scores = [rng.random(x.shape) for x in leaves]
    elif pruner == "magnitude":
        scores = [np.abs(x) for x in leaves]
    else:
        if grad is None:
            raise ValueError("pruner='snip' needs the gradient at the reference parameters")
        scores = [np.abs(x * np.asarray(g)) for x, g in zip(leaves, jax.tree.leaves(grad))]
    flat = np.concatenate([s.ravel() for s in scores])
    keep = int(round((1.0 - sparsity) * flat.size))
    order = np.argsort(-flat, kind="stable")
    kept = np.zeros(flat.size, dtype=np.float64)
    kept[order[:keep]] = 1.0
    out, start = [], 0
    for x in leaves:
        out.append(kept[start:start + x.size].reshape(x.shape))
        start += x.size
    return jax.tree.unflatten(treedef, out)


def apply_mask(params, mask):
    """params ⊙ mask (identity when ``mask`` is None).

    Example:
      >>> import numpy as np
      >>> apply_mask({"w": np.arange(3.0, dtype=np.float32)}, {"w": np.array([1, 0, 1])})["w"].tolist()
      [0.0, 0.0, 2.0]
    """
    if mask is None:
        return params
    return jax.tree.map(lambda p, m: p * jnp.asarray(m, dtype=p.dtype), params, mask)
