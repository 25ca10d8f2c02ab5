import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sam_theory.optim import Batch, sam, sam_perturbation, sgd, usam
from sam_theory.problems import as_jax, linear_regression


@pytest.fixture
def setup(x64):
    prob = linear_regression(n=8, p=16, seed=2)
    data = as_jax(prob.data)
    batch = Batch(data, prob.batch_loss)
    w = jax.random.normal(jax.random.key(1), (16,))
    X, y = prob.X, prob.y
    grad = lambda v: X.T @ (X @ v - y) / 8  # closed form ∇f for linear regression
    return prob, batch, np.asarray(w), grad


def test_sgd_step_formula(setup):
    prob, batch, w, grad = setup
    out, _ = sgd(0.3).step(jnp.asarray(w), (), batch)
    np.testing.assert_allclose(out, w - 0.3 * grad(w), rtol=1e-13)


def test_sam_step_formula(setup):
    prob, batch, w, grad = setup
    g = grad(w)
    eps = 0.05 * g / (np.linalg.norm(g) + 1e-12)
    out, _ = sam(0.3, 0.05).step(jnp.asarray(w), (), batch)
    np.testing.assert_allclose(out, w - 0.3 * grad(w + eps), rtol=1e-13)


def test_usam_step_formula(setup):
    prob, batch, w, grad = setup
    g = grad(w)
    out, _ = usam(0.3, 0.05).step(jnp.asarray(w), (), batch)
    np.testing.assert_allclose(out, w - 0.3 * grad(w + 0.05 * g), rtol=1e-13)


def test_rho_zero_is_sgd(setup):
    prob, batch, w, grad = setup
    a, _ = sam(0.2, 0.0).step(jnp.asarray(w), (), batch)
    b, _ = sgd(0.2).step(jnp.asarray(w), (), batch)
    np.testing.assert_allclose(a, b, rtol=1e-14)


def test_perturbation_guard_at_zero_gradient(x64):
    g = {"a": jnp.zeros(3), "b": jnp.zeros((2, 2))}
    e = sam_perturbation(g, 0.1)
    assert all(bool(jnp.all(x == 0)) for x in jax.tree.leaves(e))
    e = sam_perturbation({"a": jnp.array([3.0, 4.0])}, 0.5)
    np.testing.assert_allclose(e["a"], [0.3, 0.4], rtol=1e-12)


@pytest.mark.parametrize("make, kwargs, name", [
    (sgd, dict(lr=0.0), "lr"), (sgd, dict(lr=-1.0), "lr"), (sam, dict(lr=0.1, rho=-0.1), "rho"),
    (usam, dict(lr=0.1, rho=-1e-3), "rho"), (sam, dict(lr=float("nan"), rho=0.1), "lr"),
    (usam, dict(lr=-0.1, rho=0.1), "lr"),
])
def test_bad_hyperparameters(make, kwargs, name):
    with pytest.raises(ValueError, match=name):
        make(**kwargs)


def test_optimizer_is_a_pytree_and_vmaps(setup):
    prob, batch, w, grad = setup
    lrs = jnp.array([0.1, 0.2, 0.3])
    step = jax.vmap(lambda lr: sam(lr, 0.05).step(jnp.asarray(w), (), batch)[0])
    out = step(lrs)
    for lr, row in zip(lrs, out):
        np.testing.assert_allclose(row, sam(float(lr), 0.05).step(jnp.asarray(w), (), batch)[0], rtol=1e-13)
    opt = sam(0.1, 0.05)
    leaves, treedef = jax.tree.flatten(opt)
    assert len(leaves) == 2 and jax.tree.unflatten(treedef, leaves).name == "sam"
    assert opt.lr == 0.1 and opt.rho == 0.05


def test_weight_decay_perturbed_or_not(setup):
    """THEORY.md §2: perturbed weight decay sits inside the loss; unperturbed is added after, at x."""
    prob, _, w, grad = setup
    wd = 0.3
    penalty = lambda v: 0.5 * wd * jnp.vdot(v, v)
    data = as_jax(prob.data)
    for perturb in (True, False):
        batch = Batch(data, prob.batch_loss, penalty_fn=penalty, perturb_penalty=perturb)
        out, _ = sam(0.2, 0.05).step(jnp.asarray(w), (), batch)
        g_asc = grad(w) + (wd * w if perturb else 0.0)
        x_adv = w + 0.05 * g_asc / (np.linalg.norm(g_asc) + 1e-12)
        g_desc = grad(x_adv) + wd * (x_adv if perturb else w)
        np.testing.assert_allclose(out, w - 0.2 * g_desc, rtol=1e-13)
