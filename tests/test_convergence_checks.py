"""The §6 convergence checks pass in quick mode (what `sam-theory verify --quick` runs)."""
import pytest

from sam_theory.checks import Context, run_check, select

NAMES = ["theorem_b.bound.matrix_factorization", "theorem_b.bound.two_layer", "theorem_b.no_interpolation_floor",
         "theorem_b.rho0_recovers_sgd"]


@pytest.mark.parametrize("name", NAMES)
def test_convergence_check_passes(name):
    (check,) = select("^" + name.replace(".", r"\.") + "$")
    record, data = run_check(check, Context(quick=True, seed=0))
    assert record["passed"], record["detail"]
    assert record["measured"] is not None
