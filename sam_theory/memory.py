"""Memory budgets: estimate before allocating, and refuse with a named `ValueError` instead of aborting.

Every function that would materialize something quadratic or worse in p (per-example Hessians n·p², a dense
Hessian p², the dense stability operator on symmetric matrices ≈ p⁴/4) takes ``memory_budget`` in bytes. ``None``
means `default_budget()`: ``DEFAULT_FRACTION`` (a quarter) of the memory the OS reports as available when asked
(``os.sysconf``), or 4 GiB when it does not say.
"""
from __future__ import annotations

import os

import numpy as np

DEFAULT_FRACTION = 0.25
FALLBACK_BYTES = 4 * 2**30


def available_bytes() -> int:
    """Physical memory currently available (``SC_AVPHYS_PAGES · SC_PAGE_SIZE``), or `FALLBACK_BYTES` / 0.25."""
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return int(FALLBACK_BYTES / DEFAULT_FRACTION)


def default_budget() -> int:
    """``DEFAULT_FRACTION`` of `available_bytes()`."""
    return int(DEFAULT_FRACTION * available_bytes())


def resolve_budget(memory_budget) -> int:
    """``memory_budget`` in bytes (None: `default_budget()`); `ValueError` unless a positive number."""
    if memory_budget is None:
        return default_budget()
    if isinstance(memory_budget, bool) or not isinstance(memory_budget, (int, float, np.integer, np.floating)) \
            or not memory_budget > 0:
        raise ValueError(f"memory_budget must be a positive number of bytes (or None), got {memory_budget!r}")
    return int(memory_budget)


def array_bytes(shape, dtype) -> int:
    """Bytes of an array of ``shape`` and ``dtype`` (Python integers: no overflow)."""
    count = 1
    for s in shape:
        count *= int(s)
    return count * np.dtype(dtype).itemsize


def gib(nbytes: int) -> str:
    return f"{nbytes / 2**30:.3g} GiB"


def check_fits(what: str, nbytes: int, memory_budget, alternative: str) -> None:
    """`ValueError` naming ``what``, the estimate, the budget and ``alternative`` when nbytes > the budget."""
    budget = resolve_budget(memory_budget)
    if nbytes > budget:
        raise ValueError(f"{what} needs about {gib(nbytes)}, over memory_budget = {gib(budget)}; {alternative}")


def fits(nbytes: int, memory_budget) -> bool:
    return nbytes <= resolve_budget(memory_budget)
