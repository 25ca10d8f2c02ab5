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


def interleaved_times(calls: dict, *, rounds: int = 5, number: int = 1, clock=time.process_time) -> dict:
    """Best-of-``rounds`` seconds per call for each ``name: (fn, args)``, the calls interleaved round-robin.

    On a shared machine the load drifts during a run; interleaving exposes every entry to the same drift, and the
    default clock is the process CPU time (summed over XLA's threads), which other jobs inflate far less than wall
    time. Each ``fn`` is called once beforehand (compilation).
    """
    for fn, args in calls.values():
        jax.block_until_ready(fn(*args))
    best = {name: float("inf") for name in calls}
    for _ in range(rounds):
        for name, (fn, args) in calls.items():
            start = clock()
            for _ in range(number):
                out = fn(*args)
            jax.block_until_ready(out)
            best[name] = min(best[name], (clock() - start) / number)
    return best
