"""The batch distribution of ξ and its set-partition weights (THEORY.md §1, §4.1).

A batch ξ of size b is b indices drawn uniformly from [n], either i.i.d. (with replacement) or as an ordered draw
of b distinct indices (without replacement); H_ξ = (1/b) Σ_j H_{i_j}. For an ordered product of k batch-mean
factors (fixed matrices may sit between them), expanding over the k position tuples and grouping them by the set
partition π of the positions they induce gives [exact]

  E[product] = b^{-k} Σ_{π ∈ Π(k)} b^{(|π|)} E_π,      b^{(m)} = b(b − 1)…(b − m + 1),

with E_π the mean over one *independent* uniform index per block (with replacement) or its distinct-index
version Ẽ_π (without replacement). By Möbius inversion on the partition lattice,

  n^{(|π|)} Ẽ_π = Σ_{σ ≥ π} μ(π, σ) n^{|σ|} E_σ,   μ(π, σ) = Π_{blocks of σ} (−1)^{c−1}(c − 1)!,

(c = the number of π-blocks merged into that block of σ), so in both cases

  E[product] = Σ_{σ ∈ Π(k)} c_σ E_σ,   c_σ = b^{-k} b^{(|σ|)}  (with),
  c_σ = b^{-k} Σ_{π ≤ σ, |π| ≤ n} b^{(|π|)} μ(π, σ) n^{|σ|} / n^{(|π|)}  (without).

`BatchDistribution.weights(k)` returns these c_σ, computed in exact rational arithmetic and rounded once (so at
b = n without replacement every c_σ but the all-singletons one is exactly 0 and S_k = 0 to round-off).
`BatchDistribution.enumerate` lists every batch with its probability: the reference the tests and the
`theorem_a.batch_moments_partition_vs_enumeration` check use, never the computation itself.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from fractions import Fraction

import numpy as np

from ..validation import check_int

Partition = tuple  # a tuple of blocks, each a sorted tuple of positions 0..k−1, blocks sorted by first position


def falling(x: int, m: int) -> int:
    """The falling factorial x^{(m)} = x(x − 1)…(x − m + 1) (0 when m > x ≥ 0)."""
    return math.prod(range(x, x - m, -1)) if m > 0 else 1


@functools.lru_cache(maxsize=None)
def set_partitions(k: int) -> tuple:
    """All set partitions of the positions 0..k−1 (Bell(k): 1, 1, 2, 5, 15 for k = 0..4), canonical order.

    Example:
      >>> from sam_theory.curvature import set_partitions
      >>> set_partitions(2)                                     # {0,1} and {0}{1}
      (((0, 1),), ((0,), (1,)))
      >>> [len(set_partitions(k)) for k in range(5)]            # the Bell numbers
      [1, 1, 2, 5, 15]
    """
    if k == 0:
        return ((),)
    out = []
    for part in set_partitions(k - 1):
        for j in range(len(part)):  # k−1 joins an existing block
            out.append(tuple(sorted(part[:j] + (part[j] + (k - 1,),) + part[j + 1:])))
        out.append(tuple(sorted(part + ((k - 1,),))))
    return tuple(sorted(out, key=lambda p: (len(p), p)))


def refines(pi: Partition, sigma: Partition) -> bool:
    """π ≤ σ: every block of π lies inside a block of σ."""
    return all(any(set(b) <= set(s) for s in sigma) for b in pi)


def mobius(pi: Partition, sigma: Partition) -> int:
    """μ(π, σ) = Π_{blocks B of σ} (−1)^{c_B − 1}(c_B − 1)!, c_B = number of π-blocks inside B (π ≤ σ)."""
    out = 1
    for s in sigma:
        c = sum(1 for b in pi if set(b) <= set(s))
        out *= (-1) ** (c - 1) * math.factorial(c - 1)
    return out


def is_crossing(sigma: Partition) -> bool:
    """Whether two blocks cross (a < b < c < d with a, c in one block and b, d in another)."""
    for x, y in itertools.permutations(sigma, 2):
        if any(a < b < c < d for a, c in itertools.combinations(x, 2) for b, d in itertools.combinations(y, 2)):
            return True
    return False


@dataclasses.dataclass(frozen=True)
class BatchDistribution:
    """ξ: ``batch_size`` indices from [``n``], uniform, with or without replacement (THEORY.md §1).

    Hashable (a static field of `sam_theory.curvature.BatchCurvature`). Construct with `batch_distribution`,
    which validates the arguments.

    Example:
      >>> from sam_theory.curvature import batch_distribution
      >>> d = batch_distribution(4, 2)                          # b = 2 of n = 4, without replacement
      >>> round(d.s2_factor(), 6), d.num_batches()              # (n − b)/(b(n − 1)) = 1/3; C(4, 2) = 6
      (0.333333, 6)
      >>> idx, prob = d.enumerate()                             # the reference: every batch, its probability
      >>> idx.shape, round(float(prob.sum()), 12)
      ((6, 2), 1.0)
      >>> batch_distribution(3, 3).weights(2)                   # b = n: H_ξ = H, only c_{0}{1} = 1 remains
      {((0,), (1,)): 1.0}
    """

    n: int
    batch_size: int
    replace: bool

    def weights(self, k: int) -> dict:
        """{σ: c_σ} for the ordered products of k batch-mean factors (module docstring); zero weights dropped."""
        return _weights(self.n, self.batch_size, self.replace, k)

    def coefficients(self, k: int) -> np.ndarray:
        """c_σ for every σ of `set_partitions(k)`, in that order, zeros included (float64, shape (Bell(k),))."""
        w = self.weights(k)
        return np.array([w.get(sigma, 0.0) for sigma in set_partitions(k)])

    def pattern(self) -> "BatchPattern":
        """The static part of ξ once its c_σ are data: n, and which partitions are evaluated: only the one-block
        partition at b = 1 (every other c_σ is 0 there), all of them for b ≥ 2 (c_σ = 0 for |σ| > b: at b = 2, 3
        the zero-weight partitions with 3–4 blocks are still evaluated, non-crossing but, nested and on fewer than
        p/n columns, n² products; the price of one program for every b ≥ 2)."""
        return BatchPattern(self.n, 1 if self.batch_size == 1 else MAX_ORDER)

    def s2_factor(self) -> float:
        """c_b in S_2 = c_b((1/n)Σ H_i² − H²): (n − b)/(b(n − 1)) without replacement, 1/b with (THEORY.md §4)."""
        b, n = self.batch_size, self.n
        if self.replace:
            return 1.0 / b
        return (n - b) / (b * (n - 1)) if n > 1 else 0.0

    def num_batches(self) -> int:
        """C(n, b) subsets without replacement, C(n + b − 1, b) multisets with."""
        n, b = self.n, self.batch_size
        return math.comb(n + b - 1, b) if self.replace else math.comb(n, b)

    def enumerate(self, max_batches: int = 5000):
        """Every batch and its probability: indices (B, b) int32 and weights (B,) summing to 1 (the reference).

        Without replacement the C(n, b) subsets are equally likely (the order inside a batch does not change
        H_ξ); with replacement the multisets have multinomial weights b!/(Π m_i!)/n^b. `ValueError` above
        ``max_batches``.
        """
        max_batches = check_int("max_batches", max_batches)
        n, b = self.n, self.batch_size
        count = self.num_batches()
        if count > max_batches:
            raise ValueError(f"batch_size={b} with n={n} ({'with' if self.replace else 'without'} replacement) has "
                             f"{count} batches, more than max_batches={max_batches}: enumeration is only the "
                             f"reference; the partition formula (BatchCurvature) needs no enumeration")
        if not self.replace:
            idx = np.array(list(itertools.combinations(range(n), b)), dtype=np.int32)
            return idx, np.full(len(idx), 1.0 / len(idx))
        idx = np.array(list(itertools.combinations_with_replacement(range(n), b)), dtype=np.int32)
        fact = math.factorial(b)
        weights = np.array([fact / np.prod([math.factorial(c) for c in np.unique(row, return_counts=True)[1]])
                            for row in idx]) / n**b
        return idx, weights


MAX_ORDER = 4  # products of at most 4 batch-mean factors


@dataclasses.dataclass(frozen=True)
class BatchPattern:
    """What stays static of a `BatchDistribution` when its weights c_σ travel as arrays: n and ``max_blocks``, the
    largest number of blocks of an evaluated partition (1 at b = 1, else 4; c_σ = 0 whenever σ has more than b
    blocks, with or without replacement). One compiled program then serves every (b, replace) with the same n
    and pattern. It has no ``batch_size`` / ``replace`` on purpose: traced code that needs them fails loudly
    instead of using another batch's values."""

    n: int
    max_blocks: int
    max_order: int = 4  # the pattern is valid for products of at most this many factors (`batch_as_data`)


def batch_distribution(n: int, batch_size: int = 1, replace: bool = False) -> BatchDistribution:
    """A validated `BatchDistribution`: n ≥ 1, b ≥ 1, b ≤ n without replacement (ValueError naming the argument).

    Example:
      >>> from sam_theory.curvature import batch_distribution
      >>> batch_distribution(2, 2, replace=True).weights(2)    # E[H_ξ²] = ½ mean_i H_i² + ½ H²
      {((0, 1),): 0.5, ((0,), (1,)): 0.5}
      >>> batch_distribution(3, 4)
      Traceback (most recent call last):
        ...
      ValueError: batch_size must be <= n = 3 without replacement, got 4
    """
    n = check_int("n", n)
    batch_size = check_int("batch_size", batch_size)
    if not isinstance(replace, (bool, np.bool_)):
        raise ValueError(f"replace must be a bool, got {replace!r}")
    if not replace and batch_size > n:
        raise ValueError(f"batch_size must be <= n = {n} without replacement, got {batch_size}")
    return BatchDistribution(n, batch_size, bool(replace))


@functools.lru_cache(maxsize=None)
def _weights(n: int, b: int, replace: bool, k: int) -> dict:
    parts = set_partitions(k)
    out = {}
    for sigma in parts:
        if replace:
            c = Fraction(falling(b, len(sigma)), b**k)
        else:
            c = Fraction(0)
            for pi in parts:
                if len(pi) <= min(n, b) and refines(pi, sigma):
                    c += Fraction(falling(b, len(pi)) * mobius(pi, sigma) * n ** len(sigma),
                                  b**k * falling(n, len(pi)))
        if c != 0:
            out[sigma] = float(c)
    return out
