"""The registry of theorem checks run by `sam-theory verify`, and the check contract.

A check is a function ``fn(ctx: Context) -> CheckResult`` registered under a fixed name and a THEORY.md tag:

- [exact]: relative error below 1e-10 in float64 (`sam_theory.stats.EXACT_TOL`);
- [bound]: measured ≤ bound, with only the stated margin;
- [trend]: a direction over several seeds, passing only if it holds beyond the error bar (`stats.Z_TREND`).

**Contract.** A `CheckResult` is a list of `Criterion` records (name, value, bound, passed, how) plus ``facts``
(settings and side measurements, JSON-able) and ``data`` (the typed payload of the check's figure). The check
passes iff every criterion passes; its headline ``measured``/``bound`` is the criterion that decides: the first
failing one, else the first one.

**Seed blocks.** ``verify --seed s`` gives every check the block ``Context.seed_block(i) = 1000·(s + 1) + i``,
``0 ≤ i < 1000``, for every draw (data, init, batches): blocks of different ``s`` are disjoint, and the block
0…999 is never evaluated: it is where settings are pre-registered (``TUNING_BLOCK``).

**Mutants.** ``register(..., mutants=("name", …))`` declares named fault injections. The check applies one with
``if ctx.mutated("name"): …`` (a sign flipped, a term dropped, SGD in place of SAM, …). `run_mutant` runs the
check with one mutant active: it is *killed* when the check fails (or raises); a mutant the check never asked for
counts as not killed.

`run_check` runs each check inside `sam_theory.precision.float64()`, times it, and turns an exception into a
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
SEED_BLOCK = 1000  # draws per check and per --seed; block s covers [1000·(s+1), 1000·(s+2))
TUNING_BLOCK = range(SEED_BLOCK)  # seeds 0…999: settings are chosen here, never evaluated


@dataclasses.dataclass(frozen=True)
class Criterion:
    """One pass/fail statement of a check: ``value`` compared with ``bound`` as ``how`` says.

    ``how`` is the comparison in words, e.g. ``"value ≤ bound"`` or ``"z = mean/SE > bound"``.
    """

    name: str
    value: float
    bound: float
    passed: bool
    how: str

    def as_json(self) -> dict:
        return {"name": self.name, "value": _finite(self.value), "bound": _finite(self.bound),
                "passed": bool(self.passed), "how": self.how}

    def __str__(self) -> str:
        return (f"{'PASS' if self.passed else 'FAIL'} {self.name}: {_fmt(self.value)} vs {_fmt(self.bound)} "
                f"({self.how})")


def at_most(name: str, value, bound, how: str = "value ≤ bound") -> Criterion:
    """Criterion ``value ≤ bound`` (NaN fails)."""
    value, bound = float(value), float(bound)
    return Criterion(name, value, bound, bool(value <= bound), how)


def below(name: str, value, bound, how: str = "value < bound") -> Criterion:
    """Criterion ``value < bound`` (NaN fails)."""
    value, bound = float(value), float(bound)
    return Criterion(name, value, bound, bool(value < bound), how)


def at_least(name: str, value, bound, how: str = "value ≥ bound") -> Criterion:
    """Criterion ``value ≥ bound`` (NaN fails)."""
    value, bound = float(value), float(bound)
    return Criterion(name, value, bound, bool(value >= bound), how)


def above(name: str, value, bound, how: str = "value > bound") -> Criterion:
    """Criterion ``value > bound`` (NaN fails)."""
    value, bound = float(value), float(bound)
    return Criterion(name, value, bound, bool(value > bound), how)


def holds(name: str, flag: bool, how: str) -> Criterion:
    """A yes/no criterion (value 1 or 0 against bound 1)."""
    return Criterion(name, float(bool(flag)), 1.0, bool(flag), how)


@dataclasses.dataclass
class CheckResult:
    """What a check measured.

    Attributes:
      criteria: the pass/fail statements; the check passes iff all pass (and there is at least one).
      facts: settings and side measurements (JSON-able scalars, strings, lists), shown in the detail text.
      data: the typed payload of the check's figure (rendered by the function bound in `register`), not in JSON.
    """

    criteria: list[Criterion]
    facts: dict = dataclasses.field(default_factory=dict)
    data: Any = None

    @property
    def passed(self) -> bool:
        return bool(self.criteria) and all(c.passed for c in self.criteria)

    @property
    def headline(self) -> Criterion:
        """The criterion that decides: the first failing one, else the first one."""
        return next((c for c in self.criteria if not c.passed), self.criteria[0])

    @property
    def measured(self) -> float:
        return self.headline.value

    @property
    def bound(self) -> float:
        return self.headline.bound

    @property
    def detail(self) -> str:
        """Text rendered from the criteria and facts."""
        lines = [str(c) for c in self.criteria]
        lines += [f"{k}: {_fmt(v)}" for k, v in self.facts.items()]
        return "\n".join(lines)



@dataclasses.dataclass
class Context:
    """What a check may use: ``quick`` (smaller sizes for `verify --quick`), ``seed`` (the seed block),
    ``out_dir`` and the active ``mutant`` (None outside mutation testing)."""

    quick: bool = True
    seed: int = 0
    out_dir: Path | None = None
    mutant: str | None = None
    declared_mutants: tuple[str, ...] = ()
    applied: set = dataclasses.field(default_factory=set)

    def seed_block(self, i: int = 0) -> int:
        """The ``i``-th seed of this check's block: 1000·(seed + 1) + i, disjoint across ``--seed`` values."""
        if not 0 <= i < SEED_BLOCK:
            raise ValueError(f"seed index i must be in [0, {SEED_BLOCK}), got {i}")
        return SEED_BLOCK * (self.seed + 1) + i

    def seeds(self, num: int, start: int = 0) -> list[int]:
        """``num`` consecutive seeds of the block, from index ``start``."""
        return [self.seed_block(start + k) for k in range(num)]

    def mutated(self, name: str) -> bool:
        """True iff mutant ``name`` (declared in `register`) is active; records that the check applies it."""
        if name not in self.declared_mutants:
            raise ValueError(f"mutant {name!r} is not declared for this check; declared: {self.declared_mutants}")
        if self.mutant == name:
            self.applied.add(name)
            return True
        return False


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    tag: str
    section: str
    fn: Callable[[Context], CheckResult]
    figure: Callable[[Any, Path], Path] | None = None
    mutants: tuple[str, ...] = ()
    plot: str | None = None


REGISTRY: dict[str, Check] = {}


def register(name: str, tag: str, section: str, *, figure: Callable | None = None, mutants=(),
             plot: str | None = None):
    """Decorator: register ``fn(ctx) -> CheckResult`` as the check ``name`` with THEORY.md ``tag``/``section``.

    ``figure(data, path) -> path`` renders the check's figure from `CheckResult.data` (its typed payload);
    ``mutants`` names the fault injections the check must kill (see `Context.mutated`); ``plot`` names the
    ``sam-theory plot KIND`` that runs the check and renders its figure (requires ``figure``).
    """
    if tag not in TAGS:
        raise ValueError(f"tag must be one of {TAGS}, got {tag!r}")
    if plot is not None and figure is None:
        raise ValueError(f"plot kind {plot!r} of check {name!r} needs a figure")

    def deco(fn):
        if name in REGISTRY:
            raise ValueError(f"check {name!r} is registered twice")
        REGISTRY[name] = Check(name, tag, section, fn, figure, tuple(mutants), plot)
        return fn

    return deco


def select(pattern: str | None = None) -> list[Check]:
    rx = re.compile(pattern) if pattern else None
    return [c for name, c in sorted(REGISTRY.items()) if rx is None or rx.search(name)]


def render_figure(check: Check, data, path) -> Path | None:
    """The check's bound figure (`register(..., figure=fn)`) on its payload ``data``, written to ``path``; None when
    there is nothing to draw."""
    if data is None or check.figure is None:
        return None
    return check.figure(data, Path(path))


def _finite(x: Any):
    x = float(x)
    return x if math.isfinite(x) else None


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _context(check: Check, ctx: Context, mutant: str | None) -> Context:
    return dataclasses.replace(ctx, mutant=mutant, declared_mutants=check.mutants, applied=set())


def run_check(check: Check, ctx: Context) -> tuple[dict, Any]:
    """Run one check in float64; return its JSON record and its figure payload."""
    start = time.perf_counter()
    try:
        with float64():
            res = check.fn(_context(check, ctx, None))
        record = {"passed": res.passed, "measured": _finite(res.measured), "bound": _finite(res.bound),
                  "criteria": [c.as_json() for c in res.criteria], "facts": _jsonable(res.facts),
                  "detail": res.detail}
        data = res.data
    except Exception:  # a broken check is a failed check, reported with its traceback
        record = {"passed": False, "measured": None, "bound": None, "criteria": [], "facts": {},
                  "detail": "error:\n" + traceback.format_exc()}
        data = None
    record = {"name": check.name, "tag": check.tag, "section": check.section, **record,
              "seconds": round(time.perf_counter() - start, 3)}
    return record, data


def run_mutant(check: Check, mutant: str, ctx: Context) -> dict:
    """Run ``check`` with ``mutant`` active; ``killed`` iff the mutant was applied and the check failed or raised."""
    mctx = _context(check, ctx, mutant)
    try:
        with float64():
            res = check.fn(mctx)
        failed = not res.passed
        why = "; ".join(str(c) for c in res.criteria if not c.passed) or "every criterion still passes"
    except Exception as exc:
        failed, why = True, f"raised {exc!r}"
    applied = mutant in mctx.applied
    if not applied:
        why = "the check never applied this mutant"
    return {"check": check.name, "mutant": mutant, "killed": bool(failed and applied), "detail": why}


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (str, bool, int)) or obj is None:
        return obj
    try:
        return _finite(obj)
    except (TypeError, ValueError):
        return str(obj)
