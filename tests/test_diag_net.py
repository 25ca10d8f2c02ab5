"""Diagonal linear networks (THEORY.md §9): the hyperbolic-entropy solver on tiny cases, and the three checks."""
import numpy as np
import pytest

from sam_theory.checks import Context, run_check, select
from sam_theory.convergence.implicit_bias import (hyperbolic_entropy, hyperbolic_entropy_grad,
                                                   minimize_potential)


def test_potential_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    beta, c, h = rng.standard_normal(5), rng.uniform(0.01, 1, 5), 1e-6
    fd = [(hyperbolic_entropy(beta + h * e, c) - hyperbolic_entropy(beta - h * e, c)) / (2 * h) for e in np.eye(5)]
    np.testing.assert_allclose(hyperbolic_entropy_grad(beta, c), fd, rtol=1e-7)
    assert hyperbolic_entropy(np.zeros(5), c) == 0.0


def test_one_constraint_closed_form():
    # min φ_c(β) s.t. β₁ + β₂ = 1 with equal c: by symmetry β = (½, ½)
    sol = minimize_potential(np.ones((1, 2)), np.ones(1), 0.3)
    np.testing.assert_allclose(sol.beta, [0.5, 0.5], atol=1e-13)


def test_dual_matches_primal_slsqp_and_kkt():
    rng = np.random.default_rng(1)
    X, c = rng.standard_normal((3, 6)), rng.uniform(0.05, 0.5, 6)
    y = X @ rng.standard_normal(6)
    dual, primal = minimize_potential(X, y, c), minimize_potential(X, y, c, method="slsqp")
    assert dual.constraint_residual < 1e-12 and dual.stationarity_residual < 1e-10
    np.testing.assert_allclose(primal.beta, dual.beta, atol=1e-6)


def test_small_scale_tends_to_min_l1_and_large_scale_to_min_l2():
    import scipy.optimize
    rng = np.random.default_rng(2)
    X = rng.standard_normal((8, 20))
    y = X @ np.concatenate([[1.0, -0.7], np.zeros(18)])
    # min ℓ1 by a linear program over β = p − q, p, q ≥ 0
    lp = scipy.optimize.linprog(np.ones(40), A_eq=np.hstack([X, -X]), b_eq=y, bounds=(0, None), method="highs")
    l1 = lp.x[:20] - lp.x[20:]
    dists = [np.linalg.norm(minimize_potential(X, y, c).beta - l1) for c in (1e-2, 1e-5, 1e-10)]
    assert dists[0] > dists[1] > dists[2] and dists[2] < 0.1 * np.linalg.norm(l1)
    large = minimize_potential(X, y, 1e4).beta
    np.testing.assert_allclose(large, np.linalg.pinv(X) @ y, atol=1e-4)


@pytest.mark.parametrize("kwargs, name", [(dict(c=-1.0), "c"), (dict(c=1.0, method="bfgs"), "method")])
def test_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=name):
        minimize_potential(np.ones((1, 2)), np.ones(1), **kwargs)


@pytest.mark.parametrize("name", ["diag_net.conserved_quantity", "diag_net.implicit_bias_potential",
                                  "diag_net.one_sam_beats_gd", "diag_net.af_reference"])
def test_diag_net_check_passes(name):
    (check,) = select(name.replace(".", r"\.") + "$")
    record, _ = run_check(check, Context(quick=True, seed=0))
    assert record["passed"], record["detail"]


def test_plot_diag_net_vs_rho(tmp_path):
    from sam_theory.plots.diag_net import DiagNetRhoData, plot_diag_net_vs_rho
    rng = np.random.default_rng(0)
    data = DiagNetRhoData(np.array([0.01, 0.1]), rng.uniform(1e-3, 1e-2, 3), rng.uniform(1e-3, 1e-2, (2, 3)),
                          rng.uniform(1e-6, 1e-3, (2, 3)))
    assert plot_diag_net_vs_rho(data, tmp_path / "d.png").stat().st_size > 0


def test_af_design_is_the_notebook_draw():
    """design="af": θ★ ≥ 0 on the first k coordinates, unit norm, from np.random.seed(seed); "random" differs."""
    from sam_theory.problems import diagonal_linear_net
    af = diagonal_linear_net(seed=0, design="af", n_test=10)
    rng = np.random.RandomState(0)
    np.testing.assert_array_equal(af.X, rng.multivariate_normal(np.zeros(30), np.eye(30), 20))
    assert np.all(af.theta_star[:3] > 0) and np.all(af.theta_star[3:] == 0)
    np.testing.assert_allclose(np.linalg.norm(af.theta_star), 1.0, rtol=1e-15)
    assert af.describe()["design"] == "af"
    assert not np.array_equal(diagonal_linear_net(seed=0, n_test=10).X, af.X)
    with pytest.raises(ValueError, match="design"):
        diagonal_linear_net(design="pesme")
