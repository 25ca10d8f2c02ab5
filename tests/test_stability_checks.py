"""The five Theorem A checks pass in quick mode (what `sam-theory verify --quick` runs)."""
import pytest

from sam_theory.checks import Context, run_check, select

NAMES = ["theorem_a.moment_identity", "theorem_a.exact_vs_simulated", "theorem_a.nonlinear_escape",
         "theorem_a.critical_lr_decreases_with_rho", "theorem_a.necessary_conditions_hold"]


@pytest.mark.parametrize("name", NAMES)
def test_theorem_a_check_passes(name):
    (check,) = select(name.replace(".", r"\.") + "$")
    record, _ = run_check(check, Context(quick=True, seed=0))
    assert record["passed"], record["detail"]
    assert record["measured"] is not None and record["measured"] <= record["bound"]
