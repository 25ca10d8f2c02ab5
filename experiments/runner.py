"""The experiment runner: pre-registered settings, resumable sweeps, mean ± SE results, verdicts, reports.

An experiment is a module of this package (`experiments.NAMES`) that declares

  NAME, SECTION (THEORY.md item), CLAIM (the claim as THEORY.md §10 states it, quoted), PAPER (the paper's numbers
  or figure, or None), SETTINGS = {"full": {...}, "quick": {...}} (pre-registered: fixed in the module, chosen on
  tuning seeds 0..999 that no verdict uses), and ``run(ctx, settings) -> Outcome``.

Every training run goes through `Context.sweep`, i.e. `sam_theory.sweep` with ``out_dir`` = ``<out>/<name>/sweeps/
<tag>``: each finished chunk (one chunk = all seeds of one configuration) is written atomically, so a killed run
that is started again loads every finished chunk and computes only the missing ones (`Context.counts` says how
many were computed and loaded; the resume test reads it).

Seeds: evaluation seeds are ``EVAL_SEED0 + i`` (i < ``--seeds``), for the PRNG key of the initialization and the
batches (the sweep's seed axis); the data are drawn once per experiment from ``DATA_SEED``. Seeds 0..999 are the
tuning block, used only while choosing settings.

Verdict rule (`positive`): a claimed positive quantity (a difference or a fitted slope, one value per evaluation
seed) *holds* if mean − 2·SE > 0, *does not hold* if mean + 2·SE < 0 (the opposite direction beyond the error bar),
and is *inconclusive* otherwise (SE = std/√N, ddof = 1; `sam_theory.stats.Z_TREND` = 2).
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import importlib
import json
import os
import platform
import time
import traceback
from pathlib import Path

import numpy as np

from sam_theory.stats import Z_TREND, mean_se, nan_mean_se

EVAL_SEED0 = 1000  # evaluation seeds: 1000, 1001, …; tuning seeds are 0..999
DATA_SEED = 1000  # data draw of every synthetic evaluation problem (tuning used data seed 0)
HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"


class Interrupted(RuntimeError):
    """Raised by `Context.sweep` once ``max_sweeps`` sweeps ran (the tests' stand-in for a killed run)."""


# --- statistics over seeds --------------------------------------------------------------------------------------

def ms(samples, axis=-1) -> dict:
    """{"mean", "se", "n"} over ``axis`` (the seed axis), NaN-aware (diverged runs are NaN and not counted);
    arrays stay arrays (as lists) so every number in results.json comes with its SE."""
    x = np.moveaxis(np.asarray(samples, dtype=float), axis, -1)
    n = np.sum(np.isfinite(x), axis=-1)
    if np.all(np.isfinite(x)):
        mean, se = mean_se(x, axis=-1)
    else:  # per entry: its own finite count
        with np.errstate(invalid="ignore", divide="ignore"):
            mean, se = nan_mean_se(x, axis=-1)
    tolist = lambda v: np.asarray(v).tolist()
    return {"mean": tolist(mean), "se": tolist(se), "n": tolist(n)}


def mse(samples) -> tuple[float, float]:
    """(mean, SE) of all finite entries (one per seed)."""
    x = np.asarray(samples, dtype=float).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan"), float("nan")
    if x.size == 1:
        return float(x[0]), float("nan")  # no SE from one seed
    mean, se = mean_se(x)
    return float(mean), float(se)


def slopes(x, y) -> np.ndarray:
    """Per-seed OLS slope of y against x: ``y`` has shape (len(x), seeds); returns (seeds,)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    xc = x - x.mean()
    return (xc[:, None] * (y - y.mean(axis=0))).sum(axis=0) / (xc ** 2).sum()


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The outcome of one claim: ``status`` (holds / does not hold / inconclusive) of ``quantity`` by ``rule``."""

    claim: str
    quantity: str
    mean: float
    se: float
    n: int
    status: str
    rule: str

    def line(self) -> str:
        return (f"**{self.status.upper()}** — {self.claim}: {self.quantity} = {self.mean:.4g} ± {self.se:.2g} "
                f"(mean ± SE, n = {self.n}); rule: {self.rule}")


def positive(claim: str, quantity: str, samples, *, z: float = Z_TREND) -> Verdict:
    """Verdict that ``samples`` (one per evaluation seed) are positive, by the module's rule (non-finite dropped)."""
    x = np.asarray(samples, dtype=float).ravel()
    x = x[np.isfinite(x)]
    if x.size < 2:
        return Verdict(claim, quantity, float(x.mean()) if x.size else float("nan"), float("nan"), int(x.size),
                       INCONCLUSIVE, f"fewer than 2 finite seeds: cannot decide (needs mean − {z:g}·SE > 0)")
    mean, se = map(float, mean_se(x))
    status = HOLDS if mean - z * se > 0 else FAILS if mean + z * se < 0 else INCONCLUSIVE
    rule = (f"holds if mean − {z:g}·SE > 0, does not hold if mean + {z:g}·SE < 0, else inconclusive "
            f"(over {x.size} evaluation seeds)")
    return Verdict(claim, quantity, mean, se, int(x.size), status, rule)


def fmt(mean, se) -> str:
    return f"{mean:.4g} ± {se:.2g}"


def table(header, rows) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# --- the run context --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Context:
    """What an experiment's ``run`` gets: its folder, size, seeds, and the resumable `sweep`."""

    name: str
    out: Path
    quick: bool
    num_seeds: int
    progress: bool = False
    max_sweeps: int | None = None
    tuning: bool = False
    counts: dict = dataclasses.field(default_factory=lambda: {"sweeps": 0, "chunks_computed": 0,
                                                              "chunks_loaded": 0, "compiles": 0})

    @property
    def seeds(self) -> list[int]:
        """The evaluation seeds EVAL_SEED0, EVAL_SEED0 + 1, … (with ``tuning``: the tuning block 0, 1, …)."""
        return [(0 if self.tuning else EVAL_SEED0) + i for i in range(self.num_seeds)]

    @property
    def data_seed(self) -> int:
        """The seed of the synthetic data draw: DATA_SEED (0 with ``tuning``)."""
        return 0 if self.tuning else DATA_SEED

    def sweep(self, tag: str, problem, method, grid: dict, **kwargs):
        """`sam_theory.sweep` with ``out_dir = <out>/sweeps/<tag>`` and one chunk per configuration (all seeds)."""
        if self.max_sweeps is not None and self.counts["sweeps"] >= self.max_sweeps:
            raise Interrupted(f"{self.name}: stopped after {self.max_sweeps} sweeps")
        from sam_theory import sweep
        grid = dict(grid)
        grid.setdefault("seed", self.seeds)
        kwargs.setdefault("chunk_size", len(grid["seed"]))
        start = init_fingerprint(problem, grid["seed"][0], kwargs.get("params"))
        out_dir = self.out / "sweeps" / tag / f"init-{start}"
        res = sweep(problem, method, grid, out_dir=out_dir, progress=self.progress, **kwargs)
        self.counts["sweeps"] += 1
        for key in ("chunks_computed", "chunks_loaded", "compiles"):
            self.counts[key] += int(res.info[key])
        return res

    def figure_path(self, stem: str) -> Path:
        return self.out / f"{stem}.png"


def init_fingerprint(problem, seed: int, params=None) -> str:
    """A short hash of the starting point of ``seed`` (``params``, or ``problem.init(key(seed))``). The sweep's
    manifest names the problem, method, grid and settings but not how ``init`` draws, so the chunk folder carries
    this hash: chunks computed from another initialization (e.g. before a change of the init rule) are never
    reused."""
    import hashlib

    import jax
    start = params if params is not None else problem.init(jax.random.key(seed))
    digest = hashlib.sha1()
    for leaf in jax.tree.leaves(start):
        digest.update(np.asarray(leaf, dtype=np.float64).tobytes())
    return digest.hexdigest()[:10]


@dataclasses.dataclass
class Outcome:
    """What ``run`` returns: the markdown of what was measured, the verdicts, JSON results, and figure paths."""

    measured: str
    verdicts: list
    results: dict
    figures: list


# --- running and reporting --------------------------------------------------------------------------------------

def machine() -> dict:
    import jax
    try:
        load = os.getloadavg()
    except OSError:  # pragma: no cover
        load = None
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            names = [line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:  # pragma: no cover
        pass
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "load_average_at_start": load,
            "platform": jax.default_backend(), "device": str(jax.devices()[0]), "jax": jax.__version__,
            "python": platform.python_version(), "dtype": str(jax.numpy.zeros(()).dtype)}


def _json_default(obj):
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return repr(obj)


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=_json_default))
    os.replace(tmp, path)


def section(mod, record: dict, outcome: Outcome) -> str:
    """The report.md section of one experiment."""
    size = "quick (machinery only: no verdict is drawn at this size)" if record["quick"] else "full"
    if record["tuning"]:
        size += ", TUNING seeds (settings selection only: no verdict)"
    lines = [f"## {mod.NAME} — THEORY.md {mod.SECTION}", "",
             f"**Claim (THEORY.md {mod.SECTION}, quoted):** “{mod.CLAIM}”", ""]
    if getattr(mod, "PAPER", None):
        lines += [f"**The paper:** {mod.PAPER}", ""]
    lines += [f"**Setup (pre-registered in `experiments/{mod.NAME}.py`, size {size}):** {mod.SETUP}", "",
              f"Settings: `{json.dumps(record['settings'], default=_json_default)}`; evaluation seeds "
              f"{record['seeds'][0]}…{record['seeds'][-1]} ({len(record['seeds'])}); wall time "
              f"{record['total_wall_s']:.0f} s (this invocation {record['wall_s']:.0f} s); sweeps "
              f"{record['counts']['sweeps']} (chunks computed "
              f"{record['counts']['chunks_computed']}, loaded from a previous run "
              f"{record['counts']['chunks_loaded']}).",
              "", "**Measured:**", "", outcome.measured, ""]
    for fig in outcome.figures:
        lines += [f"![{Path(fig).stem}]({Path(fig).relative_to(record['root']).as_posix()})", ""]
    lines += ["**Verdict:**", ""]
    if record["quick"] or record["tuning"]:
        lines += ["- (quick size or tuning seeds: the statistics below exercise the machinery; they are no verdict)"]
    lines += [f"- {v.line()}" for v in outcome.verdicts]
    return "\n".join(lines) + "\n"


def _previous(path: Path, settings: dict, quick: bool, tuning: bool) -> dict:
    """The results.json of an earlier run of the same experiment and settings (its chunks are the ones loaded now),
    or {}: wall times add up over the invocations that computed the chunks (an interrupted invocation's own time,
    before its results.json, is not counted)."""
    if not path.exists():
        return {}
    old = json.loads(path.read_text())
    same = old.get("quick") == quick and old.get("tuning", False) == tuning and \
        json.dumps(old.get("settings"), default=_json_default) == json.dumps(settings, default=_json_default)
    return old if same else {}


def load(name: str):
    from . import NAMES
    if name not in NAMES:
        raise ValueError(f"unknown experiment {name!r}; known: {', '.join(NAMES)}")
    return importlib.import_module(f"experiments.{name}")


def run_experiment(name: str, out_root, *, quick: bool = False, seeds: int | None = None, progress: bool = False,
                   max_sweeps: int | None = None, tuning: bool = False) -> dict:
    """Run one experiment into ``<out_root>/<name>/`` (results.json, figures, report.md); return its record.

    ``tuning=True`` runs on the tuning block (seeds 0.., data seed 0): for choosing settings, never for a verdict.
    """
    mod = load(name)
    settings = dict(mod.SETTINGS["quick" if quick else "full"])
    if seeds is not None:
        if seeds < 2:
            raise ValueError(f"seeds must be ≥ 2 (a standard error needs two), got {seeds}")
        settings["seeds"] = seeds
    out_root = Path(out_root)
    ctx = Context(name, out_root / name, quick, settings["seeds"], progress=progress, max_sweeps=max_sweeps,
                  tuning=tuning)
    ctx.out.mkdir(parents=True, exist_ok=True)
    started = _dt.datetime.now(_dt.timezone.utc)
    machine_now = machine()  # before the run: its load average is the one at the start
    t0 = time.perf_counter()
    outcome = mod.run(ctx, settings)
    wall = time.perf_counter() - t0
    previous = _previous(ctx.out / "results.json", settings, quick, tuning)
    total_wall = wall + (previous.get("total_wall_s", previous.get("wall_s", 0.0)) if ctx.counts["chunks_loaded"]
                         else 0.0)
    machine_info = previous["machine"] if previous.get("machine") and not ctx.counts["chunks_computed"] else \
        machine_now
    record = {"name": name, "section": mod.SECTION, "claim": mod.CLAIM, "paper": getattr(mod, "PAPER", None),
              "quick": quick, "tuning": tuning, "data_seed": ctx.data_seed, "settings": settings, "seeds": ctx.seeds,
              "wall_s": wall, "total_wall_s": total_wall, "counts": dict(ctx.counts),
              "started_utc": previous.get("started_utc") if previous and not ctx.counts["chunks_computed"]
              else started.isoformat(timespec="seconds"), "machine": machine_info,
              "root": out_root}
    text = section(mod, record, outcome)
    (ctx.out / "report.md").write_text(text)
    record.update({"verdicts": [dataclasses.asdict(v) for v in outcome.verdicts], "results": outcome.results,
                   "figures": [Path(f).name for f in outcome.figures]})
    record.pop("root")
    write_json(ctx.out / "results.json", record)
    return record


def assemble_report(out_root, names=None) -> Path:
    """``<out_root>/REPORT.md``: a summary table and every experiment section found under ``out_root``; and
    ``report.html`` beside it (self-contained: figures embedded, inline CSS; `sam_theory.report`)."""
    from . import NAMES
    out_root = Path(out_root)
    records, sections = [], []
    for name in names or NAMES:
        path = out_root / name / "results.json"
        if path.exists():
            records.append(json.loads(path.read_text()))
            sections.append((out_root / name / "report.md").read_text())
    if not records:
        raise ValueError(f"no experiment results under {out_root}")
    m = records[0]["machine"]
    total = sum(r.get("total_wall_s", r["wall_s"]) for r in records)
    sizes = sorted({"quick" if r["quick"] else "full" for r in records})
    rows = []
    for r in records:
        verdicts = "; ".join(f"{v['status']} ({v['claim']})" for v in r["verdicts"]) or "-"
        if r["quick"] or r.get("tuning"):
            verdicts = "no verdict (quick size: machinery only)"
        load = r["machine"]["load_average_at_start"]
        rows.append((r["name"], r["section"], "quick" if r["quick"] else "full",
                     f"{r.get('total_wall_s', r['wall_s']):.0f}",
                     "-" if load is None else f"{load[0]:.1f}", verdicts))
    head = [
        "# sam_theory experiments: THEORY.md §10 reproduced", "",
        f"Reproduce: `sam-theory experiment run all --out {out_root.as_posix()}"
        f"{' --quick' if sizes == ['quick'] else ''}`. Size: {', '.join(sizes)}.", "",
        f"Machine: {m['cpu']} ({m['cpu_count']} cores visible, shared with other jobs: the 1-minute load average at "
        f"the start of each experiment is in the table), JAX {m['jax']} on {m['device']}, {m['dtype']}, "
        f"Python {m['python']}. Total wall time {total:.0f} s ({total / 60:.1f} min).", "",
        "Verdict rule (every claim): the claimed-positive quantity, one value per evaluation seed, *holds* if "
        "mean − 2 SE > 0, *does not hold* if mean + 2 SE < 0, *inconclusive* otherwise. Settings are pre-registered "
        "in each "
        "module, fixed before any evaluation seed ran; the few that were probed (each SETUP says which) were probed "
        "on tuning seeds 0..999 only; evaluation seeds start at 1000. Quick-size runs exercise the "
        "machinery only and decide nothing.", "",
        table(("experiment", "THEORY.md", "size", "wall s", "load", "verdicts"), rows), ""]
    notes = out_root / "NOTES.md"  # hand-written reading of the results, if any (kept apart from the generated text)
    if notes.exists():
        head += [notes.read_text().strip(), ""]
    path = out_root / "REPORT.md"
    path.write_text("\n".join(head) + "\n" + "\n".join(sections))
    from sam_theory.report import markdown_report_to_html
    markdown_report_to_html(path)
    return path


def run_many(names, out_root, *, quick=False, seeds=None, progress=False, echo=print) -> list[dict]:
    """Run ``names`` (or ``["all"]``) in order, then assemble REPORT.md."""
    from . import NAMES
    names = list(NAMES) if list(names) == ["all"] else list(names)
    for name in names:
        load(name)  # fail early on a typo
    records, failed, path = [], [], None
    for name in names:
        echo(f"[{name}] running ({'quick' if quick else 'full'}) …")
        try:
            record = run_experiment(name, out_root, quick=quick, seeds=seeds, progress=progress)
        except Exception:  # one broken experiment does not stop the suite; it is reported and the run fails
            echo(f"[{name}] FAILED:\n{traceback.format_exc()}")
            failed.append(name)
            continue
        records.append(record)
        echo(f"[{name}] {record['wall_s']:.1f} s; " + "; ".join(f"{v['status']}: {v['claim']}"
                                                                   for v in record["verdicts"]))
        path = assemble_report(out_root)  # after every experiment, so a stopped suite leaves a partial report
    if path is not None:
        echo(f"wrote {path}")
    if failed:
        raise RuntimeError(f"experiments failed: {', '.join(failed)} (tracebacks above)")
    return records
