"""The §8 m-sharpness drift identity check passes in quick mode; its building blocks on their own."""
import jax.numpy as jnp
import numpy as np

from sam_theory.checks import Context, run_check, select
from sam_theory.checks.msharpness import trace_gradient_covariance
from sam_theory.problems import as_jax, linear_regression


def test_drift_identity_check_passes():
    (check,) = select(r"msharpness\.drift_identity$")
    record, data = run_check(check, Context(quick=True, seed=0))
    assert record["passed"], record["detail"]
    assert record["measured"] < record["bound"] == 1e-10
    assert len(data.excess_norm) == 6


def test_trace_of_gradient_covariance_closed_form(x64):
    prob = linear_regression(6, 4, noise=0.2, seed=1)
    x = jnp.arange(4.0) / 3
    G = prob.X * (prob.X @ np.asarray(x) - prob.y)[:, None]
    want = np.mean(np.sum((G - G.mean(0)) ** 2, axis=1))
    np.testing.assert_allclose(trace_gradient_covariance(prob, x, as_jax(prob.data)), want, rtol=1e-13)


def test_drift_identity_figure_renders(tmp_path):
    from sam_theory.checks import REGISTRY
    from sam_theory.plots.msharpness_drift import DriftData
    data = DriftData([1, 2, 1, 2], [True, True, False, False], [0.4, 0.2, 0.4, 0.18], [0.4, 0.2, 0.4, 0.18], "t")
    assert REGISTRY["msharpness.drift_identity"].figure(data, tmp_path / "d.png").exists()
