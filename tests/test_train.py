import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sam_theory import train
from sam_theory.optim import Batch, sam, sgd, usam
from sam_theory.problems import as_jax, linear_regression, take
from sam_theory.train import log_steps, sample_indices


@pytest.fixture
def prob():
    return linear_regression(n=16, p=40, seed=0)


def test_history_layout(prob, x64):
    h = train(prob, sam(0.5, 0.05), steps=10, batch_size=4, key=jax.random.key(0), log_every=3)
    np.testing.assert_array_equal(h.steps, [0, 3, 6, 9, 10])
    assert h.losses.shape == (5,) and h.test_losses.shape == (5,)
    assert h.losses[0] == pytest.approx(float(prob.loss(prob.init(None))), rel=1e-14)
    assert h.losses[-1] == pytest.approx(float(prob.loss(h.params)), rel=1e-12)
    assert not h.diverged and h.diverged_at is None
    assert h.config["optimizer"]["method"] == "sam" and h.config["batch_size"] == 4
    assert h.grad_norms is None


def test_full_batch_matches_python_loop_reference(prob, x64):
    """The scan trainer reproduces per-step GD/SAM with the closed-form gradient."""
    X, y = prob.X, prob.y
    grad = lambda v: X.T @ (X @ v - y) / prob.n
    h = train(prob, usam(0.7, 0.1), steps=25, batch_size=prob.n, key=jax.random.key(0))
    w, ref = np.zeros(prob.p), []
    for _ in range(25):
        ref.append(0.5 * np.mean((X @ w - y) ** 2))
        w = w - 0.7 * grad(w + 0.1 * grad(w))
    ref.append(0.5 * np.mean((X @ w - y) ** 2))
    np.testing.assert_allclose(h.losses, ref, rtol=1e-11)
    np.testing.assert_allclose(h.params, w, rtol=1e-11, atol=1e-14)


def test_stochastic_matches_manual_batches(prob, x64):
    """The batches drawn inside the scan are the documented ones (key splitting reproduced by hand)."""
    key = jax.random.key(5)
    h = train(prob, sgd(0.5), steps=4, batch_size=5, key=key)
    data = as_jax(prob.data)
    w = jnp.zeros(prob.p)
    for _ in range(4):
        key, kb, _, _ = jax.random.split(key, 4)
        idx = sample_indices(kb, prob.n, 5, False)
        assert len(set(np.asarray(idx).tolist())) == 5  # without replacement inside a step
        w, _ = sgd(0.5).step(w, (), Batch(take(data, idx), prob.batch_loss))
    np.testing.assert_allclose(h.params, w, rtol=1e-13)


def test_same_seed_same_result(prob, x64):
    a = train(prob, sam(0.5, 0.05), steps=20, batch_size=4, key=jax.random.key(3))
    b = train(prob, sam(0.5, 0.05), steps=20, batch_size=4, key=jax.random.key(3))
    c = train(prob, sam(0.5, 0.05), steps=20, batch_size=4, key=jax.random.key(4))
    np.testing.assert_array_equal(a.losses, b.losses)
    assert not np.array_equal(a.losses, c.losses)


def test_full_batch_is_deterministic_across_keys(prob, x64):
    a = train(prob, sam(0.5, 0.05), steps=20, batch_size=prob.n, key=jax.random.key(3))
    b = train(prob, sam(0.5, 0.05), steps=20, batch_size=prob.n, key=jax.random.key(9))
    np.testing.assert_array_equal(a.losses, b.losses)


def test_with_replacement_allows_large_batches(prob, x64):
    h = train(prob, sgd(0.5), steps=5, batch_size=3 * prob.n, key=jax.random.key(0), replace=True)
    assert h.losses[-1] < h.losses[0]
    with pytest.raises(ValueError, match="batch_size"):
        train(prob, sgd(0.5), steps=5, batch_size=prob.n + 1, key=jax.random.key(0))


@pytest.mark.parametrize("kwargs, name", [
    (dict(steps=-1), "steps"), (dict(batch_size=0), "batch_size"), (dict(log_every=0), "log_every"),
    (dict(params=jnp.full(40, jnp.nan)), "params"), (dict(max_loss=-1.0), "max_loss"),
])
def test_bad_trainer_arguments(prob, kwargs, name):
    args = dict(steps=5, batch_size=4, key=jax.random.key(0)) | kwargs
    with pytest.raises(ValueError, match=name):
        train(prob, sgd(0.1), **args)


def test_divergence_is_flagged_not_nan(prob, x64):
    lam = prob.constants()["lam"]
    h = train(prob, sgd(3.0 / lam), steps=2000, batch_size=prob.n, key=jax.random.key(0), log_every=10)
    assert h.diverged and 0 < h.diverged_at <= 2000
    assert np.all(np.isfinite(np.asarray(h.params)))
    first_nan = np.argmax(np.isnan(h.losses))
    assert np.all(np.isfinite(h.losses[:first_nan])) and np.all(np.isnan(h.losses[first_nan:]))
    assert h.steps[first_nan] >= h.diverged_at
    # a stable step size on the same problem does not diverge
    assert not train(prob, sgd(1.0 / lam), steps=200, batch_size=prob.n, key=jax.random.key(0)).diverged


def test_divergence_to_overflow_gives_step_index(x64):
    prob = linear_regression(n=8, p=20, seed=1)
    lam = prob.constants()["lam"]
    h = train(prob, sgd(50.0 / lam), steps=3000, batch_size=8, key=jax.random.key(0), max_loss=float("inf"))
    assert h.diverged and h.diverged_at is not None  # params overflowed to inf: flagged at the step
    assert np.all(np.isfinite(np.asarray(h.params)))


def test_track_grad_norm(prob, x64):
    h = train(prob, sgd(0.5), steps=4, batch_size=prob.n, key=jax.random.key(0), track_grad_norm=True)
    g0 = np.linalg.norm(prob.grad(prob.init(None)))
    assert h.grad_norms[0] == pytest.approx(g0, rel=1e-12)


def test_float32_path_stays_float32(prob):
    h = train(prob, sam(0.5, 0.05), steps=5, batch_size=4, key=jax.random.key(0))
    assert h.params.dtype == jnp.float32


def test_log_steps():
    np.testing.assert_array_equal(log_steps(10, 5), [0, 5, 10])
    np.testing.assert_array_equal(log_steps(7, 5), [0, 5, 7])
    np.testing.assert_array_equal(log_steps(0, 5), [0])


# --- run_many ---------------------------------------------------------------------------------------------------

from sam_theory.train import run_many  # noqa: E402


def test_run_many_stacks_outer_and_zipped_equal_train(prob, x64):
    """axes=("optimizer", "seed") is an outer product, (("optimizer", "seed"),) zips; every member = `train`."""
    opts = [sam(0.3, 0.05), sam(0.5, 0.1)]
    keys = jax.random.split(jax.random.key(7), 2)
    kw = dict(steps=9, batch_size=4, every=4)
    outer = run_many(prob, opts, keys, axes=("optimizer", "seed"), **kw)
    zipped = run_many(prob, opts, keys, axes=(("optimizer", "seed"),), **kw)
    assert outer.losses.shape == (2, 2, 4) and zipped.losses.shape == (2, 4)
    for i, opt in enumerate(opts):
        for j in range(2):
            h = train(prob, opt, steps=9, batch_size=4, key=keys[j], log_every=4)
            np.testing.assert_allclose(outer.losses[i, j], h.losses, rtol=1e-12, atol=0)
        np.testing.assert_allclose(zipped.losses[i], outer.losses[i, i], rtol=1e-14, atol=0)


def test_run_many_data_and_init_stacks(x64):
    """A data stack (with its test data) and an init stack zipped: run s trains on data set s from x_0^(s)."""
    probs = [linear_regression(n=8, p=5, seed=s, n_test=4) for s in range(3)]
    stack = lambda trees: jax.tree.map(lambda *x: jnp.stack(x), *trees)
    inits = stack([jnp.full(5, 0.1 * s) for s in range(3)])
    out = run_many(probs[0], usam(0.2, 0.05), jax.random.key(0), data=stack([as_jax(p.data) for p in probs]),
                   test_data=stack([as_jax(p.test_data) for p in probs]), params=inits, axes=(("data", "init"),),
                   steps=6, batch_size=8)
    for s, p in enumerate(probs):
        h = train(p, usam(0.2, 0.05), steps=6, batch_size=8, key=jax.random.key(0), params=inits[s])
        np.testing.assert_allclose(out.losses[s], h.losses, rtol=1e-12, atol=0)
        np.testing.assert_allclose(out.test_losses[s], h.test_losses, rtol=1e-12, atol=0)


def _lam_max(params, member):
    from sam_theory.curvature import hvp, top_eigenvalues
    return top_eigenvalues(hvp(member.loss, params), 1, num_iters=40, key=jax.random.key(0)).values[0]


def _grad_sq(params, member):
    return jnp.sum(jax.grad(member.loss)(params) ** 2)


def test_run_many_observe_and_accumulate(prob, x64):
    """observe at t = 0, every, …, T (λ_max of a quadratic is constant: the top eigenvalue of XᵀX/n, by Lanczos with
    p iterations); accumulate sums over the steps taken (at x_t before step t): Σ_{t<s} ‖∇f(x_t)‖² at each logged s."""
    lam = np.linalg.eigvalsh(prob.X.T @ prob.X / prob.n)[-1]
    out = run_many(prob, sgd(0.2), jax.random.key(0), observe=_lam_max, accumulate=_grad_sq, every=5, steps=12,
                   batch_size=prob.n, track_grad_norm=True)
    assert out.observed.shape == (4,) and out.accumulated.shape == (4,)
    np.testing.assert_allclose(out.observed, lam, rtol=1e-10)
    gn2 = np.asarray(out.grad_norms) ** 2  # ‖∇f‖² at t = 0, 5, 10, 12
    assert out.accumulated[0] == 0 and np.all(np.diff(out.accumulated) > 0)
    per_step = run_many(prob, sgd(0.2), jax.random.key(0), every=1, steps=12, batch_size=prob.n,
                        track_grad_norm=True).grad_norms
    per_step = np.asarray(per_step) ** 2
    np.testing.assert_allclose(out.accumulated[1:], np.cumsum(per_step[:-1])[[4, 9, 11]], rtol=1e-12)
    np.testing.assert_allclose(gn2, per_step[[0, 5, 10, 12]], rtol=1e-12)


def test_run_many_masks_observations_after_divergence(prob, x64):
    out = run_many(prob, [sgd(0.1), sgd(100.0)], jax.random.key(0), observe=_lam_max, every=2, steps=20,
                   batch_size=prob.n)
    assert not out.diverged[0] and out.diverged[1]
    assert np.isfinite(out.observed[0]).all() and np.isnan(out.observed[1, -1])


@pytest.mark.parametrize("kwargs, match", [
    ({"axes": ("optimizer", "bogus")}, "unknown stack 'bogus'"),
    ({"axes": ("seed", "seed")}, "appears twice"),
    ({"axes": ("data",)}, "no data were given"),
    ({"axes": ("init",)}, "no params were given"),
    ({"every": 0}, "every must be >= 1"),
])
def test_run_many_errors_name_the_argument(prob, kwargs, match):
    with pytest.raises(ValueError, match=match):
        run_many(prob, sgd(0.1), jax.random.split(jax.random.key(0), 2), steps=3, batch_size=4, **kwargs)


@pytest.mark.parametrize("n, b", [(5, 2), (64, 8), (256, 32), (20, 19)])
def test_sample_indices_is_jax_choice_bit_for_bit(n, b):
    """The sort-free batch draw equals jax.random.choice(replace=False) (the first b of jax's permutation)."""
    keys = jax.random.split(jax.random.key(n + b), 500)
    ref = jax.vmap(lambda k: jax.random.choice(k, n, (b,), replace=False))(keys)
    np.testing.assert_array_equal(jax.vmap(lambda k: sample_indices(k, n, b, False))(keys), ref)


@pytest.mark.parametrize("bits", [
    [5, 3, 3, 7, 3, 1, 1, 9] * 8,  # ties everywhere
    [2**32 - 1] * 6 + [0, 2**32 - 1],  # ties at the largest key (the value that marks taken entries)
    list(range(20, 0, -1)),
])
def test_smallest_first_is_stable_argsort(bits):
    """The selection behind the batch draw is argsort(stable)[:b] also under ties (jax's permutation sorts stably)."""
    from sam_theory.train import _smallest_first
    bits = np.asarray(bits, np.uint32)
    for b in (1, 3, len(bits) // 2, len(bits)):
        np.testing.assert_array_equal(_smallest_first(jnp.asarray(bits), b), np.argsort(bits, kind="stable")[:b])


def test_key_per_log_restarts_the_chain_per_segment(x64, prob):
    """key_per_log: segment k (of ``every`` steps, the last one shorter) runs from split(key, K)[k], i.e. equals
    chained runs of the segments' lengths with those keys (the former segment loop of `escape_test`)."""
    key, x0 = jax.random.key(3), prob.init(jax.random.key(0))
    out = run_many(prob, sam(0.05, 0.1), key, params=x0, steps=7, every=3, batch_size=4, key_per_log=True)
    params, losses = x0, []
    for k, length in zip(jax.random.split(key, 3), (3, 3, 1)):
        seg = run_many(prob, sam(0.05, 0.1), k, params=params, steps=length, every=length, batch_size=4)
        params = seg.params
        losses.append(float(seg.losses[-1]))
    np.testing.assert_array_equal(np.asarray(out.losses[1:]), losses)
    np.testing.assert_array_equal(np.asarray(out.params), np.asarray(params))
    plain = run_many(prob, sam(0.05, 0.1), key, params=x0, steps=7, every=3, batch_size=4)
    assert not np.array_equal(np.asarray(plain.params), np.asarray(out.params))  # a different stream by default
