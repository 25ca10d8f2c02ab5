"""The registry of theorem checks run by `sam-theory verify`.

A check is a function ``fn(ctx: Context) -> CheckResult`` registered under a fixed name and a THEORY.md tag:

- [exact]: relative error below 1e-10 in float64;
- [bound]: measured ≤ bound, with only the stated margin;
- [trend]: a direction over several seeds, passing only if it holds beyond the error bar.

`run_checks` runs each check inside `sam_theory.precision.float64()`, times it, and turns an exception into a
failed result carrying the traceback, so one broken check never hides the others.
"""
from __future__ import annotations

import dataclasses
import math
import re
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from ..precision import float64

TAGS = ("exact", "bound", "trend", "recon")


@dataclasses.dataclass
class CheckResult:
    """What a check measured.

    Attributes:
      passed: the verdict.  measured: the headline figure.  bound: what it is compared with.
      detail: how measured and bound were computed (tolerance, seeds, slack).
      data: arrays for the figure of this check (rendered by `sam_theory.plots`), not written to JSON.
    """

    passed: bool
    measured: float
    bound: float
    detail: str
    data: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Context:
    """What a check may use: ``quick`` (smaller sizes for `verify --quick`), ``seed`` and ``out_dir``."""

    quick: bool = True
    seed: int = 0
    out_dir: Path | None = None


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    tag: str
    section: str
    fn: Callable[[Context], CheckResult]


REGISTRY: dict[str, Check] = {}


def register(name: str, tag: str, section: str):
    """Decorator: register ``fn(ctx) -> CheckResult`` as the check ``name`` with THEORY.md ``tag``/``section``."""
    if tag not in TAGS:
        raise ValueError(f"tag must be one of {TAGS}, got {tag!r}")

    def deco(fn):
        if name in REGISTRY:
            raise ValueError(f"check {name!r} is registered twice")
        REGISTRY[name] = Check(name, tag, section, fn)
        return fn

    return deco


def select(pattern: str | None = None) -> list[Check]:
    rx = re.compile(pattern) if pattern else None
    return [c for name, c in sorted(REGISTRY.items()) if rx is None or rx.search(name)]


def _finite(x: Any):
    x = float(x)
    return x if math.isfinite(x) else None


def run_check(check: Check, ctx: Context) -> tuple[dict, dict]:
    """Run one check in float64; return its JSON record and its plot data."""
    start = time.perf_counter()
    try:
        with float64():
            res = check.fn(ctx)
        record = {"passed": bool(res.passed), "measured": _finite(res.measured), "bound": _finite(res.bound),
                  "detail": res.detail}
        data = res.data
    except Exception:  # a broken check is a failed check, reported with its traceback
        record = {"passed": False, "measured": None, "bound": None, "detail": "error:\n" + traceback.format_exc()}
        data = {}
    record = {"name": check.name, "tag": check.tag, "section": check.section, **record,
              "seconds": round(time.perf_counter() - start, 3)}
    return record, data
