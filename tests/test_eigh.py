"""`sam_theory.curvature.eigh/eigvalsh`: equal to `jnp.linalg` under jit, vmap and leading batch axes."""
import jax
import jax.numpy as jnp
import numpy as np

from sam_theory.curvature import eigh, eigvalsh


def _sym(key, shape):
    a = jax.random.normal(key, shape)
    return a + jnp.swapaxes(a, -1, -2)


def test_matches_jnp_linalg_under_vmap_and_batch_axes(x64):
    a = _sym(jax.random.key(0), (3, 4, 7, 7))
    ref_w, ref_v = np.linalg.eigh(np.asarray(a))
    for fn in (lambda m: eigh(m), jax.jit(jax.vmap(jax.vmap(eigh))), jax.jit(jax.vmap(eigh))):
        w, v = fn(a)
        np.testing.assert_allclose(w, ref_w, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(np.abs(np.einsum("...ij,...ij->...j", v, ref_v)), 1.0, rtol=1e-10)
    np.testing.assert_allclose(jax.jit(jax.vmap(eigvalsh))(a), ref_w, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(eigvalsh(a[0, 0]), ref_w[0, 0], rtol=1e-12, atol=1e-12)


def test_no_batched_kernel_on_cpu(x64):
    """On CPU a vmapped call lowers to a loop of unbatched eigh calls (no batched syevd kernel)."""
    if jax.default_backend() != "cpu":
        return
    text = jax.jit(jax.vmap(eigvalsh)).lower(_sym(jax.random.key(1), (5, 6, 6))).as_text()
    assert "while" in text
