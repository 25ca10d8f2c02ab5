"""Dense and matrix-free curvature agree on every problem of THEORY.md §3 that is small enough.

The problems of issue 3 are skipped until they exist in `sam_theory.problems`.
"""
import jax
import pytest

from sam_theory import problems
from sam_theory.curvature import BatchCurvature, hessian_moments, moments_discrepancy

SMALL = {
    "linear_regression": dict(n=6, p=9),
    "two_layer_net": dict(n=6, d=3, width=4),
    "diagonal_linear_net": dict(n=6, d=5, k=2),
    "matrix_factorization": dict(rows=3, cols=3, rank_star=1, rank=2, init_scale=0.5),
    "relu_1d": dict(width=5),
}


def build(name):
    ctor = getattr(problems, name, None)
    if ctor is None:
        pytest.skip(f"sam_theory.problems.{name} has not landed yet (issue 3)")
    return ctor(**SMALL[name])


@pytest.mark.parametrize("name", sorted(SMALL))
def test_matrix_free_equals_dense(x64, name):
    prob = build(name)
    params = prob.init(jax.random.key(1))
    params = jax.tree.map(lambda x: x + 0.1 * jax.random.normal(jax.random.key(2), x.shape, x.dtype), params)
    d = hessian_moments(BatchCurvature.from_problem(prob, params, method="dense"))
    m = hessian_moments(BatchCurvature.from_problem(prob, params, method="matrix_free"))
    assert moments_discrepancy(m, d) <= 1.0
