"""Batch moments by set partitions (THEORY.md §4.1) against batch enumeration, dense and matrix-free."""
import itertools

import jax
import numpy as np
import pytest

from sam_theory.curvature import BatchCurvature, batch_distribution, expected_product, set_partitions
from sam_theory.curvature.batches import is_crossing, mobius, refines
from sam_theory.problems import linear_regression
from sam_theory.testing import random_psd_hessians

WORDS = [("H",), ("H", "H"), ("H", "H", "H"), ("H", "H", "H", "H"), ("H", 0, "H"), ("H", "H", 0, "H"),
         ("H", 0, "H", "H"), ("H", "H", 0, "H", "H"), (0, "H", "H", 0, "H", "H")]


def _enumerated(Hi, word, fixed, dist):
    """Σ_ξ w_ξ (product with H_ξ) over every batch (NumPy reference)."""
    idx, w = dist.enumerate()
    out = 0.0
    for rows, wi in zip(idx, w):
        Hx = Hi[rows].mean(0)
        M = np.eye(Hi.shape[1])
        for item in word:
            M = M @ (Hx if item == "H" else fixed[item])
        out = out + wi * M
    return out


def test_partition_lattice():
    assert [len(set_partitions(k)) for k in range(5)] == [1, 1, 2, 5, 15]
    crossing = [s for s in set_partitions(4) if is_crossing(s)]
    assert crossing == [((0, 2), (1, 3))]
    top, bottom = ((0, 1, 2),), ((0,), (1,), (2,))
    assert refines(bottom, top) and not refines(top, bottom)
    assert mobius(bottom, top) == 2  # (−1)^{3−1}(3−1)!


@pytest.mark.parametrize("replace", [False, True])
def test_dense_partitions_match_enumeration(x64, replace):
    n, p = 5, 3
    Hi = random_psd_hessians(n, p, 3)
    S = np.random.default_rng(1).standard_normal((p, p))
    S = S + S.T
    for b in (1, 2, 3, 5):
        curv = BatchCurvature.from_hessians(Hi, b, replace)
        for word in WORDS:
            ref = _enumerated(Hi, word, (S,), curv.dist)
            got = np.asarray(expected_product(curv, word, (S,)))
            np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12 * np.abs(ref).max())


def test_full_batch_without_replacement_has_no_noise(x64):
    """b = n without replacement: every weight but the all-singletons one is exactly 0, so S_k = 0 exactly."""
    Hi = random_psd_hessians(4, 3, 0)
    curv = BatchCurvature.from_hessians(Hi, 4)
    for k in (2, 3, 4):
        w = curv.dist.weights(k)
        assert list(w) == [tuple((t,) for t in range(k))] and w[tuple((t,) for t in range(k))] == 1.0
        S = np.asarray(expected_product(curv, ("H",) * k, minus_mean=True))
        assert np.abs(S).max() <= 1e-14


def test_matrix_free_matches_dense_on_vectors_and_chunks(x64, monkeypatch):
    """Per-example HVPs give the same products as stored Hessians, on one vector (no materialization, two open
    axes) and on p columns; a tiny working-memory bound forces the chunked crossing term."""
    import sam_theory.curvature.batch_moments as bm
    prob = linear_regression(n=6, p=4, seed=0, n_test=0)
    w = np.random.default_rng(0).standard_normal(4)
    dense = BatchCurvature.from_problem(prob, w, 3, method="dense")
    free = BatchCurvature.from_problem(prob, w, 3, method="matrix_free")
    v = np.random.default_rng(1).standard_normal((4, 1))
    for word in WORDS[:4]:
        ref = np.asarray(expected_product(dense, word, (np.eye(4),)))
        np.testing.assert_allclose(np.asarray(expected_product(free, word, (np.eye(4),))), ref, atol=1e-13)
        np.testing.assert_allclose(np.asarray(expected_product(free, word, (np.eye(4),), v)), ref @ v, atol=1e-13)
    monkeypatch.setattr(bm, "WORKING_BYTES", 8)
    jax.clear_caches()
    ref = np.asarray(expected_product(dense, ("H",) * 4))
    np.testing.assert_allclose(np.asarray(expected_product(free, ("H",) * 4, V=v)), ref @ v, atol=1e-13)
    jax.clear_caches()


def test_monte_carlo_crossing_is_unbiased(x64):
    """The Monte Carlo crossing term: symmetric, and its mean over independent keys is within 4 SE of exact."""
    Hi = random_psd_hessians(5, 3, 1)
    curv = BatchCurvature.from_hessians(Hi, 2)
    exact = np.asarray(expected_product(curv, ("H",) * 4))
    runs = np.array([np.asarray(expected_product(curv, ("H",) * 4, crossing="monte_carlo", crossing_samples=50,
                                                 key=jax.random.key(s))) for s in range(30)])
    assert np.abs(runs - np.swapaxes(runs, 1, 2)).max() < 1e-12
    mean, se = runs.mean(0), runs.std(0, ddof=1) / np.sqrt(len(runs))
    assert np.all(np.abs(mean - exact) <= 4 * se + 1e-12)
    assert np.abs(runs[0] - exact).max() > 1e-6  # it is an estimate, not the exact term


def test_word_and_distribution_validation(x64):
    curv = BatchCurvature.from_hessians(random_psd_hessians(3, 2, 0))
    with pytest.raises(ValueError, match="word"):
        expected_product(curv, ("H",) * 5)
    with pytest.raises(ValueError, match="word"):
        expected_product(curv, ("H", 1, "H"), (np.eye(2),))
    with pytest.raises(ValueError, match="batch_size"):
        batch_distribution(3, 4)
    with pytest.raises(ValueError, match="replace"):
        batch_distribution(3, 2, "yes")
    with pytest.raises(ValueError, match="max_batches"):
        batch_distribution(20, 4).enumerate(100)
    with pytest.raises(ValueError, match="hessians"):
        BatchCurvature.from_hessians(np.ones((2, 3, 4)))
    assert batch_distribution(7, 3).num_batches() == 35
    assert len(list(itertools.islice(iter(batch_distribution(4, 2, True).enumerate()[0]), 100))) == 10


def test_one_compiled_program_serves_every_batch_size_and_sampling(x64):
    """The c_σ travel as data (`BatchCurvature.batch_as_data`): every (b ≥ 2, replace) of one n shares one
    compiled program per word, b = 1 has its own (one-block partition only), and each still matches enumeration."""
    from sam_theory.curvature.batch_moments import _expected_jit
    Hi = random_psd_hessians(5, 3, seed=11)
    word = ("H", "H", "H", "H")
    _expected_jit.clear_cache()  # other tests may have compiled the same shapes already
    for b in (1, 2, 3, 4, 5):
        for replace in (False, True):
            curv = BatchCurvature.from_hessians(Hi, b, replace)
            got = np.asarray(expected_product(curv, word))
            ref = _enumerated(Hi, word, (), curv.dist)
            assert np.abs(got - ref).max() < 1e-12 * np.abs(ref).max()
    assert _expected_jit._cache_size() == 2
    reduced = BatchCurvature.from_hessians(Hi, 2).batch_as_data(1)
    with pytest.raises(ValueError, match="at most 1 factors"):
        expected_product(reduced, ("H", "H"))
    with pytest.raises(AttributeError):
        reduced.batch_size  # the static pattern has no batch size: traced code cannot use a stale one
