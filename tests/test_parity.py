"""Parity of our SAM family with external implementations, step for step in float64.

1. optax.contrib.sam (optax 0.2.8, opaque mode) against our `sam` with base SGD on linear regression.
2. Andriushchenko–Flammarion's diagonal-linear-network updates (tml-epfl/understanding-sam,
   diagonal_linear_nets/diag_nets.py, functions ``n_SAM_GD`` and ``one_SAM_GD``; THEORY.md §9) written here in
   closed form, against our `nsam(source="full", normalize=False)` and `msam(m=1, normalize=False)` with b = n.
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sam_theory.optim import Batch, msam, nsam, sam
from sam_theory.problems import as_jax, diagonal_linear_net, linear_regression

STEPS = 50


def _trajectory(opt, params, batch, steps=STEPS):
    """Our iterates x_1..x_T from one jitted lax.scan of ``opt.step``."""
    def body(carry, _):
        x, s = opt.step(*carry, batch)
        return (x, s), x
    return jax.jit(lambda p: jax.lax.scan(body, (p, opt.init(p)), None, length=steps)[1])(params)


def _optax_sam(lr, rho):
    """optax's "simple drop-in SAM": outer optax.sgd(lr), adversarial chain(normalize(), sgd(rho)), sync_period 2.

    Sign mapping (optax/contrib/_sam.py, opaque_update_fn): the adversarial optimizer returns
    sgd(ρ)(g/‖g‖) = −ρ g/‖g‖, which SAM negates before ``apply_updates``, so the adversarial point is
    x + ρ g/‖g‖ = x + ε with our ε for δ = 0; ``grad_fn(x + ε, 0)`` is ĝ and the outer sgd(lr) returns −η ĝ.
    optax's normalize() divides by ‖g‖ with no guard (NaN at g = 0), so the parity run uses our ``eps=0``.
    """
    return optax.contrib.sam(optax.sgd(lr), optax.chain(optax.contrib.normalize(), optax.sgd(rho)),
                             opaque_mode=True)


def test_sam_matches_optax_contrib_sam(x64):
    prob = linear_regression(10, 30, seed=4)
    X, y = jnp.asarray(prob.X), jnp.asarray(prob.y)
    grad = jax.grad(lambda w: 0.5 * jnp.mean((X @ w - y) ** 2))
    lr, rho = 0.5, 0.05
    w0 = jax.random.normal(jax.random.key(2), (30,))
    ours = np.asarray(_trajectory(sam(lr, rho, eps=0.0), w0, Batch(as_jax(prob.data), prob.batch_loss)))
    tx = _optax_sam(lr, rho)

    @jax.jit
    def optax_step(w, state):
        updates, state = tx.update(grad(w), state, w, grad_fn=lambda p, _: grad(p))
        return optax.apply_updates(w, updates), state

    w, state, theirs, gnorms = w0, tx.init(w0), [], []
    for _ in range(STEPS):
        gnorms.append(float(jnp.linalg.norm(grad(w))))
        w, state = optax_step(w, state)
        theirs.append(np.asarray(w))
    assert min(gnorms) > 1e-2  # away from stationary points, where optax's unguarded normalization is defined
    np.testing.assert_allclose(ours, np.array(theirs), rtol=1e-12, atol=1e-14)
    # our default guard δ = 1e-12 changes ε by a relative δ/‖g‖ < 1e-10 here
    guarded = np.asarray(_trajectory(sam(lr, rho), w0, Batch(as_jax(prob.data), prob.batch_loss)))
    np.testing.assert_allclose(guarded, ours, rtol=1e-10)


def test_optax_sam_is_nan_at_a_stationary_point_and_ours_is_not(x64):
    """Failing control for the guard: at an exact stationary point (labels y = 0, w = 0, so g = 0 in floating
    point) optax returns NaN, our SAM returns w unchanged."""
    prob = linear_regression(10, 30, seed=4)
    X, y = jnp.asarray(prob.X), jnp.zeros(10)
    grad = jax.grad(lambda w: 0.5 * jnp.mean((X @ w - y) ** 2))
    w = jnp.zeros(30)
    tx = _optax_sam(0.5, 0.05)
    updates, _ = tx.update(grad(w), tx.init(w), w, grad_fn=lambda p, _: grad(p))
    assert np.isnan(np.asarray(updates)).all()
    new, _ = sam(0.5, 0.05).step(w, (), Batch((X, y), prob.batch_loss))
    np.testing.assert_array_equal(new, w)


def _diag_net():
    prob = diagonal_linear_net(n=20, d=30, k=3, alpha=0.1, n_test=0, seed=1)
    return prob, prob.X, prob.y, prob.n


def af_n_sam(X, y, u, v, gamma, rho, steps=STEPS):
    """A–F ``n_SAM_GD`` in closed form: with r = X(u⊙v) − y and ∇_u f = (Xᵀr ⊙ v)/n, ∇_v f = (Xᵀr ⊙ u)/n,
    u_s = u + ρ ∇_u f, v_s = v + ρ ∇_v f, then u ← u − γ ∇_u f(u_s, v_s), v ← v − γ ∇_v f(u_s, v_s)."""
    n, out = X.shape[0], []
    for _ in range(steps):
        xr = X.T @ (X @ (u * v) - y)
        us, vs = u + rho * xr * v / n, v + rho * xr * u / n
        xrs = X.T @ (X @ (us * vs) - y)
        u, v = u - gamma * xrs * vs / n, v - gamma * xrs * us / n
        out.append(np.concatenate([u, v]))
    return np.array(out)


def af_one_sam(X, y, u, v, gamma, rho, steps=STEPS):
    """A–F ``one_SAM_GD`` in closed form (all examples k at once, rows of the (n, d) arrays below):
    r = X(u⊙v) − y;  u_k = u + 2ρ r_k x_k ⊙ v,  v_k = v + 2ρ r_k x_k ⊙ u;  r̃_k = x_kᵀ(u_k ⊙ v_k) − y_k;
    u ← u − (γ/n) Σ_k r̃_k v_k ⊙ x_k,  v ← v − (γ/n) Σ_k r̃_k u_k ⊙ x_k."""
    n, out = X.shape[0], []
    for _ in range(steps):
        r = X @ (u * v) - y
        uk, vk = u + 2 * rho * r[:, None] * X * v, v + 2 * rho * r[:, None] * X * u
        rk = np.sum(X * uk * vk, axis=1) - y
        u, v = u - gamma * (rk[:, None] * vk * X).sum(0) / n, v - gamma * (rk[:, None] * uk * X).sum(0) / n
        out.append(np.concatenate([u, v]))
    return np.array(out)


@pytest.mark.parametrize("gamma, rho_af", [(10 / 30, 0.1), (5 / 30, 0.3)])
def test_n_sam_matches_andriushchenko_flammarion(x64, gamma, rho_af):
    """n-SAM: their loss is (1/2n)‖Xβ − y‖² (``loss`` in diag_nets.py), the same as ours (THEORY.md §3.3), and
    they perturb with ρ·∇f: so our nsam(lr=γ, rho=ρ_AF, source="full", normalize=False) is their n-SAM exactly."""
    prob, X, y, n = _diag_net()
    data = as_jax(prob.data)
    x0 = prob.init(None)
    ours = _trajectory(nsam(gamma, rho_af, source="full", normalize=False), x0, Batch(data, prob.batch_loss, full=data))
    ours = np.concatenate([np.asarray(ours["u"]), np.asarray(ours["v"])], axis=1)
    ref = af_n_sam(X, y, np.asarray(x0["u"]), np.asarray(x0["v"]), gamma, rho_af)
    assert np.linalg.norm(ref[-1] - ref[-2]) > 1e-6  # still moving: not a trivial fixed point
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("gamma, rho_af", [(10 / 30, 0.1), (5 / 30, 0.3)])
def test_one_sam_matches_andriushchenko_flammarion(x64, gamma, rho_af):
    """1-SAM: their per-example perturbation is 2ρ r_k x_k ⊙ v = ρ ∇_u (r_k²) — the gradient of the per-example
    loss r_k² without the ½ — while our f_k = ½ r_k² has ∇_u f_k = r_k x_k ⊙ v. Their descent averages
    ∇f_k(x + ε_k) over k with the (1/2n) normalization, as ours does. Hence their 1-SAM(γ, ρ_AF) is our
    msam(lr=γ, rho=2ρ_AF, m=1, normalize=False) on the full batch b = n (the "2ρ convention"; n-SAM has none).
    A failing control: ρ = ρ_AF (no factor 2) does not match."""
    prob, X, y, n = _diag_net()
    batch = Batch(as_jax(prob.data), prob.batch_loss)
    x0 = prob.init(None)
    ref = af_one_sam(X, y, np.asarray(x0["u"]), np.asarray(x0["v"]), gamma, rho_af)
    flat = lambda t: np.concatenate([np.asarray(t["u"]), np.asarray(t["v"])], axis=1)
    ours = flat(_trajectory(msam(gamma, 2 * rho_af, m=1, normalize=False), x0, batch))
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-14)
    wrong = flat(_trajectory(msam(gamma, rho_af, m=1, normalize=False), x0, batch))
    assert np.max(np.abs(wrong - ref)) > 1e-6
