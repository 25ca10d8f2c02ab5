"""`as_optax` in a user-style plain-JAX loop (a dict-of-arrays MLP, a jitted step with optax.apply_updates) agrees
step for step with our `Optimizer` (float64, 1e-12) and trains."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sam_theory.optim import Batch, as_optax, asam, fsam, lightsam, sam, usam

N, D, H, B, STEPS = 32, 3, 16, 8, 40


def mlp(params, x):
    return jnp.tanh(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]


def loss(params, examples):
    x, y = examples
    return 0.5 * jnp.mean((mlp(params, x)[:, 0] - y) ** 2)


def _setup():
    k1, k2, k3, k4 = jax.random.split(jax.random.key(0), 4)
    x = jax.random.normal(k1, (N, D))
    y = jnp.sin(x @ jnp.array([1.0, -0.5, 0.3])) + 0.5 * x[:, 0]
    params = {"w1": jax.random.normal(k2, (D, H)) / np.sqrt(D), "b1": jnp.zeros(H),
              "w2": jax.random.normal(k3, (H, 1)) / np.sqrt(H), "b2": jnp.zeros(1)}
    batches = np.random.default_rng(0).integers(0, N, size=(STEPS, B))
    return params, (x, y), batches


def user_loop(tx, params, data, batches):
    """What a user writes: grads at x, then tx.update with grad_fn evaluating the same batch elsewhere."""
    @jax.jit
    def step(params, state, idx):
        examples = jax.tree.map(lambda a: a[idx], data)
        grad_fn = lambda p: jax.grad(loss)(p, examples)
        updates, state = tx.update(grad_fn(params), state, params, grad_fn=grad_fn)
        return optax.apply_updates(params, updates), state

    state, out = tx.init(params), []
    for idx in batches:
        params, state = step(params, state, idx)
        out.append(params)
    return out


def our_loop(opt, params, data, batches, penalty_fn=None, perturb_penalty=False):
    def body(carry, idx):
        batch = Batch(jax.tree.map(lambda a: a[idx], data), loss, penalty_fn=penalty_fn,
                      perturb_penalty=perturb_penalty)
        p, s = opt.step(*carry, batch)
        return (p, s), p
    return jax.jit(lambda p: jax.lax.scan(body, (p, opt.init(p)), jnp.asarray(batches))[1])(params)


CASES = [
    ("sam", dict(), sam(0.2, 0.05)),
    ("usam", dict(), usam(0.2, 0.05)),
    ("asam", dict(kappa=0.1), asam(0.2, 0.05, kappa=0.1)),
    ("fsam", dict(sigma=0.5, lmbda=0.9, base="momentum"), fsam(0.2, 0.05, sigma=0.5, lmbda=0.9, base="momentum")),
    ("lightsam", dict(variant="adagrad_norm", v0=0.1), lightsam(0.2, 0.05, "adagrad_norm", v0=0.1)),
    ("lightsam", dict(variant="adagrad"), lightsam(0.05, 0.05, "adagrad")),
    ("lightsam", dict(variant="adam"), lightsam(0.01, 0.05, "adam")),
]


@pytest.mark.parametrize("method, kwargs, ours", CASES, ids=[f"{c[0]}-{c[1].get('variant', '')}" for c in CASES])
def test_as_optax_matches_optimizer_and_trains(x64, method, kwargs, ours):
    params, data, batches = _setup()
    tx = as_optax(method, ours.lr, ours.rho, **kwargs)
    theirs = user_loop(tx, params, data, batches)
    mine = our_loop(ours, params, data, batches)
    for t, p in enumerate(theirs):
        for k in p:
            np.testing.assert_allclose(p[k], mine[k][t], rtol=1e-12, atol=1e-14, err_msg=f"step {t}, {k}")
    assert float(loss(theirs[-1], data)) < 0.7 * float(loss(params, data))


def test_as_optax_weight_decay_is_the_batch_penalty(x64):
    """as_optax(weight_decay=) is the same penalty R = (wd/2)‖x‖² that a Problem passes through `Batch`, perturbed
    or not; the two settings differ (control)."""
    params, data, batches = _setup()
    wd = 0.1
    penalty = lambda p: 0.5 * wd * sum(jnp.vdot(x, x) for x in jax.tree.leaves(p))
    finals = []
    for perturb in (True, False):
        tx = as_optax("sam", 0.2, 0.05, weight_decay=wd, perturb_weight_decay=perturb)
        theirs = user_loop(tx, params, data, batches[:3])[-1]
        mine = jax.tree.map(lambda a: a[-1], our_loop(sam(0.2, 0.05), params, data, batches[:3], penalty, perturb))
        for k in params:
            np.testing.assert_allclose(theirs[k], mine[k], rtol=1e-12, atol=1e-14)
        finals.append(theirs)
    assert max(float(jnp.max(jnp.abs(finals[0][k] - finals[1][k]))) for k in params) > 1e-8


def test_as_optax_arguments():
    with pytest.raises(ValueError, match="method"):
        as_optax("rwsam", 0.1, 0.1)
    with pytest.raises(ValueError, match="rho"):
        as_optax("sam", 0.1, -0.1)
    with pytest.raises(ValueError, match="weight_decay"):
        as_optax("sam", 0.1, 0.1, weight_decay=-1.0)
    tx = as_optax("sam", 0.1, 0.1)
    p = {"w": jnp.ones(2)}
    with pytest.raises(ValueError, match="grad_fn"):
        tx.update(p, tx.init(p), p)
    assert isinstance(tx, optax.GradientTransformationExtraArgs)
