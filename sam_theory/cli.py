"""`sam-theory`: the command line. Its main job is `sam-theory verify`, the table of theorem checks."""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, NamedTuple


def _write_json_atomic(path: Path, obj) -> None:
    """Write ``obj`` as JSON through a unique temporary file in the same folder and `os.replace`; the temporary
    file is removed if anything fails, so no stray ``*.tmp`` is left behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(obj, indent=2))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _new_run_dir(parent: Path) -> Path:
    """A fresh run folder ``parent/<YYYYmmdd-HHMMSS-ffffff>`` (microseconds; ``-1``, ``-2``… if it exists), made
    with ``exist_ok=False`` so that two runs never share one."""
    parent.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    for i in range(1000):
        run_dir = parent / (stamp if i == 0 else f"{stamp}-{i}")
        try:
            run_dir.mkdir(exist_ok=False)
            return run_dir
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a fresh run folder under {parent}")


# --- argument validation: everything is checked before any check or figure runs (argparse errors, exit 2) -------
def _regex(text: str) -> str:
    """An argparse type: a valid regular expression."""
    try:
        re.compile(text)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"invalid regular expression {text!r}: {exc}") from None
    return text


def _nonnegative_int(text: str) -> int:
    """An argparse type: an integer ≥ 0 (seeds)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def _unwritable(path: Path, *, directory: bool) -> str | None:
    """Why ``path`` (a file to write, or a folder to create files in) cannot be written, or None.

    Walks up to the deepest existing ancestor, which must be a folder in which a file can be created (tried with a
    temporary file, so read-only mounts and /proc are caught as well as permissions)."""
    if path.exists() and (path.is_dir() != directory):
        return f"{path} is {'not a directory' if directory else 'a directory'}"
    probe = path if directory and path.exists() else path.parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is not a directory"
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        return f"cannot write in {probe}: {exc.strerror or exc}"
    return None


def _validate_paths(parser: argparse.ArgumentParser, args) -> None:
    """Refuse output paths that cannot be written before anything runs (``parser.error``: exit 2)."""
    targets = []
    if args.command == "verify":
        targets = [("--out", args.out, True)] + ([("--json", args.json, False)] if args.json else [])
    elif args.command == "plot":
        targets = [("--out", args.out, False)]
    elif args.command == "experiment" and args.action == "run":
        targets = [("--out", args.out, True)]
    for flag, value, directory in targets:
        why = _unwritable(Path(value), directory=directory)
        if why:
            parser.error(f"argument {flag}: {why}")


def _grid(rows) -> str:
    """A left-aligned text table; ``rows[0]`` is the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _table(records) -> str:
    def fmt(v):
        return "-" if v is None else f"{v:.4g}"
    rows = [("check", "tag", "measured", "bound", "pass", "s")]
    rows += [(r["name"], r["tag"], fmt(r["measured"]), fmt(r["bound"]), "PASS" if r["passed"] else "FAIL",
              f"{r['seconds']:.1f}") for r in records]
    return _grid(rows)


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _progress(items, desc: str, unit: str):
    try:
        from tqdm import tqdm
        return tqdm(items, desc=desc, unit=unit, disable=not sys.stderr.isatty())
    except ImportError:  # pragma: no cover
        return items


def verify_mutants(selected, ctx, json_path) -> int:
    """Run every selected check under each of its declared mutants (`checks.run_mutant`); exit 1 if a mutant
    survives or a check declares none. Sizes follow ``ctx.quick`` exactly as in `verify`."""
    from . import checks
    rows = []
    jobs = [(c, m) for c in selected for m in (c.mutants or (None,))]
    bar = _progress(jobs, "mutants", "run")
    for check, mutant in bar:
        if hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(f"{check.name}:{mutant}")
        if mutant is None:
            rows.append({"check": check.name, "mutant": None, "killed": False,
                         "detail": "the check declares no mutant"})
        else:
            rows.append(checks.run_mutant(check, mutant, ctx))
    if json_path:
        _write_json_atomic(Path(json_path), {"quick": ctx.quick, "seed": ctx.seed, "mutants": rows})
    short = lambda text: text if len(text) <= 100 else text[:97] + "..."
    print(_grid([("check", "mutant", "killed", "detail")] +
                [(r["check"], str(r["mutant"]), "yes" if r["killed"] else "NO", short(r["detail"].splitlines()[0]))
                 for r in rows]))
    killed = sum(r["killed"] for r in rows)
    for r in rows:
        if not r["killed"]:
            print(f"\nSURVIVED {r['check']}:{r['mutant']}\n{_indent(r['detail'])}")
    print(f"\n{killed}/{len(rows)} mutants killed")
    return 0 if killed == len(rows) else 1


def verify(args) -> int:
    """Run the checks, inside the persistent compilation cache unless ``--no-cache`` (`compile_cache`)."""
    from .compile_cache import compilation_cache, default_cache_dir
    if args.no_cache:
        return _verify(args)
    with compilation_cache(args.cache_dir or default_cache_dir(args.out)):
        return _verify(args)


def _verify(args) -> int:
    import jax

    cpu0, wall0 = time.process_time(), time.perf_counter()
    from . import checks
    from .precision import float64

    selected = checks.select(args.only)
    if not selected:
        print(f"no check matches {args.only!r}; known: {', '.join(sorted(checks.REGISTRY))}", file=sys.stderr)
        return 2
    if args.mutants:
        return verify_mutants(selected, checks.Context(quick=args.quick, seed=args.seed), args.json)
    run_dir = _new_run_dir(Path(args.out))
    ctx = checks.Context(quick=args.quick, seed=args.seed, out_dir=run_dir)
    with float64():
        dtype = str(jax.numpy.zeros(()).dtype)
    records = []
    bar = _progress(selected, "verify", "check")
    for check in bar:
        if hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(check.name)
        record, data = checks.run_check(check, ctx)
        try:
            fig = checks.render_figure(check, data, run_dir / f"{check.name}.png")
        except Exception as exc:  # a figure that fails to render is reported, not fatal
            fig = None
            record["detail"] += f"\nfigure failed: {exc!r}"
        if fig is not None:
            record["figure"] = str(fig)
        records.append(record)
    result = {"platform": jax.default_backend(), "device": str(jax.devices()[0]), "dtype": dtype,
              "jax_version": jax.__version__, "python": platform.python_version(), "quick": args.quick,
              "seed": args.seed, "xla_flags": os.environ.get("XLA_FLAGS", ""), "checks": records}
    print(_table(records))  # before writing, so a failing write cannot lose the table
    _write_json_atomic(run_dir / "results.json", result)
    if args.json:
        _write_json_atomic(Path(args.json), result)
    failed = [r for r in records if not r["passed"]]
    expected = [r for r in failed if args.expect_fail and re.search(args.expect_fail, r["name"])]
    for r in failed:  # the detail is rendered from the criteria (one line each) and the facts
        tag = " (declared by --expect-fail: a claim reported as not holding, still counted as failed)" \
            if r in expected else ""
        print(f"\nFAILED {r['name']}{tag}:\n{_indent(r['detail'])}")
    print(f"\n{len(records) - len(failed)}/{len(records)} checks passed; results in {run_dir / 'results.json'}")
    if expected:
        print(f"{len(expected)} failed check(s) declared by --expect-fail {args.expect_fail!r}: "
              + ", ".join(r["name"] for r in expected))
    print(f"wall {time.perf_counter() - wall0:.1f} s, process CPU {time.process_time() - cpu0:.1f} s")
    if args.html:
        from .report import report_after_verify
        print(f"report: {report_after_verify(run_dir, args.json)}")
    if args.verbose:
        for r in records:
            print(f"\n[{r['name']}]\n{_indent(r['detail'])}")
    return 0 if len(failed) == len(expected) else 1


# --- `sam-theory plot KIND`: figures outside the check table -------------------------------------------------
class PlotKind(NamedTuple):
    """One `plot` kind: ``run(args) -> int`` makes the figure; ``add_arguments(parser)`` adds the kind's own options
    (every kind also gets --out, --seed, --steps, --seeds, --batch-size)."""

    run: Callable
    add_arguments: Callable | None = None
    help: str = ""


PLOT_KINDS: dict[str, PlotKind] = {}


def register_plot_kind(name: str, run: Callable, add_arguments: Callable | None = None, help: str = "") -> None:
    """Add ``sam-theory plot NAME`` (other modules call this; one line per kind)."""
    PLOT_KINDS[name] = PlotKind(run, add_arguments, help)


def _int_list(text: str) -> list[int]:
    """"40,100,400" → [40, 100, 400] (positive integers), an argparse type."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return values


def _sweep_arguments(parser) -> None:
    from .plots.convergence import SWEEP_PROBLEMS
    parser.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    parser.add_argument("--seeds", type=int, default=16, help="batch-sampling seeds (default 16)")
    parser.add_argument("--batch-size", type=int, default=4, help="batch size b (default 4)")
    parser.add_argument("--problem", choices=SWEEP_PROBLEMS, default="linear_regression")
    parser.add_argument("--p", type=_int_list, default=[40, 100, 400, 1600], metavar="P1,P2,…",
                        help="numbers of parameters (default 40,100,400,1600; each > n)")
    parser.add_argument("--n", type=int, default=20, help="number of examples (default 20)")
    parser.add_argument("--method", choices=("usam", "sgd", "sam"), default="usam",
                        help="usam (Theorem B), sgd (ρ = 0) or sam (normalized: no bound drawn)")


def _sweep(args):
    from .plots.convergence import convergence_sweep
    return convergence_sweep(args.problem, args.p, method=args.method, steps=args.steps, seeds=args.seeds,
                             batch_size=args.batch_size, n=args.n, seed=args.seed)


def _plot_convergence(args) -> int:
    from .plots.convergence import plot_convergence, sweep_title
    results = _sweep(args)
    path = plot_convergence({p: r.curve() for p, r in results.items()}, args.out,
                            title="Theorem B: " + sweep_title(results, args.method, args.problem))
    for p, r in results.items():
        print(f"p={p}: {r.summary()}")
    print(f"wrote {path}")
    return 0


def _plot_rate(args) -> int:
    from .plots.convergence import plot_rate, sweep_title
    from .stats import nan_mean_se
    results = _sweep(args)
    mean, se = zip(*(nan_mean_se(r.seed_slopes) for r in results.values()))
    path = plot_rate(list(results), mean, se,
                     None if args.method == "sam" else [r.theorem.rate for r in results.values()], args.out,
                     title="Rate against p: " + sweep_title(results, args.method, args.problem))
    for p, r in results.items():
        print(f"p={p}: {r.summary()}")
    print(f"wrote {path}")
    return 0


register_plot_kind("convergence", _plot_convergence, _sweep_arguments,
                   "log f(x_t) against t per p, band over seeds, Theorem B bound dashed (THEORY.md §6)")
register_plot_kind("rate", _plot_rate, _sweep_arguments,
                   "fitted linear rate against p, with the guaranteed 1 − 2μηc (THEORY.md §6)")


# Figures of registered checks: a check that declares `register(..., plot="KIND")` gets `sam-theory plot KIND`,
# which runs the check (quick sizes unless --full) and renders the figure bound to it.


def _check_figure_arguments(parser) -> None:
    parser.add_argument("--full", action="store_true", help="the check's full sizes (default: verify --quick's)")


def _check_figure(check_name: str) -> Callable:
    def run(args) -> int:
        from . import checks
        check = checks.REGISTRY[check_name]
        out = Path(args.out)
        record, data = checks.run_check(check, checks.Context(quick=not args.full, seed=args.seed,
                                                             out_dir=out.parent))
        print(_table([record]))
        path = checks.render_figure(check, data, out)
        if path is None:
            print(f"{check_name} produced no figure: {record['detail']}", file=sys.stderr)
            return 1
        print(f"wrote {path}")
        return 0
    return run


def check_plot_kinds() -> dict[str, str]:
    """``{kind: check name}`` for every check with a `sam-theory plot` kind."""
    from . import checks
    return {c.plot: c.name for c in checks.REGISTRY.values() if c.plot is not None}


def _register_check_kinds() -> None:
    from . import checks
    for kind, name in check_plot_kinds().items():
        if kind not in PLOT_KINDS:
            doc = " ".join((checks.REGISTRY[name].fn.__doc__ or "").strip().split("\n\n")[0].split())  # 1st paragraph
            register_plot_kind(kind, _check_figure(name), _check_figure_arguments, f"{doc} [check {name}]")


def plot(args) -> int:
    try:
        return PLOT_KINDS[args.kind].run(args)
    except ValueError as exc:  # bad input reaches here as a ValueError naming the argument
        print(f"sam-theory plot {args.kind}: error: {exc}", file=sys.stderr)
        return 2


# --- `sam-theory experiment list | run NAME…`: the THEORY.md §10 experiments (top-level package `experiments`) ---
def _experiments():
    """The top-level `experiments` package (it sits next to `sam_theory` in the repository)."""
    try:
        import experiments
    except ImportError:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        import experiments
    return experiments


def experiment(args) -> int:
    exps = _experiments()
    from experiments import runner
    if args.action == "list":
        for name in exps.NAMES:
            mod = runner.load(name)
            print(f"{name:12s} THEORY.md {mod.SECTION}: {mod.CLAIM}")
        return 0
    if not args.names:
        print("sam-theory experiment run: give experiment names or 'all'", file=sys.stderr)
        return 2
    try:
        runner.run_many(args.names, args.out, quick=args.quick, seeds=args.seeds, progress=sys.stderr.isatty())
    except (ValueError, RuntimeError) as exc:
        print(f"sam-theory experiment: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) else 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    _register_check_kinds()
    parser = argparse.ArgumentParser(prog="sam-theory", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify", help="run the theorem checks and write runs/<timestamp>/results.json")
    v.add_argument("--quick", action="store_true", help="smaller sizes, for a laptop CPU")
    v.add_argument("--only", metavar="REGEX", type=_regex, help="run only the checks whose name matches REGEX")
    v.add_argument("--expect-fail", metavar="REGEX", type=_regex,
                   help="checks whose failure is a declared, reported negative result (they still run, print FAILED "
                        "and count as failed; only the exit status ignores them)")
    v.add_argument("--json", metavar="PATH", help="also write the results JSON to PATH")
    v.add_argument("--out", metavar="DIR", default="runs", help="parent folder of the run folder (default runs)")
    v.add_argument("--seed", type=_nonnegative_int, default=0, help="base seed of every check (default 0)")
    v.add_argument("-v", "--verbose", action="store_true", help="print every check's detail string")
    v.add_argument("--list", action="store_true", help="list the registered checks and exit")
    v.add_argument("--mutants", action="store_true",
                   help="mutation testing: run each selected check under each of its declared mutants (at --quick "
                        "sizes if given, else full) and report killed/total; --json writes {\"mutants\": [...]}")
    v.add_argument("--html", action="store_true", help="also write a self-contained report.html in the run folder")
    v.add_argument("--cache-dir", metavar="DIR", help="persistent compilation cache (default: $SAM_THEORY_CACHE_DIR, "
                   "else OUT/.jax_cache)")
    v.add_argument("--no-cache", action="store_true", help="do not use the persistent compilation cache")
    v.set_defaults(func=verify)
    pl = sub.add_parser("plot", help="make a figure (kinds: " + ", ".join(PLOT_KINDS) + ")")
    kinds = pl.add_subparsers(dest="kind", required=True)
    for name, kind in PLOT_KINDS.items():
        k = kinds.add_parser(name, help=kind.help, description=kind.help)
        k.add_argument("--out", metavar="PNG", default=f"{name}.png", help=f"output file (default {name}.png)")
        k.add_argument("--seed", type=_nonnegative_int, default=0, help="data and batch seed (default 0)")
        if kind.add_arguments is not None:
            kind.add_arguments(k)
    pl.set_defaults(func=plot)
    ex = sub.add_parser("experiment", help="list or run the THEORY.md §10 experiments (experiments/)")
    ex.add_argument("action", choices=("list", "run"))
    ex.add_argument("names", nargs="*", metavar="NAME", help="experiment names, or 'all'")
    ex.add_argument("--quick", action="store_true", help="tiny sizes for the machinery (no verdicts)")
    ex.add_argument("--out", metavar="DIR", default="experiments/results", help="output folder "
                    "(default experiments/results; REPORT.md is assembled there)")
    ex.add_argument("--seeds", type=int, default=None, help="number of evaluation seeds (default: each "
                    "experiment's pre-registered number)")
    ex.set_defaults(func=experiment)
    from .report import add_report_command
    add_report_command(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not (args.command == "verify" and args.list):
        _validate_paths(parser, args)
    if args.command in ("verify", "plot"):
        from .compiler import fast_compile_process
        fast_compile_process()  # compile-bound processes (`sam_theory.compiler`)
    if args.command == "verify" and args.list:
        from . import checks
        for c in checks.select(args.only):
            print(f"{c.name:50s} [{c.tag}] THEORY.md {c.section}")
        return 0
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
