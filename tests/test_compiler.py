"""sam_theory.compiler.jit_fast_compile: the compile options reach eager calls only; nested calls (jit, vmap, grad) work."""
import functools
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sam_theory.compiler import COMPILER_OPTIONS, OPTIONS_ENV
from sam_theory.compiler import jit_fast_compile as jit


def test_options_reach_the_eager_program_only():
    """An option XLA does not know fails the eager compile (so the options are passed there) and is not passed
    under a caller's trace (where JAX forbids compile options)."""
    f = jit(lambda x: 2 * x, compiler_options={"no_such_xla_option": True})
    with pytest.raises(Exception, match="no_such_xla_option"):
        f(jnp.ones(3))
    assert jax.jit(lambda x: f(x) + 1)(jnp.ones(3)).tolist() == [3.0, 3.0, 3.0]


def test_same_values_as_plain_jit_under_every_transform():
    @functools.partial(jit, static_argnames=("k",))
    def fn(x, k):
        return jnp.sum(jnp.tanh(x) ** k)

    x = jax.random.normal(jax.random.key(0), (5, 7))
    ref = jax.jit(fn.__wrapped__, static_argnames=("k",))
    np.testing.assert_allclose(fn(x[0], k=3), ref(x[0], k=3), rtol=1e-6)
    np.testing.assert_allclose(jax.vmap(lambda r: fn(r, k=3))(x), jax.vmap(lambda r: ref(r, k=3))(x), rtol=1e-6)
    np.testing.assert_allclose(jax.grad(lambda r: fn(r, k=3))(x[0]), jax.grad(lambda r: ref(r, k=3))(x[0]),
                               rtol=1e-6)
    np.testing.assert_allclose(jax.jit(lambda r: fn(r, k=2))(x[1]), ref(x[1], k=2), rtol=1e-6)


def test_eager_and_traced_calls_use_their_own_programs_and_share_the_cache_api():
    f = jit(lambda x: x + 1)
    f(jnp.ones(2))
    assert f._cache_size() == 1 and f._nested._cache_size() == 0
    assert "add" in f.lower(jnp.ones(2)).as_text()
    f.clear_cache()
    assert f._cache_size() == 0 and f._nested._cache_size() == 0


def test_method_and_decorator_forms():
    class Scaled:
        def __init__(self, c):
            self.c = c

        @functools.partial(jit, static_argnums=0)
        def apply(self, x):
            return self.c * x

    assert Scaled(3.0).apply(jnp.ones(2)).tolist() == [3.0, 3.0]
    assert jit(static_argnums=1)(lambda x, n: x * n)(jnp.ones(1), 4).tolist() == [4.0]
    assert COMPILER_OPTIONS == {"xla_cpu_use_fusion_emitters": False} or os.environ.get(OPTIONS_ENV) == "default"


def test_environment_switch_restores_xla_defaults():
    code = "from sam_theory.compiler import COMPILER_OPTIONS; print(COMPILER_OPTIONS)"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, OPTIONS_ENV: "default"},
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "{}"


def _in_fresh_process(code, **env):
    full = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True,
                          check=True).stdout.split()


def test_fast_compile_process_only_before_the_backend_starts():
    code = ("import os, jax, jax.numpy as jnp; from sam_theory.compiler import fast_compile_process as f; "
            "first = f(); jnp.ones(2).block_until_ready(); second = f(); "
            "print(first, second, os.environ.get('XLA_FLAGS', '').replace(' ', '_') or '-')")
    assert _in_fresh_process(code) == ["True", "False", "--xla_cpu_use_fusion_emitters=false"]
    assert _in_fresh_process(code, SAM_THEORY_XLA_OPTIONS="default") == ["False", "False", "-"]
    assert _in_fresh_process(code, XLA_FLAGS="--xla_cpu_use_fusion_emitters=true") == [
        "False", "False", "--xla_cpu_use_fusion_emitters=true"]
    late = ("import jax.numpy as jnp; from sam_theory.compiler import fast_compile_process as f; "
            "jnp.ones(2).block_until_ready(); print(f())")
    assert _in_fresh_process(late) == ["False"]
