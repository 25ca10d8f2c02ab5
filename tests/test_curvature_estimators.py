"""Hutchinson / Hutch++ / exact traces, SLQ and spectral densities against dense references."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sam_theory.curvature import from_dense, slq, spectral_density, trace


def _matrix(p=60, seed=0):
    rng = np.random.default_rng(seed)
    Q = np.linalg.qr(rng.standard_normal((p, p)))[0]
    spec = np.concatenate([[8.0, 5.0, 3.0], rng.uniform(-0.5, 1.0, p - 3)])  # indefinite, a few outliers
    return (Q * spec) @ Q.T, spec


def powers(t):
    return t[..., None] ** jnp.arange(1, 5)


def test_exact_trace(x64):
    A, spec = _matrix()
    res = trace(from_dense(A), "exact", batch_size=7)
    assert abs(res.estimate - spec.sum()) < 1e-12 and res.standard_error == 0 and res.num_matvecs == 60


@pytest.mark.parametrize("method", ["hutchinson", "hutch++"])
def test_stochastic_trace_within_3se(x64, method):
    A, spec = _matrix()
    res = trace(from_dense(A), method, 60, jax.random.key(1))
    assert res.standard_error > 0
    assert abs(res.estimate - spec.sum()) < 3 * res.standard_error
    assert res.num_matvecs == 60


def test_hutchinson_se_is_sample_std(x64):
    A, _ = _matrix()
    res = trace(from_dense(A), "hutchinson", 40, jax.random.key(2))
    Z = np.asarray(jax.random.rademacher(jax.random.key(2), (40, 60), dtype=jnp.float64))
    q = np.einsum("ji,ik,jk->j", Z, A, Z)
    np.testing.assert_allclose(res.samples, q, rtol=1e-12)
    np.testing.assert_allclose(res.standard_error, q.std(ddof=1) / np.sqrt(40), rtol=1e-12)


def test_hutchpp_exact_on_low_rank(x64):
    rng = np.random.default_rng(3)
    U = rng.standard_normal((50, 4))
    A = U @ U.T  # rank 4 < s = 10: the sketch captures everything, the residual part is 0
    res = trace(from_dense(A), "hutch++", 30, jax.random.key(0))
    assert abs(res.estimate - np.trace(A)) < 1e-10 * np.trace(A)
    assert res.standard_error < 1e-10 * np.trace(A)


def test_slq_full_order_log_trace(x64):
    A, spec = _matrix()
    B = A @ A + np.eye(60)
    res = slq(from_dense(B), jnp.log, 8, 60, jax.random.key(0))  # order = p: exact quadrature per probe
    assert abs(res.estimate - np.sum(np.log(spec**2 + 1))) < 4 * res.standard_error


def test_spectral_density_matches_smoothed_spectrum(x64):
    A, spec = _matrix()
    grid = jnp.linspace(-2, 10, 200)
    sigma = 0.3
    dens = spectral_density(from_dense(A), grid, sigma, num_probes=30, order=60, key=jax.random.key(0))
    ref = np.mean(np.exp(-0.5 * ((np.asarray(grid)[:, None] - spec) / sigma) ** 2), 1) / (sigma * np.sqrt(2 * np.pi))
    assert np.trapezoid(np.asarray(dens.density), np.asarray(grid)) == pytest.approx(1.0, abs=1e-3)
    z = np.abs(dens.density - ref) / np.maximum(dens.standard_error, 1e-12)
    assert np.mean(z < 4) > 0.95


def test_estimator_validation(x64):
    op = from_dense(np.eye(5))
    with pytest.raises(ValueError, match="method"):
        trace(op, "girard")
    with pytest.raises(ValueError, match="num_samples"):
        trace(op, "hutch++", 3)
    with pytest.raises(ValueError, match="sigma"):
        spectral_density(op, jnp.linspace(0, 1, 5), 0.0)
    with pytest.raises(ValueError, match="grid"):
        spectral_density(op, jnp.ones((2, 2)), 0.1)
    with pytest.raises(ValueError, match="num_probes"):
        slq(op, jnp.log, 1, 3)


def test_one_quadrature_serves_every_f_and_the_density(x64):
    """`gauss_quadrature` is what `slq` and `spectral_density` compute (same key: identical numbers); each probe's
    rule is exact for zᵀA^k z, k ≤ 2m − 1, against the dense product; a new f does not recompile the Lanczos runs."""
    from sam_theory.curvature import gauss_quadrature
    from sam_theory.curvature.stochastic import _gauss_nodes
    A, _ = _matrix(p=30, seed=3)
    op, key = from_dense(A), jax.random.key(5)
    quad = gauss_quadrature(op, 8, 3, key)
    r = quad.trace(powers)
    ref = slq(op, powers, 8, 3, key)
    np.testing.assert_array_equal(r.samples, ref.samples)
    assert (r.num_probes, r.order) == (8, 3)
    Z = np.asarray(jax.random.rademacher(jax.random.split(key)[0], (8, 30), dtype=A.dtype))
    exact = np.stack([np.einsum("ji,ij->j", Z, np.linalg.matrix_power(A, k) @ Z.T) for k in range(1, 5)], axis=1)
    assert np.abs(r.samples - exact).max() < 1e-10 * np.abs(exact).max()   # degree 4 ≤ 2·3 − 1
    grid = jnp.linspace(-1.0, 9.0, 41)
    d, d_ref = quad.density(grid, 0.3), spectral_density(op, grid, 0.3, 8, 3, key)
    np.testing.assert_array_equal(d.density, d_ref.density)
    np.testing.assert_array_equal(d.standard_error, d_ref.standard_error)
    before = _gauss_nodes._cache_size()
    for f in (lambda t: t**3, lambda t: jnp.exp(-t), jnp.abs):
        slq(op, f, 8, 3, key)
    assert _gauss_nodes._cache_size() == before
    with pytest.raises(ValueError, match="sigma"):
        quad.density(grid, -1.0)
    with pytest.raises(ValueError, match="grid"):
        quad.density(jnp.ones((2, 2)), 0.3)
