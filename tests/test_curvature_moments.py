"""hessian_moments: dense against closed forms and brute-force batch enumeration, matrix-free against dense."""
import itertools

import jax
import numpy as np
import pytest

from sam_theory.curvature import (enumerate_batches, hessian_moments, moments_discrepancy, per_example_hessians,
                                  s2_factor)
from sam_theory.problems.tanh_net import TanhNet
from sam_theory.problems import linear_regression

def test_linear_regression_closed_form(x64):
    prob = linear_regression(n=7, p=10, seed=2)
    mom = hessian_moments(prob, np.zeros(10))
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
    np.testing.assert_allclose(S2, s2_factor(n, b, replace) * Sigma, rtol=1e-12, atol=1e-12)
    idx, w = enumerate_batches(n, b, replace, 1000)
    assert w.sum() == pytest.approx(1.0, abs=1e-14)
    Hxi = Hi[idx].mean(1)
    np.testing.assert_allclose(np.einsum("b,bij,bjk->ik", w, Hxi, Hxi) - H @ H, S2, rtol=1e-12, atol=1e-12)


def test_dense_batch_moments_against_enumeration(x64):
    prob = TanhNet(n=5, seed=1)
    params = prob.init(jax.random.key(0))
    Hi = np.asarray(per_example_hessians(prob, params))
    H = Hi.mean(0)
    mom = hessian_moments(prob, params, batch_size=2)
    Hxi = np.array([Hi[list(c)].mean(0) for c in itertools.combinations(range(5), 2)])
    for k in (2, 3, 4):
        Sk = np.mean([np.linalg.matrix_power(h, k) for h in Hxi], 0) - np.linalg.matrix_power(H, k)
        ev = np.linalg.eigvalsh(0.5 * (Sk + Sk.T))
        assert mom.s_max[k] == pytest.approx(ev[-1], rel=1e-10)
        assert mom.s_min[k] == pytest.approx(ev[0], rel=1e-10)


CASES = [(2, True)]  # b = 1 and b = 3 without replacement: the check moments_matrix_free_vs_dense


def test_full_batch_has_zero_moments(x64):
    prob = TanhNet(n=5, seed=2)
    mom = hessian_moments(prob, prob.init(jax.random.key(1)), batch_size=5)
    assert all(abs(mom.s_max[k]) < 1e-13 and abs(mom.s_min[k]) < 1e-13 for k in mom.orders)


@pytest.mark.parametrize("batch_size,replace", CASES)
def test_matrix_free_equals_dense_tanh_net(x64, batch_size, replace):
    prob = TanhNet(n=5, seed=2)
    params = prob.init(jax.random.key(1))
    d = hessian_moments(prob, params, batch_size=batch_size, replace=replace)
    m = hessian_moments(prob, params, batch_size=batch_size, replace=replace, method="matrix_free")
    assert moments_discrepancy(m, d) <= 1.0


def test_matrix_free_hutchinson_traces(x64):
    prob = TanhNet(n=5, seed=2)
    params = prob.init(jax.random.key(1))
    d = hessian_moments(prob, params)
    assert d.s_min[3] < 0 < d.s_max[3]  # non-commuting, indefinite H_i: S_3 is indefinite here
    d = hessian_moments(prob, params, orders=(1, 2))
    m = hessian_moments(prob, params, orders=(1, 2), method="matrix_free", trace_method="hutchinson",
                        num_samples=200)
    for k in d.orders:
        assert abs(m.traces[k] - d.traces[k]) < 4 * m.trace_se[k]
        assert abs(m.per_sample_trace_mean[k] - d.per_sample_trace_mean[k]) < 4 * m.per_sample_trace_se[k]
    assert m.s_max == pytest.approx(d.s_max, rel=1e-10)  # the S_k ends do not depend on the trace method


def test_moments_validation(x64):
    prob = linear_regression(n=12, p=5)
    w = np.zeros(5)
    with pytest.raises(ValueError, match="max_batches"):
        hessian_moments(prob, w, batch_size=6, max_batches=100)
    with pytest.raises(ValueError, match="batch_size"):
        hessian_moments(prob, w, batch_size=13)
    with pytest.raises(ValueError, match="method"):
        hessian_moments(prob, w, method="sparse")
    with pytest.raises(ValueError, match="orders"):
        hessian_moments(prob, w, orders=(0, 2))
    # k = 2 alone needs no enumeration, for any b
    m = hessian_moments(prob, w, batch_size=6, orders=(2,))
    full = hessian_moments(prob, w, orders=(2,))
    assert m.s_max[2] == pytest.approx(s2_factor(12, 6, False) * full.s_max[2], rel=1e-12)
