"""Matrix factorization, THEORY.md §3.4: min ‖U Vᵀ − M★‖²_F / 2 with rank(M★) = r★ ≤ r (the knob).

As a finite sum, one example per observed entry (i, j): f_ij = ½(U_i·V_j − M★_ij)². With every entry observed
(``observed=1``) the mean loss is ‖UVᵀ − M★‖²_F / (2·rows·cols). M★ = A Bᵀ with A, B of i.i.d. N(0, r★^{-1/2})
entries, so that M★_ij has unit variance. Init U, V ~ init_scale·N(0, 1). With ``observed < 1`` a random fraction
of entries is trained on (matrix completion) and the rest is the test set; with every entry observed the test set is
the full matrix (test loss = training loss).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..validation import check_int, check_nonnegative, check_positive
from .base import Problem
from .draw import normal
from .masks import apply_mask


class MatrixFactorization(Problem):
    """Matrix factorization (module docstring; THEORY.md §3.4): one example per observed entry (i, j, M★_ij);
    built by `matrix_factorization`.

    Example (every entry observed: n = rows·cols; `interpolating_params` fit M★ exactly):
      >>> prob = MatrixFactorization(3, 4, rank_star=1, rank=2, init_scale=0.1, seed=0)
      >>> prob.n, prob.M_star.shape, float(prob.loss(prob.interpolating_params())) < 1e-10
      (12, (3, 4), True)
    """

    name = "matrix_factorization"

    def __init__(self, rows, cols, rank_star, rank, *, init_scale, observed=1.0, noise=0.0, seed=0, sparsity=0.0,
                 pruner="random", weight_decay=0.0, perturb_weight_decay=False):
        self.rows, self.cols = check_int("rows", rows), check_int("cols", cols)
        self.rank_star, self.rank = check_int("rank_star", rank_star), check_int("rank", rank)
        if rank_star > min(rows, cols):
            raise ValueError(f"rank_star must be <= min(rows, cols) = {min(rows, cols)} (the rank of a {rows}x{cols} "
                             f"matrix), got rank_star={rank_star}")
        if rank < rank_star:
            raise ValueError(f"rank must be >= rank_star, got rank={rank}, rank_star={rank_star}")
        self.init_scale = float(check_positive("init_scale", init_scale))
        if not 0.0 < float(observed) <= 1.0:
            raise ValueError(f"observed must be in (0, 1], got {observed!r}")
        self.observed, self.noise, self.seed = float(observed), float(check_nonnegative("noise", noise)), seed
        rng = np.random.default_rng(seed)
        A = rng.standard_normal((rows, rank_star)) / rank_star ** 0.25
        B = rng.standard_normal((cols, rank_star)) / rank_star ** 0.25
        self.A, self.B, self.M_star = A, B, A @ B.T
        ii, jj = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        ii, jj = ii.ravel(), jj.ravel()
        perm = rng.permutation(ii.size)
        n_obs = max(1, int(round(self.observed * ii.size)))
        train, test = np.sort(perm[:n_obs]), np.sort(perm[n_obs:]) if n_obs < ii.size else np.arange(ii.size)
        m = self.M_star[ii, jj]
        self.data = (ii[train], jj[train], m[train] + self.noise * rng.standard_normal(train.size))
        self.test_data = (ii[test], jj[test], m[test])
        self._configure(seed=seed, weight_decay=weight_decay, perturb_weight_decay=perturb_weight_decay,
                        sparsity=sparsity, pruner=pruner)

    def _init(self, key):
        ku, kv = jax.random.split(key)
        return {"U": self.init_scale * normal(ku, (self.rows, self.rank)),
                "V": self.init_scale * normal(kv, (self.cols, self.rank))}

    def _loss(self, params, example):
        return 0.5 * (self._entry(params, example) - example[2]) ** 2

    @staticmethod
    def _entry(params, example):
        i, j = example[0], example[1]
        return jnp.dot(params["U"][i], params["V"][j])

    def prediction(self, params, example):
        """ŷ = (U Vᵀ)_ij at params ⊙ mask for the example (i, j, M★_ij).

        Example (at the interpolating params ŷ is the target entry M★_ij):
          >>> import numpy as np
          >>> prob = MatrixFactorization(3, 4, rank_star=1, rank=2, init_scale=0.1, seed=0)
          >>> y01 = prob.prediction(prob.interpolating_params(), (0, 1, 0.0))
          >>> bool(np.isclose(float(y01), prob.M_star[0, 1], rtol=1e-6))
          True
        """
        return self._entry(apply_mask(params, self.mask), example)

    def interpolating_params(self) -> dict:
        """U = [A, 0], V = [B, 0]: U Vᵀ = M★ exactly (rank r ≥ r★ padded with zero columns)."""
        pad = lambda Z: np.concatenate([Z, np.zeros((Z.shape[0], self.rank - self.rank_star))], axis=1)
        return {"U": jnp.asarray(pad(self.A)), "V": jnp.asarray(pad(self.B))}

    def describe(self) -> dict:
        return {**super().describe(), "rows": self.rows, "cols": self.cols, "rank_star": self.rank_star,
                "rank": self.rank, "init_scale": self.init_scale, "observed": self.observed, "seed": self.seed}


def matrix_factorization(rows, cols, rank_star, rank, *, init_scale, observed=1.0, noise=0.0, seed=0, sparsity=0.0,
                         pruner="random", weight_decay=0.0, perturb_weight_decay=False) -> MatrixFactorization:
    """Matrix factorization with inner dimension ``rank`` ≥ ``rank_star`` (THEORY.md §3.4); see
    `MatrixFactorization` for the finite-sum convention and scalings.

    Example:
      >>> import jax
      >>> prob = matrix_factorization(3, 4, rank_star=1, rank=2, init_scale=0.1, seed=0)
      >>> {k: v.shape for k, v in prob.init(jax.random.key(0)).items()}, prob.n
      ({'U': (3, 2), 'V': (4, 2)}, 12)
    """
    return MatrixFactorization(rows, cols, rank_star, rank, init_scale=init_scale, observed=observed, noise=noise,
                               seed=seed, sparsity=sparsity, pruner=pruner, weight_decay=weight_decay,
                               perturb_weight_decay=perturb_weight_decay)
