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


def best_wall_and_cpu(fn, *args, repeats: int = 3) -> tuple[float, float]:
    """Best-of-``repeats`` (wall seconds, process CPU seconds) per call of ``fn(*args)``, after a warm-up call.

    On a shared machine the CPU time of this process (all its threads) drifts much less with the others' load than
    the wall time; a computation that runs on both cores counts both."""
    jax.block_until_ready(fn(*args))
    wall = cpu = float("inf")
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn(*args))
        wall, cpu = min(wall, time.perf_counter() - w), min(cpu, time.process_time() - c)
    return wall, cpu


def machine() -> str:
    dev = jax.devices()[0]
    return f"{platform.processor() or platform.machine()}, backend={jax.default_backend()} ({dev.device_kind})"
