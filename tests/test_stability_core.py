"""Theorem A core (THEORY.md §5): the operator T dense vs matrix-free, self-adjointness, closed forms, validation."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sam_theory.testing import commuting_hessians, interpolating_diagonal_net, random_psd_hessians
from sam_theory.curvature import BatchCurvature
from sam_theory.stability import (critical_learning_rate, escape_test, is_linearly_stable, moment_matrix,
                                  necessary_conditions, second_moment_operator, simulate_linearized,
                                  spectral_radius)
from sam_theory.stability.moments import symmetric_basis


@pytest.fixture
def Hi():
    return random_psd_hessians(5, 3, 0)


def _curv(Hi, b=1, replace=False):
    return BatchCurvature.from_hessians(Hi, b, replace)


def _sym(p, seed):
    X = np.random.default_rng(seed).standard_normal((p, p))
    return X + X.T


def test_dense_and_matrix_free_operator_agree(x64, Hi):
    """On symmetric Σ, the p²×p² matrix and the matrix-free map give the same T(Σ), and both equal a hand sum."""
    eta, rho, b = 0.4, 0.3, 2
    T = second_moment_operator(_curv(Hi, b), eta, rho, method="dense")
    op = second_moment_operator(_curv(Hi, b), eta, rho, method="matrix_free")
    X = _sym(3, 1)
    import itertools
    ref = np.zeros((3, 3))
    batches = list(itertools.combinations(range(5), b))
    for rows in batches:
        Hx = Hi[list(rows)].mean(0)
        B = np.eye(3) - eta * (Hx + rho * Hx @ Hx)
        ref += B @ X @ B / len(batches)
    np.testing.assert_allclose((T @ X.ravel()).reshape(3, 3), ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(op.matvec(jnp.asarray(X.ravel()))).reshape(3, 3), ref, rtol=1e-12,
                               atol=1e-12)
    r_dense = spectral_radius(_curv(Hi, b), eta, rho, method="dense")
    r_free = spectral_radius(_curv(Hi, b), eta, rho, method="matrix_free")
    assert abs(r_dense.value - r_free.value) <= 1e-10 + r_free.residual
    assert r_dense.residual < 1e-12


def test_operator_self_adjoint_and_positive(x64, Hi):
    """⟨Y, T(X)⟩_F = ⟨T(Y), X⟩_F on symmetric matrices, and T maps PSD to PSD."""
    T = second_moment_operator(_curv(Hi), 0.7, 0.2)
    X, Y = _sym(3, 2), _sym(3, 3)
    lhs = Y.ravel() @ T @ X.ravel()
    rhs = (T @ Y.ravel()) @ X.ravel()
    assert abs(lhs - rhs) <= 1e-12 * abs(lhs)
    P = X @ X.T
    assert np.linalg.eigvalsh((T @ P.ravel()).reshape(3, 3)).min() >= -1e-12


def test_spectral_radius_commuting_b1_closed_form(x64):
    """Diagonal H_i, b = 1: r(T) = max_j (1/n)Σ_i (1 − ηh_ij − ηρh_ij²)² (the per-direction criterion)."""
    Hi = commuting_hessians(6, 3, 1)
    eta, rho = 0.9, 0.25
    h = np.diagonal(Hi, axis1=1, axis2=2)  # (n, p)
    closed = np.max(np.mean((1 - eta * h - eta * rho * h**2) ** 2, axis=0))
    r = spectral_radius(_curv(Hi), eta, rho)
    assert abs(r.value - closed) <= 1e-12 * closed


def test_moment_identity_matches_expectation(x64, Hi):
    for b, rep in ((1, False), (2, True), (3, False)):
        curv = _curv(Hi, b, rep)
        idx, w = curv.dist.enumerate()
        Hx = Hi[idx].mean(1)
        B = np.eye(3) - 0.5 * (Hx + 0.3 * Hx @ Hx)
        M_e = np.einsum("b,bij,bjk->ik", w, B, B)
        M_f = moment_matrix(curv, 0.5, 0.3)
        assert np.abs(M_e - M_f).max() <= 1e-12 * np.abs(M_e).max()


def test_problem_input_matches_dense_hessians(x64):
    """(problem, params) uses per-example HVPs; it agrees with the dense per-example Hessians."""
    from sam_theory.curvature import per_example_hessians
    prob, x_star = interpolating_diagonal_net(0, n=4, d=3)
    Hi = np.asarray(per_example_hessians(prob, x_star))
    free = BatchCurvature.from_problem(prob, x_star, 2, method="matrix_free")
    M_p = moment_matrix(free, 0.1, 0.05)
    M_d = moment_matrix(_curv(Hi, 2), 0.1, 0.05)
    np.testing.assert_allclose(M_p, M_d, rtol=1e-12, atol=1e-12)
    assert abs(spectral_radius(free, 0.1, 0.05).value - spectral_radius(_curv(Hi, 2), 0.1, 0.05).value) < 1e-12


@pytest.mark.parametrize("a,rho", [(1.7, 0.0), (1.7, 0.3), (0.4, 2.0)])
def test_critical_lr_one_dimensional(x64, a, rho):
    """p = n = 1: r = (1 − ηa − ηρa²)², so η_c solves ηa(1 + ρa) = 2."""
    curv = _curv(np.array([[[a]]]))
    crit = critical_learning_rate(curv, rho, tol=1e-14)
    exact = 2 / (a * (1 + rho * a))
    assert abs(crit.eta - exact) <= 1e-10 * exact and crit.reason == ""
    assert is_linearly_stable(curv, 0.99 * exact, rho)
    assert not is_linearly_stable(curv, 1.01 * exact, rho)


def test_critical_lr_without_threshold(x64):
    """H_i = −I: every η > 0 is unstable (ValueError); indefinite E[A_ξ]: a result with eta = 0 and the reason;
    ρ large enough turns −I into a minimum of the linearized USAM dynamics (A = −1 + ρ > 0): a threshold again."""
    neg = _curv(-np.eye(2)[None].repeat(3, 0))
    with pytest.raises(ValueError, match="unstable for every η > 0"):
        critical_learning_rate(neg, 0.1)
    assert critical_learning_rate(neg, 2.0, tol=1e-14).eta == pytest.approx(2.0, rel=1e-10)  # η(ρ − 1) ≤ 2
    mixed = critical_learning_rate(_curv(np.array([np.diag([1.0, -1.0]), np.diag([1.0, -0.5])])), 0.0)
    assert mixed.eta == 0.0 and "unstable for every η > 0" in mixed.reason
    assert is_linearly_stable(_curv(np.zeros((2, 2, 2))), 100.0, 0.1)
    zero = critical_learning_rate(_curv(np.zeros((2, 2, 2))), 0.1)
    assert zero.eta == np.inf and "stable for every η" in zero.reason


def test_necessary_conditions_values():
    nc = necessary_conditions(1.0, 0.1, 0.1, 0.1, eta=0.5, rho=0.0)
    assert nc.bounds["a"] == pytest.approx(4.0) and nc.bounds["s2"] == pytest.approx(2.0) and nc.all_hold
    nc = necessary_conditions(2.0, 0.0, 0.0, 0.0, eta=0.5, rho=0.5)  # a + ρa² = 4 = 2/η: tight, holds
    assert nc.holds["a"] and nc.holds["a_plus_rho_a2"]
    assert nc.bounds["a"] == pytest.approx((np.sqrt(1 + 8) - 1) / 1.0)
    nc = necessary_conditions(2.1, 0.0, 0.0, 0.0, eta=0.5, rho=0.5)
    assert set(nc.violated()) == {"a", "a_plus_rho_a2"}
    assert not nc.applies["s2"] and nc.holds["s2"]  # η = 2ρ: the s_2 bound is not a theorem
    for rho in (1e-9, 1e-3, 0.7):  # the a-bound solves a + ρa² = 2/η (series branch for tiny 8ρ/η)
        a = necessary_conditions(1.0, 0, 0, 0, eta=0.8, rho=rho).bounds["a"]
        assert a + rho * a**2 == pytest.approx(2 / 0.8, rel=1e-14)


def test_simulation_and_escape_shapes(x64, Hi):
    sim = simulate_linearized(_curv(Hi, 2), 0.3, 0.1, 5, 64, jax.random.key(0))
    assert sim.mean_sq.shape == sim.exact.shape == (6,) and sim.exact[0] == pytest.approx(1.0)
    e0 = np.array([1.0, 0.0, 0.0])
    sim = simulate_linearized(_curv(Hi), 0.3, 0.1, 3, 8, jax.random.key(0), e0=e0)
    assert sim.se[0] == 0 and sim.e0 == "fixed"
    prob, x_star = interpolating_diagonal_net(0)  # the escape check's problem and run shape (shared compile)
    from sam_theory.optim import usam
    res = escape_test(prob, x_star, usam(0.01, 0.01), 1e-6, 1000, jax.random.key(0), log_every=10)
    assert res.distances.shape == (101,) and res.losses.shape == (101,) and not res.escaped
    assert res.max_distance < 2e-6 and np.isfinite(res.losses).all()


def test_sym_basis_orthonormal():
    U = symmetric_basis(4).reshape(10, 16)
    np.testing.assert_allclose(U @ U.T, np.eye(10), atol=1e-15)


@pytest.mark.parametrize("kwargs,name", [
    (dict(eta=0.1, rho=-0.1), "rho"), (dict(eta=0.0, rho=0.1), "eta"), (dict(eta=-1.0, rho=0.1), "eta"),
])
def test_validation_errors(x64, Hi, kwargs, name):
    for fn in (moment_matrix, spectral_radius, second_moment_operator):
        with pytest.raises(ValueError, match=name):
            fn(_curv(Hi), **kwargs)
    for b in (6, 0):
        with pytest.raises(ValueError, match="batch_size"):
            _curv(Hi, b)
    with pytest.raises(ValueError, match="curv"):
        spectral_radius(Hi, 0.1, 0.1)
    with pytest.raises(ValueError, match="method='dense'.*GiB.*matrix_free"):
        spectral_radius(_curv(Hi), 0.1, 0.1, method="dense", memory_budget=100)


def test_validation_hessians(x64):
    with pytest.raises(ValueError, match="hessians"):
        _curv(np.ones((3, 2, 4)))
    with pytest.raises(ValueError, match="hessians"):
        _curv(np.ones((4, 4)))
    bad = np.zeros((2, 2, 2)); bad[0, 0, 1] = 1.0
    with pytest.raises(ValueError, match="hessians"):
        _curv(bad)
    with pytest.raises(ValueError, match="rho"):
        critical_learning_rate(_curv(np.ones((1, 1, 1))), -1.0)
    with pytest.raises(ValueError, match="eta"):
        necessary_conditions(1, 1, 1, 1, 0.0, 0.1)


@pytest.mark.slow
def test_matrix_free_problem_path_large_p(x64):
    """p = 26 > DENSE_MAX_P: a problem stays matrix-free (per-example HVPs inside T, Lanczos on p² = 676); r(T)
    and M agree with the dense per-example Hessians."""
    from sam_theory.curvature import per_example_hessians
    prob, x_star = interpolating_diagonal_net(1, n=3, d=13)
    free = BatchCurvature.from_problem(prob, x_star, method="matrix_free")
    assert prob.num_params == 26
    Hi = np.asarray(per_example_hessians(prob, x_star))
    eta, rho = 1.0 / np.linalg.eigvalsh(Hi.mean(0))[-1], 0.1
    r_free = spectral_radius(free, eta, rho, num_iters=80)
    r_dense = spectral_radius(_curv(Hi), eta, rho, method="dense")
    assert r_free.method == "matrix_free" and r_dense.method == "dense"
    assert abs(r_free.value - r_dense.value) <= 1e-9 + r_free.residual
    np.testing.assert_allclose(moment_matrix(free.with_batch(2), eta, rho), moment_matrix(_curv(Hi, 2), eta, rho),
                               rtol=1e-10, atol=1e-12)


def test_necessary_conditions_at_matches_hessian_moments(x64):
    """a, s_k from the stability module agree with curvature.hessian_moments on a problem."""
    from sam_theory.curvature import hessian_moments
    from sam_theory.stability import curvature_summary, necessary_conditions_at
    prob, x_star = interpolating_diagonal_net(0, n=4, d=3)
    curv = BatchCurvature.from_problem(prob, x_star, 2, method="matrix_free")
    a, s2, s3, s4 = curvature_summary(curv)
    ref = hessian_moments(BatchCurvature.from_problem(prob, x_star, 2, method="dense"), orders=(2, 3, 4))
    np.testing.assert_allclose([a, s2, s3, s4], [ref.a, ref.s[2], ref.s[3], ref.s[4]], rtol=1e-10)
    assert necessary_conditions_at(curv, 0.1, 0.01).all_hold
