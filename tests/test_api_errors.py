"""Bad arguments to `train`, `sweep` and the constructors raise a `ValueError` that names the argument, before
anything is traced (not a JAX TypeError/AttributeError from deep inside)."""
import jax
import jax.numpy as jnp
import pytest

from sam_theory import sweep, train
from sam_theory.optim import sam
from sam_theory.problems import linear_regression, matrix_factorization, two_layer_net


@pytest.fixture(scope="module")
def prob():
    return linear_regression(n=6, p=8, seed=0)


def _train(prob, opt=None, **kw):
    kw = {"steps": 2, "batch_size": 2, "key": jax.random.key(0), **kw}
    return train(prob, sam(0.1, 0.05) if opt is None else opt, **kw)


@pytest.mark.parametrize("key", [0, 1.5, "0", None, jnp.zeros(3), jax.random.split(jax.random.key(0), 2)])
def test_train_key_must_be_a_prng_key(prob, key):
    with pytest.raises(ValueError, match="key"):
        _train(prob, key=key)


def test_train_accepts_both_key_kinds(prob):
    a = _train(prob, key=jax.random.key(3)).losses
    b = _train(prob, key=jax.random.PRNGKey(3)).losses
    assert a.shape == b.shape


def test_params_of_the_wrong_shape_or_structure(prob):
    with pytest.raises(ValueError, match=r"params.*shape \(8,\).*got \(5,\)"):
        _train(prob, params=jnp.zeros(5))
    net = two_layer_net(n=6, d=3, width=4, seed=0)
    with pytest.raises(ValueError, match="params.*structure"):
        _train(net, params={"W": jnp.zeros((4, 3))})
    with pytest.raises(ValueError, match=r"params\['v'\].*shape \(4,\)"):
        _train(net, params={"W": jnp.zeros((4, 3)), "v": jnp.zeros(5)})
    with pytest.raises(ValueError, match="params.*NaN"):
        _train(prob, params=jnp.full(8, jnp.nan))
    with pytest.raises(ValueError, match=r"params.*shape \(8,\)"):
        sweep(prob, "sam", {"lr": [0.1], "rho": [0.05]}, steps=2, batch_size=2, params=jnp.zeros(3),
              progress=False)


def test_array_lr_names_the_hyperparameter(prob):
    with pytest.raises(ValueError, match="lr must be a scalar.*sweep"):
        _train(prob, opt=sam(jnp.array([0.1, 0.2]), 0.05))
    with pytest.raises(ValueError, match="rho must be a scalar"):
        _train(prob, opt=sam(0.1, jnp.array([0.01, 0.05])))


def test_problem_and_optimizer_types(prob):
    with pytest.raises(ValueError, match="problem must be"):
        _train(None)
    with pytest.raises(ValueError, match="optimizer must be"):
        train(prob, "sam", steps=2, batch_size=2, key=jax.random.key(0))
    with pytest.raises(ValueError, match="problem must be"):
        sweep(None, "sam", {"lr": [0.1], "rho": [0.05]}, steps=2, batch_size=2, progress=False)


def test_matrix_factorization_rank_star_at_most_min_dimension():
    with pytest.raises(ValueError, match=r"rank_star must be <= min\(rows, cols\) = 3"):
        matrix_factorization(3, 3, rank_star=5, rank=6, init_scale=0.1)
    with pytest.raises(ValueError, match="rank_star"):
        matrix_factorization(2, 7, rank_star=3, rank=3, init_scale=0.1)
    assert matrix_factorization(3, 4, rank_star=3, rank=5, init_scale=0.1).rank_star == 3
