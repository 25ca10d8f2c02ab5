"""HVP operators, chunked dense Hessians, per-example HVPs and Lanczos against dense references."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sam_theory.curvature import (from_dense, hessian, hvp, lanczos, per_example_hessians, per_example_hvp,
                                  top_eigenvalues)
from sam_theory.problems import linear_regression


def nonlinear_fn(params):
    a, b = params["a"], params["b"]
    return jnp.sum(jnp.tanh(a) ** 3) + jnp.sin(a[0]) * jnp.sum(b**2) + jnp.sum(jnp.outer(a, b) ** 2)


def nonlinear_params():
    return {"a": jnp.linspace(-1.0, 1.5, 6), "b": jnp.array([0.3, -0.7, 1.1])}


def test_hvp_matches_dense_on_pytrees_and_vectors(x64):
    params = nonlinear_params()
    H = np.asarray(hessian(nonlinear_fn, params))
    op = hvp(nonlinear_fn, params)
    assert op.shape == (9, 9)
    np.testing.assert_allclose(op.as_dense(), H, rtol=1e-13, atol=1e-13)
    v = jax.random.normal(jax.random.key(1), (9,))
    np.testing.assert_allclose(op(v), H @ v, rtol=1e-13, atol=1e-13)
    out = op(params)  # pytree in, pytree out
    flat = jnp.concatenate([params["a"], params["b"]])
    np.testing.assert_allclose(jnp.concatenate([out["a"], out["b"]]), H @ flat, rtol=1e-13, atol=1e-13)
    V = jax.random.normal(jax.random.key(2), (4, 9))
    np.testing.assert_allclose(jax.vmap(op)(V), V @ H, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(jax.jit(lambda o, v: o(v))(op, v), H @ v, rtol=1e-13, atol=1e-13)
    with pytest.raises(ValueError, match="v must be"):
        op(jnp.ones(5))


@pytest.mark.parametrize("chunk_size", [1, 4, 9, 50])
def test_chunked_hessian_equals_unchunked(x64, chunk_size):
    params = nonlinear_params()
    np.testing.assert_allclose(hessian(nonlinear_fn, params, chunk_size=chunk_size),
                               hessian(nonlinear_fn, params), rtol=1e-13, atol=1e-13)


def test_chunked_hessian_validates(x64):
    with pytest.raises(ValueError, match="chunk_size"):
        hessian(nonlinear_fn, nonlinear_params(), chunk_size=0)


def test_per_example_hvp_matches_per_example_hessians(x64):
    prob = linear_regression(n=6, p=9, seed=3)
    w = jax.random.normal(jax.random.key(0), (9,))
    pe = per_example_hvp(prob, w)
    Hi = np.asarray(per_example_hessians(prob, w))
    v = jax.random.normal(jax.random.key(1), (9,))
    U = jax.random.normal(jax.random.key(2), (6, 9))
    np.testing.assert_allclose(pe(v), Hi @ v, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(pe(U), np.einsum("nij,nj->ni", Hi, U), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(pe.mean_operator().as_dense(), Hi.mean(0), rtol=1e-13, atol=1e-14)
    idx = jnp.array([5, 0, 5])
    np.testing.assert_allclose(pe.at(idx, U[:3]), np.einsum("nij,nj->ni", Hi[np.array(idx)], U[:3]),
                               rtol=1e-13, atol=1e-14)
    cube = np.einsum("nij,njk,nkl->nil", Hi, Hi, Hi).mean(0)
    np.testing.assert_allclose(pe.power_mean(v, 3), cube @ v, rtol=1e-12, atol=1e-14)


def _spd(p, seed=0):
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((p, p))
    return M @ M.T / p


def test_lanczos_full_space_is_exact(x64):
    A = _spd(30)
    res = lanczos(from_dense(A), 100, jax.random.key(0))  # capped at p = 30
    assert res.num_iters == 30
    np.testing.assert_allclose(res.ritz_values, np.linalg.eigvalsh(A), rtol=1e-11, atol=1e-12)
    Q = res.ritz_vectors
    np.testing.assert_allclose(Q @ Q.T, np.eye(30), atol=1e-11)


def test_top_eigenvalues_and_residuals(x64):
    A = _spd(200, seed=1)
    ev = np.linalg.eigvalsh(A)
    top = top_eigenvalues(from_dense(A), 3, num_iters=80, key=jax.random.key(3))
    np.testing.assert_allclose(top.values, ev[::-1][:3], rtol=1e-10)
    assert np.all(top.residual_norms < 1e-6)
    Q = np.linalg.qr(np.random.default_rng(4).standard_normal((200, 200)))[0]
    spec = np.concatenate([[0.1, 0.2], np.linspace(1.0, 10.0, 198)])
    low = top_eigenvalues(from_dense((Q * spec) @ Q.T), 2, num_iters=80, which="smallest")
    np.testing.assert_allclose(low.values, spec[:2], rtol=1e-10)
    # explicit residuals really are ‖Ay − θy‖
    y, th = top.vectors[0], top.values[0]
    assert abs(np.linalg.norm(A @ y - th * y) - top.residual_norms[0]) < 1e-12


def test_lanczos_breakdown_gives_no_nan(x64):
    rng = np.random.default_rng(2)
    U = rng.standard_normal((50, 3))
    B = U @ U.T  # rank 3: the Krylov space is invariant after 3 steps
    res = lanczos(from_dense(B), 12, jax.random.key(0))
    assert np.all(np.isfinite(res.ritz_values)) and np.all(np.isfinite(res.ritz_vectors))
    np.testing.assert_allclose(res.ritz_values[-3:], np.linalg.eigvalsh(B)[-3:], rtol=1e-12)
    np.testing.assert_allclose(res.ritz_values[:-3], 0.0, atol=1e-10)


def test_lanczos_validates(x64):
    op = from_dense(_spd(5))
    with pytest.raises(ValueError, match="reortho"):
        lanczos(op, 3, jax.random.key(0), reortho="partial")
    with pytest.raises(ValueError, match="num_iters"):
        lanczos(op, 0, jax.random.key(0))
    with pytest.raises(ValueError, match="k must be"):
        top_eigenvalues(op, 6)


def test_lanczos_same_key_same_result(x64):
    op = from_dense(_spd(40))
    a = lanczos(op, 10, jax.random.key(7))
    b = lanczos(op, 10, jax.random.key(7))
    np.testing.assert_array_equal(a.ritz_values, b.ritz_values)


def test_hvp_lanczos_on_nonlinear_function(x64):
    params = nonlinear_params()
    H = np.asarray(hessian(nonlinear_fn, params))
    top = top_eigenvalues(hvp(nonlinear_fn, params), 2)
    np.testing.assert_allclose(top.values, np.linalg.eigvalsh(H)[::-1][:2], rtol=1e-12)
