"""The five curvature checks pass in quick mode (what `sam-theory verify --quick` runs)."""
import pytest

from sam_theory.checks import Context, run_check, select

NAMES = ["curvature.hvp_vs_dense", "curvature.lanczos_vs_dense", "curvature.trace_estimators",
         "curvature.moments_matrix_free_vs_dense", "curvature.slq_moments_vs_dense"]


@pytest.mark.parametrize("name", NAMES)
def test_curvature_check_passes(name):
    (check,) = [c for c in select(name.replace(".", r"\.") + "$")]
    record, _ = run_check(check, Context(quick=True, seed=0))
    assert record["passed"], record["detail"]
    assert record["measured"] is not None and record["measured"] <= record["bound"]
