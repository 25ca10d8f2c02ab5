"""Theorem A core (THEORY.md §5): the operator T dense vs matrix-free, self-adjointness, closed forms, validation."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sam_theory.testing import commuting_hessians, interpolating_diagonal_net, random_psd_hessians
from sam_theory.stability import (critical_learning_rate, escape_test, is_linearly_stable, moment_matrix,
                                  necessary_conditions, second_moment_operator, simulate_linearized,
                                  spectral_radius)
from sam_theory.stability.operator import _sym_basis


@pytest.fixture
def Hi():
    return random_psd_hessians(5, 3, 0)


def _sym(p, seed):
    X = np.random.default_rng(seed).standard_normal((p, p))
    return X + X.T


def test_dense_and_matrix_free_operator_agree(x64, Hi):
    """On symmetric Σ, the p²×p² matrix and the matrix-free map give the same T(Σ), and both equal a hand sum."""
    eta, rho, b = 0.4, 0.3, 2
    T = second_moment_operator(Hi, eta, rho, b, method="dense")
    op = second_moment_operator(Hi, eta, rho, b, method="matrix_free")
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
    r_dense = spectral_radius(Hi, eta, rho, b, method="dense")
    r_free = spectral_radius(Hi, eta, rho, b, method="matrix_free")
    assert abs(r_dense.value - r_free.value) <= 1e-10 + r_free.residual
    assert r_dense.residual < 1e-12


def test_operator_self_adjoint_and_positive(x64, Hi):
    """⟨Y, T(X)⟩_F = ⟨T(Y), X⟩_F on symmetric matrices, and T maps PSD to PSD."""
    T = second_moment_operator(Hi, 0.7, 0.2, 1)
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
    r = spectral_radius(Hi, eta, rho, 1)
    assert abs(r.value - closed) <= 1e-12 * closed


def test_moment_identity_matches_expectation(x64, Hi):
    for b, rep in ((1, False), (2, True), (3, False)):
        M_e = moment_matrix(Hi, 0.5, 0.3, b, rep)
        M_f = moment_matrix(Hi, 0.5, 0.3, b, rep, method="formula")
        assert np.abs(M_e - M_f).max() <= 1e-12 * np.abs(M_e).max()


def test_problem_input_matches_dense_hessians(x64):
    """(problem, params) uses per-example HVPs; it agrees with the dense per-example Hessians."""
    from sam_theory.curvature import per_example_hessians
    prob, x_star = interpolating_diagonal_net(0, n=4, d=3)
    Hi = np.asarray(per_example_hessians(prob, x_star))
    M_p = moment_matrix((prob, x_star), 0.1, 0.05, 2)
    M_d = moment_matrix(Hi, 0.1, 0.05, 2)
    np.testing.assert_allclose(M_p, M_d, rtol=1e-12, atol=1e-12)
    assert abs(spectral_radius(prob, 0.1, 0.05, 2, params=x_star).value
               - spectral_radius(Hi, 0.1, 0.05, 2).value) < 1e-12


@pytest.mark.parametrize("a,rho", [(1.7, 0.0), (1.7, 0.3), (0.4, 2.0)])
def test_critical_lr_one_dimensional(x64, a, rho):
    """p = n = 1: r = (1 − ηa − ηρa²)², so η_c solves ηa(1 + ρa) = 2."""
    crit = critical_learning_rate(np.array([[[a]]]), rho, tol=1e-14)
    exact = 2 / (a * (1 + rho * a))
    assert abs(crit.eta - exact) <= 1e-10 * exact
    assert is_linearly_stable(np.array([[[a]]]), 0.99 * exact, rho)
    assert not is_linearly_stable(np.array([[[a]]]), 1.01 * exact, rho)


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
    sim = simulate_linearized(Hi, 0.3, 0.1, 5, 64, jax.random.key(0), 2)
    assert sim.mean_sq.shape == sim.exact.shape == (6,) and sim.exact[0] == pytest.approx(1.0)
    e0 = np.array([1.0, 0.0, 0.0])
    sim = simulate_linearized(Hi, 0.3, 0.1, 3, 8, jax.random.key(0), 1, e0=e0)
    assert sim.se[0] == 0 and sim.e0 == "fixed"
    prob, x_star = interpolating_diagonal_net(0)  # the escape check's problem and run shape (shared compile)
    from sam_theory.optim import usam
    res = escape_test(prob, x_star, usam(0.01, 0.01), 1e-6, 1000, jax.random.key(0), log_every=10)
    assert res.distances.shape == (101,) and res.losses.shape == (101,) and not res.escaped
    assert res.max_distance < 2e-6 and np.isfinite(res.losses).all()


def test_sym_basis_orthonormal():
    U = _sym_basis(4)
    np.testing.assert_allclose(U.T @ U, np.eye(10), atol=1e-15)


@pytest.mark.parametrize("kwargs,name", [
    (dict(eta=0.1, rho=-0.1), "rho"), (dict(eta=0.0, rho=0.1), "eta"), (dict(eta=-1.0, rho=0.1), "eta"),
    (dict(eta=0.1, rho=0.1, batch_size=6), "batch_size"), (dict(eta=0.1, rho=0.1, batch_size=0), "batch_size"),
])
def test_validation_errors(x64, Hi, kwargs, name):
    for fn in (moment_matrix, spectral_radius, second_moment_operator):
        with pytest.raises(ValueError, match=name):
            fn(Hi, **kwargs)


def test_validation_hessians(x64):
    with pytest.raises(ValueError, match="hessians"):
        spectral_radius(np.ones((3, 2, 4)), 0.1, 0.1)
    with pytest.raises(ValueError, match="hessians"):
        spectral_radius(np.ones((4, 4)), 0.1, 0.1)
    bad = np.zeros((2, 2, 2)); bad[0, 0, 1] = 1.0
    with pytest.raises(ValueError, match="hessians"):
        spectral_radius(bad, 0.1, 0.1)
    with pytest.raises(ValueError, match="rho"):
        critical_learning_rate(np.ones((1, 1, 1)), -1.0)
    with pytest.raises(ValueError, match="eta"):
        necessary_conditions(1, 1, 1, 1, 0.0, 0.1)


@pytest.mark.slow
def test_matrix_free_problem_path_large_p(x64):
    """p = 26 > DENSE_MAX_P: a problem stays matrix-free (per-example HVPs inside T, Lanczos on p² = 676); r(T)
    and M agree with the dense per-example Hessians."""
    from sam_theory.curvature import PerExampleHVP, per_example_hessians
    from sam_theory.stability import curvature_source
    prob, x_star = interpolating_diagonal_net(1, n=3, d=13)
    assert isinstance(curvature_source((prob, x_star)), PerExampleHVP) and prob.num_params == 26
    Hi = np.asarray(per_example_hessians(prob, x_star))
    eta, rho = 1.0 / np.linalg.eigvalsh(Hi.mean(0))[-1], 0.1
    r_free = spectral_radius((prob, x_star), eta, rho, 1, num_iters=80)
    r_dense = spectral_radius(Hi, eta, rho, 1, method="dense")
    assert r_free.method == "matrix_free" and r_dense.method == "dense"
    assert abs(r_free.value - r_dense.value) <= 1e-9 + r_free.residual
    np.testing.assert_allclose(moment_matrix((prob, x_star), eta, rho, 2), moment_matrix(Hi, eta, rho, 2),
                               rtol=1e-10, atol=1e-12)


def test_necessary_conditions_at_matches_hessian_moments(x64):
    """a, s_k from the stability module agree with curvature.hessian_moments on a problem."""
    from sam_theory.curvature import hessian_moments
    from sam_theory.stability import curvature_summary, necessary_conditions_at
    prob, x_star = interpolating_diagonal_net(0, n=4, d=3)
    a, s2, s3, s4 = curvature_summary((prob, x_star), 2)
    ref = hessian_moments(prob, x_star, batch_size=2, orders=(2, 3, 4))
    np.testing.assert_allclose([a, s2, s3, s4], [ref.a, ref.s[2], ref.s[3], ref.s[4]], rtol=1e-10)
    assert necessary_conditions_at((prob, x_star), 0.1, 0.01, 2).all_hold
