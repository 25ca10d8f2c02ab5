"""Batch moments by set partitions, dense and matrix-free: the one implementation of E_ξ[products of H_ξ]
(THEORY.md §4.1; used by S_k in §4 and by M, E[A_ξ], T(Σ) in §5).

`BatchCurvature` is the per-example curvature at one point (stacked per-example Hessians, or per-example HVPs)
together with the batch distribution of ξ (`BatchDistribution`). It is a pytree: build it once, pass it through
`jax.jit` / `jax.vmap`.

`expected_product(curv, word, fixed, V)` computes E_ξ[F_0 H_ξ F_1 H_ξ … H_ξ F_k] V for a *word* of k ≤ 4 batch-mean
factors "H" and fixed matrices (integers indexing ``fixed``) by

  E[word] = Σ_{σ ∈ Π(k)} c_σ E_σ   (c_σ: `BatchDistribution.weights`, with or without replacement),

where E_σ uses one independent uniform index per block of σ. E_σ is evaluated right to left on a state tensor
with one axis (of size n) per *open* block: applying H at a position of block B is the per-example product
H_i(·) along B's axis; a block's axis is averaged away after its leftmost position. Costs, counted in
per-example HVPs (one "sweep" is n of them, all examples at once):

- interval partitions (every block a run of consecutive positions): at most one open axis, O(1) sweeps per
  factor;
- a block nested inside another's span (e.g. {1,3}{2}: (1/n)Σ_i H_i H H_i): when the state has at least p/n
  columns (T(Σ) and dense moments apply the word to p columns) the nested block is first *materialized* as a
  p×p matrix (O(n) products), so every non-crossing partition stays O(n); applied to a single vector (Lanczos on
  S_k at large p) it costs n² products instead of p²·n memory (THEORY.md §4.1 counts the first case);
- the crossing partition {1,3}{2,4}: two open axes, n² products, evaluated in chunks of the outer index (a
  `lax.map`), or estimated without bias from ``crossing_samples`` random index pairs (``crossing="monte_carlo"``,
  see `crossing_estimate` for its standard error).

Per-example products come from the stored Hessians (einsum, method "dense") or from `PerExampleHVP` (a jvp of
the gradient, method "matrix_free"); the partition logic is shared. Batch enumeration is not used here (it is the
reference in `BatchDistribution.enumerate`).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.tree_util import Partial

from ..compiler import jit_fast_compile
from ..memory import array_bytes, check_fits, fits
from ..problems.base import Problem
from ..stats import mean_se
from ..validation import CURVATURE_HINT, check_choice, check_finite_array, check_finite_params, check_int
from .batches import MAX_ORDER, BatchDistribution, BatchPattern, batch_distribution, is_crossing, set_partitions
from .dense import per_example_hessians
from .operators import LinearOperator, per_example_hvp

METHODS = ("auto", "dense", "matrix_free")
CROSSING = ("exact", "monte_carlo")
WORKING_BYTES = 2**28  # state size above which the two-open-axes partitions are chunked over the outer index


@functools.partial(jax.tree_util.register_dataclass, data_fields=["hvp", "hessians", "coef"],
                   meta_fields=["dist", "size", "dtype"])
@dataclasses.dataclass(frozen=True)
class BatchCurvature:
    """Per-example curvature at one point plus the batch distribution of ξ (THEORY.md §1, §4.1).

    Attributes:
      hvp: `PerExampleHVP` (matrix-free), or None when ``hessians`` is stored.
      hessians: stacked symmetric H_i, shape (n, p, p) (dense), or None.
      dist: the `BatchDistribution` (n, batch_size, replace).
      size: p;  dtype: the dtype of the products.

    Build with `BatchCurvature.from_hessians` or `BatchCurvature.from_problem`; `with_batch` changes only the
    batch distribution. ``method`` is "dense" or "matrix_free".

    Example:
      >>> import numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import BatchCurvature
      >>> from sam_theory.problems import LinearRegression
      >>> with float64():
      ...     curv = BatchCurvature.from_hessians(np.array([[[1.0]], [[3.0]]]))   # n = 2, p = 1: H_i = 1, 3
      ...     free = BatchCurvature.from_problem(LinearRegression([[1.0, 0.0], [0.0, 2.0]], [0.0, 0.0]),
      ...                                        np.zeros(2), batch_size=2, method="matrix_free")
      >>> curv.n, curv.size, curv.method, curv.batch_size, curv.replace
      (2, 1, 'dense', 1, False)
      >>> curv.with_batch(2, replace=True).dist
      BatchDistribution(n=2, batch_size=2, replace=True)
      >>> free.method, free.n, free.size, free.batch_size
      ('matrix_free', 2, 2, 2)
    """

    hvp: Any
    hessians: Any
    dist: BatchDistribution | BatchPattern
    size: int
    dtype: Any
    coef: Any = None  # c_σ per order k = 1..4 as arrays, when dist is only the static `BatchPattern`

    @property
    def n(self) -> int:
        return self.dist.n

    @property
    def batch_size(self) -> int:
        return self.dist.batch_size

    @property
    def replace(self) -> bool:
        return self.dist.replace

    @property
    def method(self) -> str:
        return "dense" if self.hessians is not None else "matrix_free"

    def with_batch(self, batch_size: int, replace: bool = False) -> "BatchCurvature":
        """The same per-example curvature under another batch distribution."""
        return dataclasses.replace(self, dist=batch_distribution(self.n, batch_size, replace), coef=None)

    def batch_as_data(self, order: int = MAX_ORDER) -> "BatchCurvature":
        """The same curvature with the c_σ of ξ as arrays and only a `BatchPattern` static, so one compiled program
        serves every (b, replace) of that pattern (the jit boundaries of the partition sums use it). ``order``:
        the largest number of factors the caller multiplies (the pattern is capped there: fewer programs)."""
        if self.coef is None:
            coef = tuple(jnp.asarray(self.dist.coefficients(k), self.dtype) for k in range(1, MAX_ORDER + 1))
            self = dataclasses.replace(self, dist=self.dist.pattern(), coef=coef)
        pattern = self.dist
        return dataclasses.replace(self, dist=BatchPattern(self.n, min(pattern.max_blocks, order),
                                                           min(pattern.max_order, order)))

    # -- per-example products --------------------------------------------------------------------------------
    def apply_along(self, state, axis: int, idx=None):
        """H_{idx[l]} applied to every (p, m) slice state[…, l, …] along ``axis`` (idx None: l = i, all n)."""
        x = jnp.moveaxis(state, axis, 0)
        if self.hessians is not None:
            H = self.hessians if idx is None else self.hessians[idx]
            out = jnp.einsum("lpq,l...qm->l...pm", H, x)
        else:
            L, rest = x.shape[0], x.shape[1:-2]
            p, m = x.shape[-2:]
            flat = jnp.swapaxes(x, -1, -2).reshape(L, -1, p)  # (L, R, p): R = rest·m vectors per l
            if idx is None:
                out = jax.vmap(self.hvp.apply, in_axes=1, out_axes=1)(flat)
            else:
                R = flat.shape[1]
                out = self.hvp.apply_at(jnp.repeat(idx, R), flat.reshape(L * R, p)).reshape(L, R, p)
            out = jnp.swapaxes(out.reshape((L,) + rest + (m, p)), -1, -2)
        return jnp.moveaxis(out, 0, axis)

    def apply_at(self, idx, vs):
        """(H_{idx_j} v_j)_j for an index list (J,) and vectors (J, p)."""
        if self.hessians is not None:
            return jnp.einsum("jpq,jq->jp", self.hessians[idx], vs)
        return self.hvp.apply_at(idx, vs)

    def batch_apply(self, rows, V):
        """H_ξ V = (1/b) Σ_{i∈ξ} H_i V for one batch ``rows`` (b,) and V (p, m)."""
        return jnp.mean(self.apply_along(jnp.broadcast_to(V, (rows.shape[0],) + V.shape), 0, rows), axis=0)

    # -- constructors ------------------------------------------------------------------------------------------
    @staticmethod
    def from_hessians(hessians, batch_size: int = 1, replace: bool = False) -> "BatchCurvature":
        """From stacked symmetric per-example Hessians (n, p, p) (`ValueError` naming ``hessians`` on a wrong
        shape, non-finite or non-symmetric input)."""
        Hi = np.asarray(hessians)
        if Hi.ndim != 3 or Hi.shape[1] != Hi.shape[2] or Hi.shape[0] < 1 or Hi.shape[1] < 1:
            raise ValueError(f"hessians must have shape (n, p, p), got shape {Hi.shape}")
        if not np.issubdtype(Hi.dtype, np.number):
            raise ValueError(f"hessians must be numeric, got dtype {Hi.dtype}")
        check_finite_array("hessians", Hi)
        scale = max(float(np.abs(Hi).max()), np.finfo(float).tiny)
        if np.abs(Hi - np.swapaxes(Hi, 1, 2)).max() > 1e-10 * scale:
            raise ValueError("hessians must be symmetric matrices H_i = H_iᵀ")
        dtype = jnp.result_type(float)
        return BatchCurvature(None, jnp.asarray(Hi, dtype), batch_distribution(Hi.shape[0], batch_size, replace),
                              Hi.shape[1], jnp.dtype(dtype))

    @staticmethod
    def from_problem(problem: Problem, params, batch_size: int = 1, replace: bool = False, *,
                     method: str = "auto", memory_budget=None) -> "BatchCurvature":
        """At ``params`` of ``problem``: per-example HVPs (jvp of the gradient), plus the n·p² per-example
        Hessians when ``method="dense"``, or under ``"auto"`` when they fit ``memory_budget`` (bytes; None: a
        quarter of the available memory, `sam_theory.memory`). An explicit "dense" over the budget raises
        `ValueError` with the estimate and the alternative."""
        if not isinstance(problem, Problem):
            raise ValueError(f"problem must be a Problem, got {type(problem).__name__}")
        check_choice("method", method, METHODS)
        dist = batch_distribution(problem.n, batch_size, replace)
        check_finite_params("params", params, CURVATURE_HINT)
        pe = per_example_hvp(problem, params)
        nbytes = array_bytes((pe.n, pe.size, pe.size), pe.dtype)
        if method == "auto":
            method = "dense" if fits(nbytes, memory_budget) else "matrix_free"
        if method == "dense":
            check_fits("method='dense' (per-example Hessians n·p²)", nbytes, memory_budget,
                       "use method='matrix_free' (per-example HVPs) or method='auto'")
            Hi = per_example_hessians(problem, params, memory_budget=memory_budget)
            Hi, finite = _symmetrized(jnp.reshape(Hi, (pe.n, pe.size, pe.size)))
            if not bool(finite):
                raise ValueError(f"the per-example Hessians at params overflow {Hi.dtype} (max |params| = "
                                 f"{max(float(jnp.max(jnp.abs(x))) for x in jax.tree.leaves(params)):.3g})"
                                 f"{CURVATURE_HINT}")
            return BatchCurvature(None, Hi, dist, pe.size, pe.dtype)
        return BatchCurvature(pe, None, dist, pe.size, pe.dtype)


@jit_fast_compile
def _symmetrized(Hi):
    """(H_i + H_iᵀ)/2 and whether every entry is finite, in one program (not op by op)."""
    return 0.5 * (Hi + jnp.swapaxes(Hi, 1, 2)), jnp.isfinite(Hi).all()


def dense_operator_bytes(curv: BatchCurvature) -> int:
    """Memory of the dense stability operator on symmetric matrices: five (d, d) blocks, d = p(p+1)/2, plus the
    (d, p, p) basis images (THEORY.md §5).

    Example:
      >>> import numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import BatchCurvature, dense_operator_bytes
      >>> with float64():
      ...     curv = BatchCurvature.from_hessians(np.zeros((3, 2, 2)))   # p = 2: d = p(p+1)/2 = 3
      >>> dense_operator_bytes(curv)                            # 8 bytes × (6d·d + d·p²) = 8 × (54 + 12)
      528
    """
    d = curv.size * (curv.size + 1) // 2
    return array_bytes((6 * d, d), curv.dtype) + array_bytes((d, curv.size, curv.size), curv.dtype)


# --- words and partitions --------------------------------------------------------------------------------------

def _positions(seq):
    return [t for t, (kind, _) in enumerate(seq) if kind == "H"]


def _blocks_in(seq):
    return sorted({x for kind, x in seq if kind == "H"})


def _nested_interval_block(seq):
    """A block whose H entries are consecutive among the H entries and lie strictly inside another block's span."""
    hs = _positions(seq)
    labels = [seq[t][1] for t in hs]
    for b in _blocks_in(seq):
        where = [j for j, lab in enumerate(labels) if lab == b]
        if where != list(range(where[0], where[-1] + 1)):
            continue
        left, right = set(labels[:where[0]]), set(labels[where[-1] + 1:])
        if left & right:
            return b, hs[where[0]], hs[where[-1]]
    return None


def _max_open(seq):
    """Largest number of simultaneously open blocks when evaluating right to left."""
    leftmost = {}
    for t, (kind, x) in enumerate(seq):
        if kind == "H":
            leftmost.setdefault(x, t)
    open_, best = set(), 0
    for t in reversed(range(len(seq))):
        kind, x = seq[t]
        if kind == "H":
            open_.add(x)
            best = max(best, len(open_))
            if leftmost[x] == t:
                open_.discard(x)
    return best


def _run(curv: BatchCurvature, seq, V, axes):
    """E over the blocks' indices of the product ``seq`` applied to V, right to left (module docstring).

    ``axes``: dict block → (axis key, idx or None, weights or None); blocks sharing an axis key share one state
    axis (Monte Carlo pairs). weights None means the plain mean over n.
    """
    leftmost = {}
    for t, (kind, x) in enumerate(seq):
        if kind == "H":
            key = axes[x][0]
            leftmost[key] = min(leftmost.get(key, t), t)
    state, open_axes = V, []
    for t in reversed(range(len(seq))):
        kind, x = seq[t]
        if kind == "F":
            state = jnp.einsum("pq,...qm->...pm", x, state)
            continue
        key, idx, w = axes[x]
        if key not in open_axes:
            size = curv.n if idx is None else idx.shape[0]
            state = jnp.broadcast_to(state[None], (size,) + state.shape)
            open_axes.insert(0, key)
        d = open_axes.index(key)
        state = curv.apply_along(state, d, idx)
        if leftmost[key] == t:
            state = jnp.mean(state, axis=d) if w is None else jnp.tensordot(w, state, axes=(0, d))
            open_axes.remove(key)
    return state


def _materialize(curv, seq):
    """Replace nested interval blocks by their p×p mean products (fixed factors)."""
    eye = jnp.eye(curv.size, dtype=curv.dtype)
    while (found := _nested_interval_block(seq)) is not None:
        b, lo, hi = found
        G = _run(curv, seq[lo:hi + 1], eye, {b: (b, None, None)})
        seq = seq[:lo] + [("F", G)] + seq[hi + 1:]
    return seq


def _outer_block(seq):
    """The block opened first from the right (its axis is the one chunked)."""
    for t in reversed(range(len(seq))):
        if seq[t][0] == "H":
            return seq[t][1]


def _chunk_size(curv, seq, V):
    per = curv.n * int(np.prod(V.shape)) * np.dtype(curv.dtype).itemsize  # one outer index: (n, p, m) state
    return int(max(1, min(curv.n, WORKING_BYTES // max(per, 1))))


def _exact(curv, seq, V):
    blocks = _blocks_in(seq)
    axes = {b: (b, None, None) for b in blocks}
    if _max_open(seq) < 2:
        return _run(curv, seq, V, axes)
    outer = _outer_block(seq)
    c = _chunk_size(curv, seq, V)
    if c >= curv.n:
        return _run(curv, seq, V, axes)
    num = -(-curv.n // c)
    ids = jnp.arange(num * c)
    idx = (ids % curv.n).reshape(num, c)
    w = (jnp.where(ids < curv.n, 1.0, 0.0) / curv.n).astype(curv.dtype).reshape(num, c)

    def chunk(args):
        i, wi = args
        return _run(curv, seq, V, {**axes, outer: (outer, i, wi)})
    return jnp.sum(lax.map(chunk, (idx, w)), axis=0)


def _sampled_axes(seq, key, samples: int, n: int):
    """Both blocks of a two-block partition on one sample axis: pairs (i_s, j_s) and the swapped pairs (j_s, i_s),
    so the estimate of the (symmetric) exact sum is itself symmetric; 2·samples entries, weight 1/(2·samples)."""
    a, b = _blocks_in(seq)
    i, j = jax.random.randint(key, (2, samples), 0, n)
    w = jnp.full((2 * samples,), 0.5 / samples)
    return {a: ("pair", jnp.concatenate([i, j]), w), b: ("pair", jnp.concatenate([j, i]), w)}


def _word_seq(word, fixed, sigma):
    block_of = {pos: bid for bid, block in enumerate(sigma) for pos in block}
    seq, h = [], 0
    for item in word:
        if item == "H":
            seq.append(("H", block_of[h]))
            h += 1
        else:
            seq.append(("F", fixed[item]))
    return seq


def _all_singletons(k):
    return tuple((t,) for t in range(k))


def _weights(curv, k):
    """{σ: c_σ}: Python floats from a static `BatchDistribution` (zeros dropped), or entries of ``curv.coef``
    (arrays, every σ with at most ``max_blocks`` blocks) after `BatchCurvature.batch_as_data`."""
    if curv.coef is None:
        return dict(curv.dist.weights(k))
    if k > curv.dist.max_order:
        raise ValueError(f"this BatchCurvature was reduced for products of at most {curv.dist.max_order} factors "
                         f"(batch_as_data(order)), got {k}")
    return {sigma: curv.coef[k - 1][j] for j, sigma in enumerate(set_partitions(k))
            if len(sigma) <= curv.dist.max_blocks}


def _expected(curv, word, fixed, V, key, *, minus_mean, crossing, samples):
    k = sum(1 for item in word if item == "H")
    out = jnp.zeros((curv.size, V.shape[1]), curv.dtype)
    weights = _weights(curv, k)
    if minus_mean:  # subtract the all-singletons E_σ = the product with H in place of H_ξ (exactly, not by c_σ − 1)
        single = _all_singletons(k)
        weights[single] = weights.get(single, 0.0) - 1.0
    materialize = curv.size <= curv.n * V.shape[1]
    for sigma, c in weights.items():
        if isinstance(c, float) and c == 0.0:
            continue
        seq = _word_seq(word, fixed, sigma)
        if materialize:
            seq = _materialize(curv, seq)
        if crossing == "monte_carlo" and is_crossing(sigma):
            term = _run(curv, seq, V, _sampled_axes(seq, jax.random.fold_in(key, hash(sigma) % 2**31), samples,
                                                     curv.n))
        else:
            term = _exact(curv, seq, V)
        out = out + c * term
    return out


@functools.partial(jit_fast_compile, static_argnames=("word", "minus_mean", "crossing", "samples"))
def _expected_jit(curv, fixed, V, key, *, word, minus_mean, crossing, samples):
    return _expected(curv, word, fixed, V, key, minus_mean=minus_mean, crossing=crossing, samples=samples)


def _identity(curv):
    return jnp.asarray(np.eye(curv.size), curv.dtype)  # built on the host: no eager iota/eq/convert compiles


def _order(word) -> int:
    return sum(1 for item in word if item == "H")


def _check_word(word, fixed):
    if not isinstance(word, tuple) or not word:
        raise ValueError(f"word must be a non-empty tuple of 'H' and indices into fixed, got {word!r}")
    k = 0
    for item in word:
        if item == "H":
            k += 1
        elif not (isinstance(item, int) and 0 <= item < len(fixed)):
            raise ValueError(f"word items must be 'H' or an index into fixed (0..{len(fixed) - 1}), got {item!r}")
    if not 1 <= k <= 4:
        raise ValueError(f"word must hold 1 to 4 batch-mean factors 'H', got {k}")


def expected_product(curv: BatchCurvature, word, fixed=(), V=None, *, minus_mean: bool = False,
                     crossing: str = "exact", crossing_samples: int = 256, key=None):
    """E_ξ[F_0 H_ξ F_1 … H_ξ F_k] V by set partitions (THEORY.md §4.1).

    Cost in per-example products (HVPs or stored-Hessian matvecs), per column of V: interval partitions O(n) per
    factor; a block nested inside another's span ({1,3}{2}, {1,4}{2,3}, …) O(n) only when V has ≥ p/n columns
    (its p×p mean is then materialized once, p·n products), otherwise n² (applied to one vector, as in Lanczos on
    S_k); the crossing {1,3}{2,4} n² (chunked), or 4·``crossing_samples`` with ``crossing="monte_carlo"``.
    THEORY.md §4.1's "O(n) for every non-crossing partition" assumes the materialization.

    Args:
      curv: the `BatchCurvature` (per-example curvature and batch distribution).
      word: a tuple of "H" (a batch-mean factor H_ξ; 1 to 4 of them) and integers (``fixed[j]``, a (p, p)
        matrix), read left to right, e.g. ("H", "H", 0, "H", "H") is H_ξ² Σ H_ξ² with fixed = (Σ,).
      V: (p, m) columns to apply the product to (None: the identity, i.e. the dense (p, p) expectation).
      minus_mean: subtract the same word with H in place of every H_ξ (so ("H",)*k gives S_k).
      crossing: "exact" (n² products, chunked) or "monte_carlo" (``crossing_samples`` random index pairs, drawn
        with ``key``, for the crossing partition {1,3}{2,4} only: an unbiased estimate of that term).

    Example (n = 2 examples H_1 = 1, H_2 = 3, p = 1, by hand):
      >>> import numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import BatchCurvature, expected_product
      >>> with float64():
      ...     curv = BatchCurvature.from_hessians(np.array([[[1.0]], [[3.0]]]))   # b = 1
      ...     one = expected_product(curv, ("H", "H"))                            # (1² + 3²)/2
      ...     two = expected_product(curv.with_batch(2, replace=True), ("H", "H"))   # H² + Var/b = 4 + 1/2
      ...     sandwich = expected_product(curv, ("H", 0, "H"), fixed=(np.array([[2.0]]),))   # 2·(1² + 3²)/2
      >>> [round(float(x[0, 0]), 10) for x in (one, two, sandwich)]
      [5.0, 4.5, 10.0]
    """
    fixed = tuple(jnp.asarray(f, curv.dtype) for f in fixed)
    _check_word(tuple(word), fixed)
    check_choice("crossing", crossing, CROSSING)
    samples = check_int("crossing_samples", crossing_samples)
    V = _identity(curv) if V is None else jnp.asarray(V, curv.dtype)
    if V.ndim != 2 or V.shape[0] != curv.size:
        raise ValueError(f"V must have shape ({curv.size}, m), got {V.shape}")
    key = jax.random.key(0) if key is None else key
    return _expected_jit(curv.batch_as_data(_order(word)), fixed, V, key, word=tuple(word), minus_mean=bool(minus_mean),
                         crossing=crossing, samples=samples)


@functools.partial(jit_fast_compile, static_argnames=("word", "sigma"))
def _partition_term_jit(curv, fixed, V, *, word, sigma):
    seq = _word_seq(word, fixed, sigma)
    if curv.size <= curv.n * V.shape[1]:
        seq = _materialize(curv, seq)
    return _exact(curv, seq, V)


def partition_term(curv: BatchCurvature, word, sigma, fixed=(), V=None):
    """E_σ V for one set partition σ of the word's "H" positions (one independent index per block; THEORY.md
    §4.1), exact. ``sigma`` is a tuple of blocks of positions 0..k−1 (`sam_theory.curvature.set_partitions`).
    For costing single terms (benchmarks) and for tests; `expected_product` sums c_σ E_σ. Cost as in
    `expected_product`: O(n) products per factor and column for interval σ, a nested block O(n) only when V has
    ≥ p/n columns (else n²), the crossing {1,3}{2,4} n².

    Example:
      >>> import numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import BatchCurvature, partition_term, set_partitions
      >>> with float64():
      ...     curv = BatchCurvature.from_hessians(np.array([[[1.0]], [[3.0]]]))   # H_1 = 1, H_2 = 3
      ...     terms = [float(partition_term(curv, ("H", "H"), s)[0, 0]) for s in set_partitions(2)]
      >>> [round(x, 10) for x in terms]                         # {0,1}: (1/n) Σ_i H_i² = 5;  {0}{1}: H² = 4
      [5.0, 4.0]
    """
    fixed = tuple(jnp.asarray(f, curv.dtype) for f in fixed)
    _check_word(tuple(word), fixed)
    k = sum(1 for item in word if item == "H")
    sigma = tuple(tuple(int(t) for t in block) for block in sigma)
    if sorted(t for block in sigma for t in block) != list(range(k)):
        raise ValueError(f"sigma must partition the positions 0..{k - 1}, got {sigma}")
    V = _identity(curv) if V is None else jnp.asarray(V, curv.dtype)
    return _partition_term_jit(curv.batch_as_data(k), fixed, V, word=tuple(word), sigma=sigma)


def crossing_estimate(curv: BatchCurvature, v, samples: int, key):
    """The crossing term of S_4 in direction v: c_σ·vᵀ[(1/n²)Σ_{i,j} H_iH_jH_iH_j]v with σ = {1,3}{2,4}, estimated
    from ``samples`` uniform pairs (i, j) (each used with its swap (j, i)), as (estimate, standard error, exact
    weight c_σ). Unbiased; SE = sample std/√samples.

    Example:
      >>> import jax, numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import BatchCurvature, crossing_estimate
      >>> with float64():
      ...     curv = BatchCurvature.from_hessians(np.array([[[1.0]], [[3.0]]]), batch_size=2, replace=True)
      ...     est, se, c = crossing_estimate(curv, np.ones(1), 200, jax.random.key(0))
      >>> c, abs(est - c * 25.0) < 4 * se      # c_σ = b^(2)/b⁴ = 1/8; (1/n²) Σ_ij H_i²H_j² = 5² = 25
      (0.125, True)
    """
    sigma = ((0, 2), (1, 3))
    c = curv.dist.weights(4).get(sigma, 0.0)
    v = jnp.asarray(v, curv.dtype)
    i, j = jax.random.randint(key, (2, check_int("samples", samples)), 0, curv.n)
    vals = _pair_values(curv, v, i, j)
    mean, se = mean_se(np.asarray(vals))
    return c * float(mean), abs(c) * float(se), c


@jit_fast_compile
def _pair_values(curv, v, i, j):
    def chain(a, b):  # vᵀ H_a H_b H_a H_b v, both orders averaged (the pair and its swap)
        u = v[None].repeat(a.shape[0], 0)
        for idx in (b, a, b, a):
            u = curv.apply_at(idx, u)
        return u @ v
    return 0.5 * (chain(i, j) + chain(j, i))


def stochastic_moment(curv: BatchCurvature, k: int, V=None, **kwargs):
    """S_k V = (E_ξ[H_ξ^k] − H^k) V (THEORY.md §4); V None gives the dense (p, p) S_k. S_1 = 0.

    Example:
      >>> import numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import BatchCurvature, stochastic_moment
      >>> with float64():
      ...     curv = BatchCurvature.from_hessians(np.array([[[1.0]], [[3.0]]]))   # H_1 = 1, H_2 = 3
      ...     s2 = [float(stochastic_moment(curv.with_batch(b), 2)[0, 0]) for b in (1, 2)]
      >>> [round(x, 10) for x in s2]    # c_b((1/n) Σ H_i² − H²) = c_b·1; c_1 = 1, c_2 = 0 (b = n, no replacement)
      [1.0, 0.0]
    """
    k = check_int("k", k)
    if k == 1:
        return jnp.zeros((curv.size, curv.size if V is None else jnp.shape(V)[1]), curv.dtype)
    return expected_product(curv, ("H",) * k, (), V, minus_mean=True, **kwargs)


@dataclasses.dataclass(frozen=True)
class _WordMatvec:
    """v ↦ E[word] v (hashable static part of a word operator: equal words share one compiled Lanczos)."""

    word: tuple
    minus_mean: bool
    crossing: str
    samples: int

    def __call__(self, curv, fixed, key, v):
        return _expected(curv, self.word, fixed, v[:, None], key, minus_mean=self.minus_mean,
                         crossing=self.crossing, samples=self.samples)[:, 0]


def word_operator(curv: BatchCurvature, word, fixed=(), *, minus_mean: bool = False, crossing: str = "exact",
                  crossing_samples: int = 256, key=None) -> LinearOperator:
    """v ↦ E_ξ[word] v as a `LinearOperator` (see `expected_product`; symmetric when the word is a palindrome of
    H's with symmetric fixed matrices, e.g. S_k). A Monte Carlo crossing term uses the same pairs at every
    product (``key``), so the operator is fixed and symmetric.

    Example:
      >>> import numpy as np
      >>> from sam_theory import float64
      >>> from sam_theory.curvature import BatchCurvature, word_operator
      >>> with float64():
      ...     curv = BatchCurvature.from_hessians(np.array([[[1.0]], [[3.0]]]))   # H_1 = 1, H_2 = 3, b = 1
      ...     S2 = word_operator(curv, ("H", "H"), minus_mean=True).as_dense()   # v ↦ S_2 v
      >>> [[round(x, 10) for x in row] for row in S2.tolist()]  # (1 + 9)/2 − 2²
      [[1.0]]
    """
    fixed = tuple(jnp.asarray(f, curv.dtype) for f in fixed)
    _check_word(tuple(word), fixed)
    check_choice("crossing", crossing, CROSSING)
    fn = _WordMatvec(tuple(word), bool(minus_mean), crossing, check_int("crossing_samples", crossing_samples))
    key = jax.random.key(0) if key is None else key
    return LinearOperator(Partial(fn, curv, fixed, key), curv.size, curv.dtype,
                          None if curv.hvp is None else curv.hvp.unravel)
