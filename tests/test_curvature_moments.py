"""hessian_moments: dense against closed forms and brute-force batch enumeration, matrix-free against dense."""
import itertools

import jax
import numpy as np
import pytest

from sam_theory.curvature import (BatchCurvature, batch_distribution, hessian_moments, moments_discrepancy,
                                  per_example_hessians)
from sam_theory.problems.tanh_net import TanhNet
from sam_theory.problems import linear_regression

def test_linear_regression_closed_form(x64):
    prob = linear_regression(n=7, p=10, seed=2)
    mom = hessian_moments(BatchCurvature.from_problem(prob, np.zeros(10), method="dense"))
    X = prob.X
    Hi = np.einsum("ni,nj->nij", X, X)
    H = Hi.mean(0)
    for k in (1, 2, 3, 4):
        # H_i = a_i a_iᵀ ⇒ H_i^k = ‖a_i‖^{2(k−1)} a_i a_iᵀ, tr(H_i^k) = ‖a_i‖^{2k} (THEORY.md §3.1)
        Sk = np.einsum("n,ni,nj->ij", np.sum(X**2, 1) ** (k - 1), X, X) / 7 - np.linalg.matrix_power(H, k)
        ev = np.linalg.eigvalsh(Sk)
        assert mom.s_max[k] == pytest.approx(ev[-1], rel=1e-10, abs=1e-14)
        assert mom.s_min[k] == pytest.approx(ev[0], rel=1e-10, abs=1e-14)
        norms = np.sum(X**2, 1) ** k
        assert mom.per_sample_trace_mean[k] == pytest.approx(norms.mean(), rel=1e-12)
        assert mom.per_sample_trace_std[k] == pytest.approx(norms.std(), rel=1e-10)
    assert mom.a == pytest.approx(np.linalg.eigvalsh(H)[-1], rel=1e-12)
    assert mom.frobenius == pytest.approx(np.linalg.norm(H), rel=1e-12)
    assert mom.s[3] == pytest.approx(mom.s_max[3] ** (1 / 3), rel=1e-12)


@pytest.mark.parametrize("replace", [False, True])
def test_s2_factor_matches_brute_force_batches(x64, replace):
    """(n−b)/(b(n−1)) and 1/b against an explicit average over all ordered batches (THEORY.md §4)."""
    rng = np.random.default_rng(0)
    n, b, p = 5, 3, 4
    A = rng.standard_normal((n, p, p))
    Hi = A + np.swapaxes(A, 1, 2)
    H = Hi.mean(0)
    tuples = itertools.product(range(n), repeat=b) if replace else itertools.permutations(range(n), b)
    Hxi = np.array([Hi[list(t)].mean(0) for t in tuples])
    S2 = np.mean(Hxi @ Hxi, 0) - H @ H
    Sigma = np.mean(Hi @ Hi, 0) - H @ H
    dist = batch_distribution(n, b, replace)
    np.testing.assert_allclose(S2, dist.s2_factor() * Sigma, rtol=1e-12, atol=1e-12)
    idx, w = dist.enumerate(1000)
    assert w.sum() == pytest.approx(1.0, abs=1e-14)
    Hxi = Hi[idx].mean(1)
    np.testing.assert_allclose(np.einsum("b,bij,bjk->ik", w, Hxi, Hxi) - H @ H, S2, rtol=1e-12, atol=1e-12)


def test_dense_batch_moments_against_enumeration(x64):
    prob = TanhNet(n=5, seed=1)
    params = prob.init(jax.random.key(0))
    Hi = np.asarray(per_example_hessians(prob, params))
    H = Hi.mean(0)
    mom = hessian_moments(BatchCurvature.from_problem(prob, params, 2, method="dense"))
    Hxi = np.array([Hi[list(c)].mean(0) for c in itertools.combinations(range(5), 2)])
    for k in (2, 3, 4):
        Sk = np.mean([np.linalg.matrix_power(h, k) for h in Hxi], 0) - np.linalg.matrix_power(H, k)
        ev = np.linalg.eigvalsh(0.5 * (Sk + Sk.T))
        assert mom.s_max[k] == pytest.approx(ev[-1], rel=1e-10)
        assert mom.s_min[k] == pytest.approx(ev[0], rel=1e-10)


CASES = [(2, True)]  # b = 1 and b = 3 without replacement: the check moments_matrix_free_vs_dense


def test_full_batch_has_zero_moments(x64):
    prob = TanhNet(n=5, seed=2)
    for method in ("dense", "matrix_free"):
        mom = hessian_moments(BatchCurvature.from_problem(prob, prob.init(jax.random.key(1)), 5, method=method),
                              lanczos_iters=prob.num_params)
        assert all(abs(mom.s_max[k]) < 1e-13 and abs(mom.s_min[k]) < 1e-13 for k in mom.orders)


@pytest.mark.parametrize("batch_size,replace", CASES)
def test_matrix_free_equals_dense_tanh_net(x64, batch_size, replace):
    prob = TanhNet(n=5, seed=2)
    params = prob.init(jax.random.key(1))
    d = hessian_moments(BatchCurvature.from_problem(prob, params, batch_size, replace, method="dense"))
    m = hessian_moments(BatchCurvature.from_problem(prob, params, batch_size, replace, method="matrix_free"))
    assert moments_discrepancy(m, d) <= 1.0


def test_matrix_free_monte_carlo_crossing_term(x64):
    """The Monte Carlo crossing term of S_4: agrees with the exact one within its SE-based tolerance, and the SE
    is positive (it is a real estimate)."""
    prob = TanhNet(n=5, seed=2)
    params = prob.init(jax.random.key(1))
    d = hessian_moments(BatchCurvature.from_problem(prob, params, 2, method="dense"), orders=(4,))
    m = hessian_moments(BatchCurvature.from_problem(prob, params, 2, method="matrix_free"), orders=(4,),
                        crossing="monte_carlo", crossing_samples=400)
    assert m.s_crossing_se[4] > 0
    assert moments_discrepancy(m, d) <= 1.0


def test_matrix_free_hutchinson_traces(x64):
    prob = TanhNet(n=5, seed=2)
    params = prob.init(jax.random.key(1))
    dense = BatchCurvature.from_problem(prob, params, method="dense")
    d = hessian_moments(dense)
    assert d.s_min[3] < 0 < d.s_max[3]  # non-commuting, indefinite H_i: S_3 is indefinite here
    d = hessian_moments(dense, orders=(1, 2))
    m = hessian_moments(BatchCurvature.from_problem(prob, params, method="matrix_free"), orders=(1, 2),
                        trace_method="hutchinson", num_samples=200)
    for k in d.orders:
        assert abs(m.traces[k] - d.traces[k]) < 4 * m.trace_se[k]
        assert abs(m.per_sample_trace_mean[k] - d.per_sample_trace_mean[k]) < 4 * m.per_sample_trace_se[k]
    assert m.s_max == pytest.approx(d.s_max, rel=1e-10)  # the S_k ends do not depend on the trace method


def test_moments_validation(x64):
    prob = linear_regression(n=12, p=5)
    w = np.zeros(5)
    with pytest.raises(ValueError, match="batch_size"):
        BatchCurvature.from_problem(prob, w, 13)
    with pytest.raises(ValueError, match="method"):
        BatchCurvature.from_problem(prob, w, method="sparse")
    with pytest.raises(ValueError, match="curv"):
        hessian_moments(prob)
    curv = BatchCurvature.from_problem(prob, w, 6)
    with pytest.raises(ValueError, match="orders"):
        hessian_moments(curv, orders=(0, 2))
    with pytest.raises(ValueError, match="orders"):
        hessian_moments(curv, orders=(5,))
    with pytest.raises(ValueError, match="crossing"):
        hessian_moments(curv, crossing="sampled")
    # S_2 = c_b · (per-sample variance), for any b
    m = hessian_moments(curv, orders=(2,))
    full = hessian_moments(curv.with_batch(1), orders=(2,))
    assert m.s_max[2] == pytest.approx(batch_distribution(12, 6).s2_factor() * full.s_max[2], rel=1e-12)


def test_memory_budget_is_checked_eagerly(x64):
    """Over-budget dense requests raise a ValueError naming the estimate and the alternative (nothing is built)."""
    from sam_theory.curvature import hessian
    prob = linear_regression(n=20, p=50, n_test=0)
    w = np.zeros(50)
    with pytest.raises(ValueError, match="per_example_hessians.*matrix_free"):
        per_example_hessians(prob, w, memory_budget=1000)
    with pytest.raises(ValueError, match="hessian.*hvp"):
        hessian(prob.loss, w, memory_budget=1000)
    with pytest.raises(ValueError, match="method='dense'.*GiB.*matrix_free"):
        BatchCurvature.from_problem(prob, w, method="dense", memory_budget=1000)
    assert BatchCurvature.from_problem(prob, w, memory_budget=1000).method == "matrix_free"
    assert BatchCurvature.from_problem(prob, w).method == "dense"
