"""Timing helpers for the benchmarks: best-of-k wall time of a function whose outputs are blocked on."""
from __future__ import annotations

import platform
import time

import jax


def best_time(fn, *args, repeats: int = 5, number: int = 1) -> float:
    """Best-of-``repeats`` seconds per call of ``fn(*args)`` (after one warm-up call that compiles)."""
    jax.block_until_ready(fn(*args))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            out = fn(*args)
        jax.block_until_ready(out)
        best = min(best, (time.perf_counter() - start) / number)
    return best


def machine() -> str:
    dev = jax.devices()[0]
    return f"{platform.processor() or platform.machine()}, backend={jax.default_backend()} ({dev.device_kind})"
