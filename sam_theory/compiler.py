"""`jit`: `jax.jit` with the XLA compile options of every program sam_theory compiles.

Most of a small program's wall time on CPU is its compilation (a Lanczos run on a 24-parameter network: 0.7 s to
compile, 0.3 ms to run). XLA CPU's default (MLIR) fusion emitters compile each fused kernel markedly slower than
its legacy emitters, which generate the same kernels' arithmetic (no change of algorithm or precision; results
agree to round-off) at the same run time; `COMPILER_OPTIONS` selects the legacy ones. Figures in
benchmarks/RESULTS.md ("Compile options").

JAX accepts compile options only on a top-level `jax.jit`, so a `jit` function holds two: the one with the options,
called from eager code, and a plain one, called while tracing (inside a caller's `jax.jit`, `vmap`, `grad`, or
another sam_theory function), where the enclosing program is compiled with its own options. Nothing outside
sam_theory's own compiled functions changes.
"""
from __future__ import annotations

import functools

import jax
from jax._src import core as _core  # trace_state_clean (not re-exported by jax.core; jax is pinned in setup.cfg)

COMPILER_OPTIONS = {"xla_cpu_use_fusion_emitters": False}


class Compiled:
    """A function compiled by `jit`: called eagerly, the program with `COMPILER_OPTIONS`; called under a trace,
    the plain `jax.jit` (which JAX requires there). Other attributes (``lower``, ``trace``, ``eval_shape``) are
    the top-level program's."""

    def __init__(self, fun, kwargs):
        options = {**COMPILER_OPTIONS, **(kwargs.pop("compiler_options", None) or {})}
        self._top = jax.jit(fun, compiler_options=options, **kwargs)
        self._nested = jax.jit(fun, **kwargs)
        functools.update_wrapper(self, fun)

    def __call__(self, *args, **kwargs):
        return (self._top if _core.trace_state_clean() else self._nested)(*args, **kwargs)

    def __get__(self, obj, objtype=None):
        return self if obj is None else functools.partial(self, obj)

    def __getattr__(self, name):
        return getattr(self._top, name)

    def clear_cache(self):
        self._top.clear_cache()
        self._nested.clear_cache()


def jit(fun=None, /, **kwargs):
    """`jax.jit` with `COMPILER_OPTIONS` (merged under any ``compiler_options`` given) when called eagerly; usable
    bare, with arguments, or as ``functools.partial(jit, static_argnames=...)``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from sam_theory.compiler import jit
      >>> @jit(static_argnames=("k",))
      ... def power(x, k):
      ...     return x ** k
      >>> power(jnp.arange(4.0), k=2).tolist()                  # eager call: compiled with COMPILER_OPTIONS
      [0.0, 1.0, 4.0, 9.0]
      >>> jax.jit(lambda x: power(x, k=3))(jnp.arange(3.0)).tolist()   # inside a caller's jit: plain jax.jit
      [0.0, 1.0, 8.0]
    """
    if fun is None:
        return lambda f: Compiled(f, dict(kwargs))
    return Compiled(fun, dict(kwargs))
