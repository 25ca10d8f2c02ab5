"""`problem.init(key)` gives the same initial point in float32 and under `float64()` to float32 precision, for
every problem, also when `init` runs inside `jit`/`vmap` (as in sweeps); float64 keeps JAX's own float64 draw.

Tolerance: the float32 path evaluates √2·erfinv(u) or Φ⁻¹(q) in float32 from the exact random integers (a few
float32 ulps of the result: the polynomial approximations plus the rounding of u or q), then one or two scalings
(1/√d, init_scale): each entry within 8·eps32 = 9.5e-7 relative of the float64 draw (measured ≤ 4e-7 over 6·10⁵
draws)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sam_theory.precision import float64
from sam_theory.problems import (diagonal_linear_net, linear_regression, matrix_factorization, relu_1d,
                                 two_layer_net)
from sam_theory.problems.draw import normal
from sam_theory.problems.tanh_net import TanhNet

RTOL = 8 * float(np.finfo(np.float32).eps)

PROBLEMS = {
    "linear_regression": lambda: linear_regression(n=5, p=7, seed=0),
    "two_layer_net": lambda: two_layer_net(n=6, d=4, width=9, seed=0),
    "two_layer_ntk_sparse": lambda: two_layer_net(n=6, d=4, width=9, parameterization="ntk", sparsity=0.5, seed=1),
    "diagonal_linear_net": lambda: diagonal_linear_net(n=5, d=6, k=2, n_test=0, seed=0),
    "matrix_factorization": lambda: matrix_factorization(3, 4, 2, 3, init_scale=0.3, seed=0),
    "relu_1d": lambda: relu_1d(10, n_test=0),
    "tanh_net": lambda: TanhNet(n=4, d=3, width=5, seed=0),
}


def _leaves64(tree):
    return [np.asarray(x, np.float64) for x in jax.tree.leaves(tree)]


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_init_is_the_same_point_in_both_precision_modes(name):
    prob = PROBLEMS[name]()
    for key in (jax.random.key(0), jax.random.key(7), jax.random.PRNGKey(1)):
        x32 = prob.init(key)
        assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(x32))
        with float64():
            x64 = prob.init(key)
            assert all(x.dtype == jnp.float64 for x in jax.tree.leaves(x64))
        for a, b in zip(_leaves64(x32), _leaves64(x64)):
            np.testing.assert_allclose(a, b, rtol=RTOL, atol=0)
        with float64():
            loss64 = float(prob.loss(x64))
        assert abs(float(prob.loss(x32)) - loss64) <= 1e-4 * max(abs(loss64), 1.0)


def test_same_draw_under_jit_and_vmap():
    prob = PROBLEMS["two_layer_net"]()
    keys = jax.random.split(jax.random.key(3), 4)
    batched = jax.jit(jax.vmap(prob.init))(keys)
    with float64():
        ref = [prob.init(k) for k in keys]
    for i in range(4):
        for a, b in zip(_leaves64(jax.tree.map(lambda x: x[i], batched)), _leaves64(ref[i])):
            np.testing.assert_allclose(a, b, rtol=RTOL, atol=0)


def test_float64_mode_is_jax_float64_normal():
    """Under float64() the draw is exactly jax.random.normal's: float64 checks keep their initializations."""
    key = jax.random.key(11)
    with float64():
        np.testing.assert_array_equal(normal(key, (5, 3)), jax.random.normal(key, (5, 3), jnp.float64))


def test_float32_normal_matches_float64_normal_including_tails():
    """Many draws: every entry within RTOL, the extremes (|z| > 4) included."""
    key = jax.random.key(5)
    z32 = np.asarray(normal(key, (50_000,)), np.float64)
    with float64():
        z64 = np.asarray(jax.random.normal(key, (50_000,), jnp.float64))
    assert np.max(np.abs(z64)) > 3.8
    np.testing.assert_allclose(z32, z64, rtol=RTOL, atol=0)


def test_eager_init_is_one_compiled_program_with_the_traced_draw():
    """`init` called eagerly runs one compiled program per problem and precision mode (`problems.base._init_params`)
    and agrees with the draw traced inside a caller's jit to a few float64 ulps (XLA may fuse the scalings
    differently in the two programs); repeated calls are identical."""
    from sam_theory.problems.base import _init_params
    prob = PROBLEMS["two_layer_ntk_sparse"]()
    with float64():
        before = _init_params._cache_size()
        eager = [prob.init(jax.random.key(s)) for s in range(3)]
        assert _init_params._cache_size() == before + 1
        traced = jax.jit(prob.init)(jax.random.key(2))
        for a, b in zip(_leaves64(eager[2]), _leaves64(traced)):
            np.testing.assert_allclose(a, b, rtol=4 * np.finfo(np.float64).eps, atol=0)
        for a, b in zip(_leaves64(eager[2]), _leaves64(prob.init(jax.random.key(2)))):
            np.testing.assert_array_equal(a, b)
