"""Edge of stability of normalized SAM (THEORY.md §7): library formulas and the two checks in quick mode."""
import numpy as np
import pytest

from sam_theory.checks import Context, run_check, select
from sam_theory.convergence.eos import mode_factors, sam_edge, two_cycle_amplitude, two_cycle_contraction
from sam_theory.plots.eos import plot_two_cycle


def test_edge_formula_forms_and_limits():
    g, lr, rho = np.geomspace(1e-6, 1e3, 9), 0.3, 0.05
    direct = (g / (2 * rho)) * (np.sqrt(1 + 8 * rho / (lr * g)) - 1)
    np.testing.assert_allclose(sam_edge(g, lr, rho), direct, rtol=1e-9)
    assert np.all(sam_edge(g, lr, rho) < 2 / lr)
    np.testing.assert_allclose(sam_edge(1e12, lr, rho), 2 / lr, rtol=1e-9)  # ρ/‖∇f‖ → 0: GD's edge


def test_edge_is_where_the_mode_factor_is_minus_one():
    lr, rho, g = 0.4, 0.1, 0.7
    lam = sam_edge(g, lr, rho)
    np.testing.assert_allclose(mode_factors(lr, rho, [lam], g), [-1.0], atol=1e-12)


def test_two_cycle_sits_on_the_edge_and_contracts():
    lr, rho, lam1 = 1.3, 0.2, 1.1
    amp = two_cycle_amplitude(lr, rho, lam1)
    np.testing.assert_allclose(sam_edge(lam1 * amp, lr, rho), lam1, rtol=1e-13)
    q, q1 = two_cycle_contraction(lr, rho, [lam1, 0.5, 0.01])
    assert q < 1 and q1 == pytest.approx(abs(1 - lr * lam1))


@pytest.mark.parametrize("kwargs, name", [(dict(lr=0.0, rho=0.1, lam=1.0), "lr"), (dict(lr=1.0, rho=-1.0, lam=1.0), "rho"),
                                          (dict(lr=3.0, rho=0.1, lam=1.0), "lr")])
def test_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=name):
        two_cycle_amplitude(**kwargs)
    with pytest.raises(ValueError, match="simple"):
        two_cycle_contraction(1.0, 0.1, [1.0, 1.0])


@pytest.mark.parametrize("name", ["eos.two_cycle", "eos.sam_edge"])
def test_eos_check_passes(name, tmp_path):
    (check,) = select(name.replace(".", r"\.") + "$")
    record, data = run_check(check, Context(quick=True, seed=0))
    assert record["passed"], record["detail"]
    if name == "eos.two_cycle":
        assert plot_two_cycle(data, tmp_path / "cycle.png").stat().st_size > 0
