import jax
import numpy as np

from sam_theory.curvature import hessian, per_example_hessians
from sam_theory.problems import linear_regression


def test_dense_hessian_on_pytree_params(x64):
    fn = lambda p: jax.numpy.sum(p["a"] ** 3) + p["a"][0] * p["b"] ** 2
    params = {"a": jax.numpy.array([1.0, 2.0]), "b": jax.numpy.array(3.0)}
    H = hessian(fn, params)
    # ravel order: a0, a1, b
    ref = np.array([[6.0, 0.0, 6.0], [0.0, 12.0, 0.0], [6.0, 0.0, 2.0]])
    np.testing.assert_allclose(H, ref, rtol=1e-14)


def test_linear_regression_closed_form(x64):
    prob = linear_regression(n=6, p=9, seed=0)
    w = jax.random.normal(jax.random.key(0), (9,))
    H_ref, Hi_ref = prob.hessian_closed_form()
    np.testing.assert_allclose(hessian(prob.loss, w), H_ref, rtol=1e-13, atol=1e-15)
    Hi = per_example_hessians(prob, w)
    assert Hi.shape == (6, 9, 9)
    np.testing.assert_allclose(Hi, Hi_ref, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(Hi.mean(0), H_ref, rtol=1e-13, atol=1e-15)
