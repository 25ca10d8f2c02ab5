"""Structured m-SAM (`sam_theory.optim.structured`) against the generic vmapped m-SAM, THEORY.md §2, §8.

The structured step is exact (rank-one/Gram algebra, no approximation), so in float64 the two agree to 1e-12 on every
problem that declares its layer form, for m = 1 (1-SAM) and m = b/8, normalized and not.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sam_theory import train
from sam_theory.optim import Batch, msam, sgd
from sam_theory.optim import core, structured
from sam_theory.problems import (as_jax, diagonal_linear_net, linear_regression, matrix_factorization, relu_1d, take,
                                 two_layer_net)
from sam_theory.problems.base import LayerOps
from sam_theory.problems.tanh_net import TanhNet

B = 32
PROBLEMS = {
    "linear_regression": lambda: linear_regression(B, 20, seed=0),
    "two_layer_relu": lambda: two_layer_net(B, 5, 7, n_test=0, seed=0),
    "two_layer_logistic_tanh_ntk": lambda: two_layer_net(B, 5, 7, n_test=0, seed=1, loss="logistic",
                                                         activation="tanh", parameterization="ntk"),
    "two_layer_gelu_mean_field_wd": lambda: two_layer_net(B, 5, 7, n_test=0, seed=2, activation="gelu",
                                                          parameterization="mean_field", weight_decay=0.1),
    "diagonal_uv": lambda: diagonal_linear_net(B, 6, 2, seed=0),
    "diagonal_u2v2_depth3": lambda: diagonal_linear_net(B, 6, 2, form="u2-v2", depth=3, seed=0),
    "diagonal_product_depth3": lambda: diagonal_linear_net(B, 6, 2, depth=3, seed=0),
    "tanh_net": lambda: TanhNet(B, 3, 4, seed=0),
    "relu_1d": lambda: relu_1d(10),
}


def _setup(name):
    prob = PROBLEMS[name]()
    data = as_jax(prob.data)
    b = min(B, prob.n // 8 * 8)
    params = prob.init(jax.random.key(1))  # moved off the init (diagonal nets start at a saddle with v = 0)
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(2), len(leaves))
    params = jax.tree.unflatten(tree, [x + 0.3 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)])
    penalty = prob.penalty if prob.weight_decay else None
    return prob, params, Batch(take(data, jnp.arange(b)), prob.batch_loss, penalty_fn=penalty), b


def _max_abs(a, b):
    return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_layer_form_equals_batch_losses(x64, name):
    prob, params, batch, b = _setup(name)
    assert prob.supports_structured
    np.testing.assert_allclose(prob.structured_losses(params, batch.examples, LayerOps(params, b)),
                               prob.batch_losses(params, batch.examples), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name", sorted(PROBLEMS))
@pytest.mark.parametrize("normalize", [True, False])
def test_structured_equals_generic(x64, name, normalize):
    prob, params, batch, b = _setup(name)
    lr, rho = 0.1, 0.3
    baseline = sgd(lr).step(params, (), batch)[0]
    for m in sorted({1, b // 8}):
        got = msam(lr, rho, m=m, normalize=normalize, path="structured").step(params, (), batch)[0]
        want = msam(lr, rho, m=m, normalize=normalize, path="generic").step(params, (), batch)[0]
        assert _max_abs(got, want) <= 1e-12, (m, _max_abs(got, want))
        assert _max_abs(want, baseline) > 1e-6  # the perturbation matters, so the comparison is not vacuous


def test_auto_dispatch(x64, monkeypatch):
    calls = []
    real = core.structured_msam_gradient
    monkeypatch.setattr(core, "structured_msam_gradient", lambda *a, **k: calls.append(a[3]) or real(*a, **k))
    prob, params, batch, b = _setup("two_layer_relu")
    for m in (1, 4, b):
        msam(0.1, 0.3, m=m).step(params, (), batch)
    assert calls == [1, 4]  # m = b is SAM: the generic path
    msam(0.1, 0.3, m=1, path="generic").step(params, (), batch)
    msam(0.1, 0.3, m=b, path="structured").step(params, (), batch)
    assert calls == [1, 4, b]
    train(prob, msam(0.1, 0.3, m=2), steps=2, batch_size=8, key=jax.random.key(0))  # the trainer's batches qualify
    assert calls == [1, 4, b, 2]


def test_unsupported_problems_take_the_generic_path(x64):
    masked = two_layer_net(B, 5, 7, n_test=0, sparsity=0.5)
    perturbed_wd = two_layer_net(B, 5, 7, n_test=0, weight_decay=0.1, perturb_weight_decay=True)
    mf = matrix_factorization(4, 8, 1, 2, init_scale=0.5)
    assert not masked.supports_structured and not mf.supports_structured
    for prob in (masked, perturbed_wd, mf):
        data = as_jax(prob.data)
        penalty = prob.penalty if prob.weight_decay else None
        batch = Batch(data, prob.batch_loss, penalty_fn=penalty, perturb_penalty=prob.perturb_weight_decay)
        assert structured.structured_problem(batch) is None
        params = prob.init(jax.random.key(0))
        auto = msam(0.1, 0.3, m=1).step(params, (), batch)[0]
        assert _max_abs(auto, msam(0.1, 0.3, m=1, path="generic").step(params, (), batch)[0]) == 0.0
        with pytest.raises(ValueError, match="structured"):
            msam(0.1, 0.3, m=1, path="structured").step(params, (), batch)
    with pytest.raises(ValueError, match="path"):
        msam(0.1, 0.3, m=1, path="fast")


def test_structured_rejects_m_not_dividing_b(x64):
    prob, params, batch, b = _setup("two_layer_relu")
    with pytest.raises(ValueError, match="m=5"):
        msam(0.1, 0.3, m=5, path="structured").step(params, (), batch)


def test_train_and_vmapped_hyperparameters(x64):
    """Through `train` the two paths give the same trajectory; ρ can be a vmapped (traced) hyperparameter."""
    prob = two_layer_net(B, 5, 7, n_test=0, seed=0)
    key = jax.random.key(0)
    runs = [train(prob, msam(0.2, 0.1, m=1, normalize=False, path=path), steps=20, batch_size=16, key=key,
                  log_every=5) for path in ("structured", "generic")]
    np.testing.assert_allclose(runs[0].losses, runs[1].losses, rtol=1e-12)
    params, data = prob.init(key), as_jax(prob.data)
    rhos = jnp.array([0.05, 0.1, 0.2])
    step = lambda rho, path: msam(0.2, rho, m=2, path=path).step(params, (), Batch(data, prob.batch_loss))[0]
    got, want = (jax.vmap(lambda r: step(r, path))(rhos) for path in ("structured", "generic"))
    assert _max_abs(got, want) <= 1e-12
