"""The CLI's persistent compilation cache (sam_theory.compile_cache): configured where asked, validated."""
import jax
import pytest

from sam_theory.cli import build_parser
from sam_theory.compile_cache import CACHE_ENV, compilation_cache, default_cache_dir, enable_compilation_cache


def test_enable_sets_and_creates(tmp_path, monkeypatch):
    keys = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
            "jax_persistent_cache_min_entry_size_bytes")
    before = {k: getattr(jax.config, k) for k in keys}
    try:
        path = enable_compilation_cache(tmp_path / "cache", min_compile_secs=0.5)
        assert path.is_dir() and jax.config.jax_compilation_cache_dir == str(path)
        assert jax.config.jax_persistent_cache_min_compile_time_secs == 0.5
    finally:
        for k, v in before.items():
            jax.config.update(k, v)
    with pytest.raises(ValueError, match="min_compile_secs"):
        enable_compilation_cache(tmp_path / "c2", min_compile_secs=-1.0)


def test_default_dir_and_flags(tmp_path, monkeypatch):
    monkeypatch.delenv(CACHE_ENV, raising=False)
    assert default_cache_dir(tmp_path) == tmp_path / ".jax_cache"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "elsewhere"))
    assert default_cache_dir(tmp_path) == tmp_path / "elsewhere"
    args = build_parser().parse_args(["verify", "--no-cache", "--cache-dir", "x"])
    assert args.no_cache and args.cache_dir == "x"


def test_scoped_cache_restores_settings(tmp_path):
    before = jax.config.jax_compilation_cache_dir
    with compilation_cache(tmp_path / "scoped") as path:
        assert jax.config.jax_compilation_cache_dir == str(path)
        jax.jit(lambda x: x + 1)(1.0)
    assert jax.config.jax_compilation_cache_dir == before
