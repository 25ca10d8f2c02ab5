import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sam_theory.problems import LinearRegression, linear_regression


def test_shapes_and_api(x64):
    prob = linear_regression(n=12, p=30, seed=1)
    assert prob.n == 12 and prob.num_params == 30 and prob.p == 30
    assert prob.X.shape == (12, 30) and prob.y.shape == (12,) and prob.w_star.shape == (30,)
    w = prob.init(jax.random.key(0))
    assert w.shape == (30,) and not np.any(np.asarray(w))
    losses = prob.losses(w)
    np.testing.assert_allclose(losses, 0.5 * prob.y**2, rtol=1e-14)
    np.testing.assert_allclose(prob.loss(w), np.mean(0.5 * prob.y**2), rtol=1e-14)
    np.testing.assert_allclose(prob.loss(w, idx=[0, 3]), np.mean(0.5 * prob.y[[0, 3]] ** 2), rtol=1e-14)
    assert prob.interpolates(jnp.asarray(prob.w_star), tol=1e-20)
    d = prob.describe()
    assert d["n"] == 12 and d["p"] == 30 and d["overparameterized"]
    assert prob.test_loss(jnp.asarray(prob.w_star)) < 1e-25


def test_same_seed_same_data_any_precision():
    a = linear_regression(5, 7, seed=3)
    b = linear_regression(5, 7, seed=3)
    c = linear_regression(5, 7, seed=4)
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.array_equal(a.X, c.X)
    assert prob_dtype(a) == jnp.float32  # float32 outside the float64 scope


def prob_dtype(prob):
    return prob.losses(prob.init(None)).dtype


def test_constants_match_numpy(x64):
    prob = linear_regression(n=20, p=100, seed=0)
    c = prob.constants()
    X = prob.X
    assert c["beta"] == pytest.approx(max(np.linalg.norm(X, axis=1) ** 2), rel=1e-12)
    sv = np.linalg.svd(X, compute_uv=False)
    assert c["lam"] == pytest.approx(sv[0] ** 2 / 20, rel=1e-10)
    assert c["mu"] == pytest.approx(sv[-1] ** 2 / 20, rel=1e-10)
    # the PL inequality ½‖∇f‖² ≥ μ f at random points
    for s in range(3):
        w = jax.random.normal(jax.random.key(s), (100,))
        g = prob.grad(w)
        assert 0.5 * float(g @ g) >= c["mu"] * float(prob.loss(w)) * (1 - 1e-12)


def test_underparameterized_mu_zero(x64):
    assert linear_regression(n=30, p=10).constants()["mu"] == 0.0


def test_label_noise_breaks_interpolation_only_in_train(x64):
    prob = linear_regression(n=10, p=5, noise=0.5, seed=0)
    assert prob.loss(jnp.asarray(prob.w_star)) > 1e-3
    assert prob.test_loss(jnp.asarray(prob.w_star)) < 1e-25


@pytest.mark.parametrize("kwargs, name", [
    (dict(n=0, p=3), "n"), (dict(n=-2, p=3), "n"), (dict(n=3, p=0), "p"), (dict(n=3, p=2, noise=-1.0), "noise"),
    (dict(n=2.5, p=3), "n"),
])
def test_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        linear_regression(**kwargs)


def test_bad_data():
    X = np.ones((4, 3))
    with pytest.raises(ValueError, match="X"):
        LinearRegression(X * np.nan, np.ones(4))
    with pytest.raises(ValueError, match="y"):
        LinearRegression(X, np.array([1.0, np.nan, 0.0, 0.0]))
    with pytest.raises(ValueError, match="y"):
        LinearRegression(X, np.ones(5))
    with pytest.raises(ValueError, match="X"):
        LinearRegression(np.ones(4), np.ones(4))
