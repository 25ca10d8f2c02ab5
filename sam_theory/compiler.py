"""`jit_fast_compile`: `jax.jit` with XLA compile options that trade run time for compile time.

For the programs sam_theory compiles once and runs a few times (Lanczos, SLQ and trace estimators on moderate
operators, random draws, `problem.init`), compilation is most of the wall time: a Lanczos run on a 24-parameter
network takes 0.25–0.7 s to compile and 0.3 ms to run. XLA CPU's legacy fusion emitters (`COMPILER_OPTIONS`)
compile such programs faster than the default MLIR emitters (README curvature block 1.3× less CPU), and run the
same arithmetic (results agree to round-off), but their elementwise kernels run slower: a 2000-step SAM training
loop on a GELU network runs 1.25× longer, and one large program (the matrix-free moment arrays) even compiles
slower. So only the compile-bound programs above use them; training loops, sweeps and the moment/stability
programs keep XLA's defaults (`jax.jit`). Figures: benchmarks/RESULTS.md, "compile_options.py".

JAX accepts compile options only on a top-level `jax.jit`, so a `jit_fast_compile` function holds two programs:
the one with the options, called from eager code, and a plain `jax.jit`, called while tracing (inside a caller's
`jax.jit`, `vmap`, `grad`, or another compiled sam_theory function), where the enclosing program's options apply.
A process that is compile-bound as a whole (`sam-theory verify`, `sam-theory plot`: hundreds of small programs, none
run long) calls `fast_compile_process` before JAX starts its backend, which puts the same option in ``XLA_FLAGS``
for every program of the process (eager ops and training loops too): `verify --quick` 1.13× less wall time.
``SAM_THEORY_XLA_OPTIONS=default`` in the environment (read at import) compiles everything with XLA's defaults.
"""
from __future__ import annotations

import functools
import os

import jax
from jax._src import core as _core  # trace_state_clean (not re-exported by jax.core; jax is pinned in setup.cfg)

OPTIONS_ENV = "SAM_THEORY_XLA_OPTIONS"
COMPILER_OPTIONS = {} if os.environ.get(OPTIONS_ENV) == "default" else {"xla_cpu_use_fusion_emitters": False}


class FastCompiled:
    """A function compiled by `jit_fast_compile`: called eagerly, the program with `COMPILER_OPTIONS`; called under
    a trace, the plain `jax.jit` (which JAX requires there). Other attributes (``lower``, ``trace``,
    ``eval_shape``, ``_cache_size``) are the eager program's."""

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


def jit_fast_compile(fun=None, /, **kwargs):
    """`jax.jit` compiled with `COMPILER_OPTIONS` (merged under any ``compiler_options`` given) when called eagerly;
    usable bare, with arguments, or as ``functools.partial(jit_fast_compile, static_argnames=...)``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from sam_theory.compiler import jit_fast_compile
      >>> @jit_fast_compile(static_argnames=("k",))
      ... def power(x, k):
      ...     return x ** k
      >>> power(jnp.arange(4.0), k=2).tolist()                  # eager call: compiled with COMPILER_OPTIONS
      [0.0, 1.0, 4.0, 9.0]
      >>> jax.jit(lambda x: power(x, k=3))(jnp.arange(3.0)).tolist()   # inside a caller's jit: plain jax.jit
      [0.0, 1.0, 8.0]
    """
    if fun is None:
        return lambda f: FastCompiled(f, dict(kwargs))
    return FastCompiled(fun, dict(kwargs))


def fast_compile_process() -> bool:
    """Add `COMPILER_OPTIONS` to ``XLA_FLAGS`` for every program this process will compile; True if it did.

    Only possible before JAX has started its backends (XLA reads the flags then); does nothing, and returns False,
    after that, under ``SAM_THEORY_XLA_OPTIONS=default``, or when ``XLA_FLAGS`` already sets the option.
    """
    from jax._src import xla_bridge  # _backends: filled when JAX starts its backends

    flags = os.environ.get("XLA_FLAGS", "")
    if not COMPILER_OPTIONS or xla_bridge._backends or any(name in flags for name in COMPILER_OPTIONS):
        return False
    extra = " ".join(f"--{name}={str(value).lower()}" for name, value in COMPILER_OPTIONS.items())
    os.environ["XLA_FLAGS"] = f"{flags} {extra}".strip()
    return True
