"""A persistent XLA compilation cache for the CLI, so that repeated `sam-theory verify` runs skip recompiling.

JAX's persistent cache (``jax_compilation_cache_dir``) stores every compiled executable whose compilation took at
least ``min_compile_secs`` on disk, keyed by the lowered program, the compile options, the backend and the jax/jaxlib
versions, so a cached executable is only reused for an identical program on the same platform and versions — a
changed check, size or dtype compiles afresh. Within one process JAX's in-memory caches already share every
compiled function that is called again with the same static arguments and shapes; the disk cache carries that
across processes (a second `verify`, `verify --quick` then the full run, `plot` after `verify`).
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import jax
from jax.experimental.compilation_cache import compilation_cache as _cc

DEFAULT_MIN_COMPILE_SECS = 0.05  # below this a disk read costs about what the compile does
CACHE_ENV = "SAM_THEORY_CACHE_DIR"
_KEYS = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
         "jax_persistent_cache_min_entry_size_bytes")


def default_cache_dir(run_parent) -> Path:
    """``$SAM_THEORY_CACHE_DIR`` if set, else ``<run parent>/.jax_cache`` (next to the run folders)."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path(run_parent) / ".jax_cache"


def enable_compilation_cache(cache_dir, *, min_compile_secs: float = DEFAULT_MIN_COMPILE_SECS) -> Path:
    """Turn on JAX's persistent compilation cache in ``cache_dir`` (created if needed) and return its path.

    Call it before the process compiles anything: JAX initializes the cache at its first compilation.
    ``min_compile_secs`` (≥ 0): only executables that took at least this long to compile are written.
    """
    if not min_compile_secs >= 0:
        raise ValueError(f"min_compile_secs must be >= 0, got {min_compile_secs!r}")
    path = Path(cache_dir).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_secs))
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


@contextlib.contextmanager
def compilation_cache(cache_dir, *, min_compile_secs: float = DEFAULT_MIN_COMPILE_SECS):
    """`enable_compilation_cache` for the block only: the previous settings (and JAX's cache object, which it
    initializes at the next compilation) are restored after, so a caller in the same process (a test) is unaffected."""
    before = {k: getattr(jax.config, k) for k in _KEYS}
    _cc.reset_cache()
    try:
        yield enable_compilation_cache(cache_dir, min_compile_secs=min_compile_secs)
    finally:
        for k, v in before.items():
            jax.config.update(k, v)
        _cc.reset_cache()
