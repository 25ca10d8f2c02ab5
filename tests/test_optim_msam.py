"""m-SAM and n-SAM (THEORY.md §2, §8) against hand-written references."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sam_theory import train
from sam_theory.optim import Batch, msam, nsam, sam, usam
from sam_theory.problems import as_jax, linear_regression, take


def _setup(n=8, p=12):
    prob = linear_regression(n, p, seed=1)
    data = as_jax(prob.data)
    w = jax.random.normal(jax.random.key(0), (p,))
    return prob, data, w


def test_msam_with_m_equal_b_is_sam(x64):
    prob, data, w = _setup()
    batch = Batch(data, prob.batch_loss)
    for normalize, ref in ((True, sam(0.1, 0.05)), (False, usam(0.1, 0.05))):
        got, _ = msam(0.1, 0.05, m=prob.n, normalize=normalize).step(w, (), batch)
        want, _ = ref.step(w, (), batch)
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("m", [1, 2, 4])
@pytest.mark.parametrize("normalize", [True, False])
def test_msam_matches_micro_batch_loop(x64, m, normalize):
    prob, data, w = _setup()
    lr, rho = 0.1, 0.05
    got, _ = msam(lr, rho, m=m, normalize=normalize).step(w, (), Batch(data, prob.batch_loss))
    grads = []
    for j in range(prob.n // m):
        micro = take(data, jnp.arange(j * m, (j + 1) * m))
        g = jax.grad(prob.batch_loss)(w, micro)
        e = rho * g / (jnp.linalg.norm(g) + 1e-12) if normalize else rho * g
        grads.append(jax.grad(prob.batch_loss)(w + e, micro))
    np.testing.assert_allclose(got, w - lr * np.mean(grads, axis=0), rtol=1e-13, atol=1e-15)


def test_msam_rejects_m_not_dividing_b():
    prob, data, w = _setup()
    with pytest.raises(ValueError, match="m=3"):
        msam(0.1, 0.05, m=3).step(w, (), Batch(data, prob.batch_loss))
    with pytest.raises(ValueError, match="m"):
        msam(0.1, 0.05, m=0)
    with pytest.raises(ValueError, match="rho"):
        msam(0.1, -1.0, m=1)


def test_nsam_full_perturbs_with_full_gradient(x64):
    prob, data, w = _setup()
    lr, rho = 0.1, 0.05
    small = take(data, jnp.arange(2))
    got, _ = nsam(lr, rho, source="full", normalize=False).step(w, (), Batch(small, prob.batch_loss, full=data))
    e = rho * jax.grad(prob.batch_loss)(w, data)
    np.testing.assert_allclose(got, w - lr * jax.grad(prob.batch_loss)(w + e, small), rtol=1e-13)
    with pytest.raises(ValueError, match="source"):
        nsam(lr, rho, source="other")


@pytest.mark.parametrize("opt", [msam(0.5, 0.05, m=2), nsam(0.5, 0.05, "full"),
                                 nsam(0.5, 0.05, "independent_batch")])
def test_train_runs_msam_and_nsam(opt):
    prob = linear_regression(16, 40, seed=0)
    h1 = train(prob, opt, steps=200, batch_size=4, key=jax.random.key(3), log_every=10)
    h2 = train(prob, opt, steps=200, batch_size=4, key=jax.random.key(3), log_every=10)
    assert not h1.diverged and h1.losses[-1] < 0.5 * h1.losses[0]
    np.testing.assert_array_equal(h1.losses, h2.losses)


def test_no_nan_at_stationary_point(x64):
    prob = linear_regression(8, 20, seed=0)
    w = prob.w_star
    data = as_jax(prob.data)
    for opt in (msam(0.1, 0.05, m=1), nsam(0.1, 0.05, "full")):
        new, _ = opt.step(w, (), Batch(data, prob.batch_loss, full=data))
        assert np.all(np.isfinite(new))
        np.testing.assert_allclose(new, w, atol=1e-12)
