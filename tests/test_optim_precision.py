"""The SAM-family perturbations in float32, bfloat16 and float16 against a float64 evaluation (THEORY.md §2,
`sam_theory.optim.scaling`).

Reference: the same formula evaluated in NumPy float64 on the *same* inputs (the dtype-rounded g, x, m, u cast
exactly to float64), so the only error measured is the arithmetic of the method.

Tolerance (norm-wise relative error ‖ε̂ − ε‖/‖ε‖), from the standard rounding-error model fl(a ∘ b) = (a ∘ b)(1 + θ),
|θ| ≤ u, with u_a the unit roundoff of the accumulation dtype (float32 for the three low-precision dtypes: 2^-24)
and u_o that of the output dtype (float32 2^-24, bfloat16 2^-8, float16 2^-11):
  - ‖d‖ by a sum of p scaled squares: (p − 1)u_a (recursive summation, the worst order) + u_a per square, halved by
    the square root, + u_a for the root; adding δ, dividing, multiplying by ρ (and ρ's own rounding): 4u_a; so SAM
    has c = (p − 1)/2 + 6 roundings of u_a;
  - ASAM adds T = |x| + κ, Tg and T·(Tg/‖Tg‖): +3; LightSAM-AdaGrad-Norm squares the norm (twice its relative
    error) and adds u_0 before the root: c = p + 6; AdaGrad is coordinate-wise: c = 6; Adam's moments, bias
    corrections, root and division: c = 14; F-SAM forms d = g − σm (two roundings of |g| + σ|m|, relative to ‖d‖);
  - then one rounding to the output dtype: u_o; and where ε_j is subnormal in the output dtype, half its spacing
    σ_o (float16: 2^-24), i.e. √p·σ_o/(2‖ε‖) norm-wise.
So tol = u_o + c·u_a + √p·σ_o/(2‖ε‖): a few ulps of the dtype. The old form g + (s − 1)·g missed it by orders of
magnitude (float32 ρ = 1e-5: 1e-2; float16 ρ = 1e-3: ε = 0).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sam_theory.optim import asam_perturbation, fsam_perturbation, sam_perturbation
from sam_theory.optim.lightsam import (AdamMoments, adagrad_norm_perturbation, adagrad_perturbation,
                                       adam_perturbation)
from sam_theory.optim.rwsam import sharpness_proxies
from sam_theory.optim.scaling import guard, tree_norm

DTYPES = ["float32", "bfloat16", "float16"]
RHOS = [1e-5, 1e-3, 0.05]
DELTA = 1e-12
U_ACC = 2.0 ** -24
SUBNORMAL = {"float32": 2.0 ** -149, "bfloat16": 2.0 ** -133, "float16": 2.0 ** -24}


def unit_roundoff(dtype):
    return float(jnp.finfo(dtype).eps) / 2


def f64(tree):
    return jax.tree.map(lambda x: np.asarray(jnp.asarray(x).astype(jnp.float32), np.float64), tree)


def flat(tree):
    return np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])


def rel_err_and_tol(eps_hat, eps_ref, dtype, c):
    e, r = flat(f64(eps_hat)), flat(eps_ref)
    p = e.size
    err = np.linalg.norm(e - r) / np.linalg.norm(r)
    tol = unit_roundoff(dtype) + c * U_ACC + np.sqrt(p) * SUBNORMAL[dtype] / (2 * np.linalg.norm(r))
    return err, tol


def draw(dtype, scale=1.0, seed=0):
    """A two-leaf pytree (p = 7) of N(0, scale²) entries, rounded to ``dtype``."""
    k1, k2 = jax.random.split(jax.random.key(seed))
    return {"a": (scale * jax.random.normal(k1, (3,))).astype(dtype),
            "b": (scale * jax.random.normal(k2, (2, 2))).astype(dtype)}


def norm64(tree):
    return np.sqrt(sum(np.sum(x ** 2) for x in jax.tree.leaves(tree)))


P = 7
# scales that over- or underflow a plain sum of squares: float16 squares overflow above 256 and underflow below
# 2.4e-4 (in float16); bfloat16 shares float32's range, so its squares overflow float32 above 1.8e19.
SCALES = {"float32": [1.0, 1e25, 1e-25], "bfloat16": [1.0, 1e25, 1e-25], "float16": [1.0, 300.0, 1e-3]}
# LightSAM's accumulators hold sums of squares (its state, in float32 for the low-precision dtypes): they are
# limited to float32's range, |g| < 1.8e19 (documented in `optim.lightsam`).
SQUARED_SCALES = {"float32": [1.0, 1e15, 1e-15], "bfloat16": [1.0, 1e15, 1e-15], "float16": [1.0, 300.0, 1e-3]}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rho", RHOS)
def test_sam_and_usam_perturbation(dtype, rho):
    """SAM (also m-SAM, n-SAM and RW-SAM's last step: the same `sam_perturbation`) and USAM."""
    for scale in SCALES[dtype]:
        g = draw(dtype, scale)
        g64 = f64(g)
        ref = jax.tree.map(lambda x: rho * x / (norm64(g64) + DELTA), g64)
        err, tol = rel_err_and_tol(sam_perturbation(g, rho, DELTA), ref, dtype, (P - 1) / 2 + 6)
        assert err <= tol, (scale, err, tol)
        err, tol = rel_err_and_tol(sam_perturbation(g, rho, DELTA, normalize=False),
                                   jax.tree.map(lambda x: rho * x, g64), dtype, 2)
        assert err <= tol, (scale, err, tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rho", RHOS)
def test_asam_perturbation(dtype, rho):
    kappa = 0.01
    x, g = draw(dtype, 1.0, seed=1), draw(dtype, 1.0, seed=2)
    x64, g64 = f64(x), f64(g)
    t = jax.tree.map(lambda xi: np.abs(xi) + kappa, x64)
    tg = jax.tree.map(np.multiply, t, g64)
    ref = jax.tree.map(lambda ti, tgi: rho * ti * tgi / (norm64(tg) + DELTA), t, tg)
    err, tol = rel_err_and_tol(asam_perturbation(x, g, rho, kappa, DELTA), ref, dtype, (P - 1) / 2 + 9)
    assert err <= tol, (err, tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rho", RHOS)
def test_fsam_perturbation(dtype, rho):
    sigma, lmbda = 1.0, 0.95
    g, m = draw(dtype, 1.0, seed=3), draw(dtype, 0.3, seed=4)
    g64, m64 = f64(g), f64(m)
    d = jax.tree.map(lambda gi, mi: gi - sigma * mi, g64, m64)
    ref = jax.tree.map(lambda di: rho * di / (norm64(d) + DELTA), d)
    size = norm64(jax.tree.map(lambda gi, mi: np.abs(gi) + sigma * np.abs(mi), g64, m64)) / norm64(d)
    eps, new_m = fsam_perturbation(g, m, rho, sigma, lmbda, DELTA)
    err, tol = rel_err_and_tol(eps, ref, dtype, (P - 1) / 2 + 6 + 2 * size)
    assert err <= tol, (err, tol)
    assert all(leaf.dtype == jnp.dtype(dtype) for leaf in jax.tree.leaves((eps, new_m)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rho", RHOS)
def test_lightsam_perturbations(dtype, rho):
    for scale in SQUARED_SCALES[dtype]:
        g = draw(dtype, scale, seed=5)
        g64 = f64(g)
        u0 = 0.5 * scale ** 2
        eps, _ = adagrad_norm_perturbation(g, jnp.asarray(u0, jnp.float32), rho, DELTA)
        ref = jax.tree.map(lambda x: rho * x / (np.sqrt(np.float32(u0) + norm64(g64) ** 2) + DELTA), g64)
        err, tol = rel_err_and_tol(eps, ref, dtype, P + 6)
        assert err <= tol, ("adagrad_norm", scale, err, tol)

        acc = jax.tree.map(lambda x: jnp.full(x.shape, u0, jnp.float32), g)
        eps, _ = adagrad_perturbation(g, acc, rho, DELTA)
        ref = jax.tree.map(lambda x: rho * x / (np.sqrt(np.float32(u0) + x ** 2) + DELTA), g64)
        err, tol = rel_err_and_tol(eps, ref, dtype, 6)
        assert err <= tol, ("adagrad", scale, err, tol)

    b1, b2, delta = 0.9, 0.999, 1e-8
    b1, b2 = float(np.float32(b1)), float(np.float32(b2))  # the hyperparameters as the float32 arithmetic holds them
    g = draw(dtype, 1.0, seed=6)
    g64 = f64(g)
    zeros = jax.tree.map(lambda x: jnp.zeros(x.shape, jnp.float32), g)
    eps, _ = adam_perturbation(g, AdamMoments(jnp.zeros((), jnp.int32), zeros, zeros), rho, b1, b2, delta)
    ref = jax.tree.map(lambda x: rho * ((1 - b1) * x / (1 - b1)) / (np.sqrt((1 - b2) * x ** 2 / (1 - b2)) + delta),
                       g64)
    err, tol = rel_err_and_tol(eps, ref, dtype, 14)
    assert err <= tol, ("adam", err, tol)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_rwsam_proxy_norms_do_not_overflow(dtype):
    """Per-sample ‖∇f_i‖ of RW-SAM: float16 gradients of size 300 overflow a float16 sum of squares (9e4 > 65504)
    and bfloat16 ones of size 1e25 a float32 one; the scaled norm is finite and right to a few ulps."""
    scale = 300.0 if dtype == "float16" else 1e25
    X = (scale * jax.random.normal(jax.random.key(0), (4, 5))).astype(dtype)
    loss = lambda w, ex: jnp.mean(ex @ w)  # ∇f_i = x_i  # noqa: E731
    norms, _ = sharpness_proxies(loss, jnp.zeros(5, dtype), X, "grad_norm", 0.05)
    ref = np.linalg.norm(f64(X), axis=1)
    assert np.all(np.isfinite(np.asarray(norms, np.float64)))
    np.testing.assert_allclose(np.asarray(norms, np.float64), ref, rtol=(5 + 4) * U_ACC)


@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16", "float16"])
def test_guard_is_representable(dtype):
    """δ > 0 never rounds to zero where it is added; δ = 0 stays the unguarded normalization."""
    assert float(jnp.asarray(guard(1e-12, jnp.float32), jnp.float32)) > 0
    assert guard(1e-300, jnp.dtype(dtype)) >= float(jnp.finfo(dtype).tiny)
    assert guard(0.0, jnp.dtype(dtype)) == 0.0
    assert float(guard(jnp.asarray(1e-12, jnp.float32), jnp.float16)) == float(jnp.finfo(jnp.float16).tiny)


def test_norm_is_exactly_the_plain_norm_when_nothing_overflows():
    """The power-of-two scaling is exact: float32 ‖g‖ equals √Σg² bit for bit on an ordinary vector."""
    g = draw("float32", 1.0, seed=7)
    plain = jnp.sqrt(sum(jnp.sum(x * x) for x in jax.tree.leaves(g)))
    assert float(tree_norm(g)) == float(plain)
