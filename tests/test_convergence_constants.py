"""`sam_theory.convergence.constants` (THEORY.md §6) against independent dense references."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from sam_theory.convergence import Constants, admissible_hyperparameters, constants, theorem_b
from sam_theory.problems import linear_regression, two_layer_net


def test_exact_linear_regression_matches_local_and_closed_form(x64):
    prob = linear_regression(12, 30, seed=3)
    exact = constants(prob)
    assert exact.method == "exact:linear_regression"
    local = constants(prob, method="local")
    quad = constants(prob.__class__(prob.X, prob.y), method="local")
    assert local.method == "local:ntk_gram:dense" and local.gram_rank == 12
    for k in ("beta", "lam", "mu"):
        assert local[k] == pytest.approx(exact[k], rel=1e-10) and quad[k] == pytest.approx(exact[k], rel=1e-10)
    # closed form THEORY.md §3.1
    assert exact.beta == pytest.approx(np.max(np.sum(prob.X**2, 1)), rel=1e-12)
    assert exact.mu == pytest.approx(np.linalg.eigvalsh(prob.X @ prob.X.T)[0] / 12, rel=1e-10)


def test_underparameterized_local_mu_is_smallest_nonzero(x64):
    prob = linear_regression(20, 6, noise=0.1, seed=0)
    assert constants(prob).mu == 0.0  # exact: no PL constant for f* = 0
    local = constants(prob, method="local")
    assert local.gram_rank == 6
    assert local.mu == pytest.approx(np.linalg.eigvalsh(prob.X.T @ prob.X)[0] / 20, rel=1e-9)


def test_local_two_layer_against_independent_dense(x64):
    prob = two_layer_net(6, 3, 3, activation="tanh", teacher_width=3, n_test=0, seed=1)
    params = prob.init(jax.random.key(1))
    flat, unravel = ravel_pytree(params)
    X, y = (jnp.asarray(a) for a in prob.data)
    Hi = np.stack([np.asarray(jax.hessian(lambda v: prob.per_example_loss(unravel(v), (X[i], y[i])))(flat))
                   for i in range(6)])
    J = np.asarray(jax.jacfwd(lambda v: jax.vmap(lambda x: prob.forward(unravel(v), x))(X))(flat))
    dense = constants(prob, params, hessian_method="dense")
    lanczos = constants(prob, params, hessian_method="lanczos", num_iters=flat.size)
    assert dense.beta == pytest.approx(np.linalg.eigvalsh(Hi)[:, -1].max(), rel=1e-10)
    assert dense.lam == pytest.approx(np.linalg.eigvalsh(Hi.mean(0))[-1], rel=1e-10)
    assert dense.mu == pytest.approx(np.linalg.eigvalsh(J @ J.T)[0] / 6, rel=1e-8)
    assert lanczos.beta == pytest.approx(dense.beta, rel=1e-10) and lanczos.lam == pytest.approx(dense.lam, rel=1e-10)
    assert lanczos.method == "local:ntk_gram:lanczos"


def test_exact_refuses_non_quadratic_and_bad_args(x64):
    prob = two_layer_net(6, 3, 3, activation="tanh", teacher_width=3, n_test=0)
    with pytest.raises(ValueError, match="quadratic"):
        constants(prob, method="exact")
    with pytest.raises(ValueError, match="method"):
        constants(prob, method="guess")
    with pytest.raises(ValueError, match="hessian_method"):
        constants(prob, hessian_method="svd")


def test_constants_dataclass_feeds_theorem_b():
    c = Constants(1.3, 0.1, 0.02, "given", 10, 20)
    d = c.as_dict()
    assert theorem_b(c, 0.1, 0.01, 4) == theorem_b(d, 0.1, 0.01, 4)
    assert admissible_hyperparameters(c, 4) == admissible_hyperparameters(d, 4)
    with pytest.raises(KeyError):
        c["method"]
