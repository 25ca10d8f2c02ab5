"""`sam-theory`: the command line. Its main job is `sam-theory verify`, the table of theorem checks."""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import sys
from pathlib import Path


def _write_json_atomic(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)


def _table(records) -> str:
    def fmt(v):
        return "-" if v is None else f"{v:.4g}"
    rows = [("check", "tag", "measured", "bound", "pass", "s")]
    rows += [(r["name"], r["tag"], fmt(r["measured"]), fmt(r["bound"]), "PASS" if r["passed"] else "FAIL",
              f"{r['seconds']:.1f}") for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def verify(args) -> int:
    import jax

    from . import checks, plots
    from .precision import float64

    selected = checks.select(args.only)
    if not selected:
        print(f"no check matches {args.only!r}; known: {', '.join(sorted(checks.REGISTRY))}", file=sys.stderr)
        return 2
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = Path(args.out) / stamp
    run_dir.mkdir(parents=True, exist_ok=True)
    ctx = checks.Context(quick=args.quick, seed=args.seed, out_dir=run_dir)
    with float64():
        dtype = str(jax.numpy.zeros(()).dtype)
    records = []
    try:
        from tqdm import tqdm
        bar = tqdm(selected, desc="verify", unit="check", disable=not sys.stderr.isatty())
    except ImportError:  # pragma: no cover
        bar = selected
    for check in bar:
        if hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(check.name)
        record, data = checks.run_check(check, ctx)
        try:
            fig = plots.render_check_figure(check.name, data, run_dir)
        except Exception as exc:  # a figure that fails to render is reported, not fatal
            fig = None
            record["detail"] += f"\nfigure failed: {exc!r}"
        if fig is not None:
            record["figure"] = str(fig)
        records.append(record)
    result = {"platform": jax.default_backend(), "device": str(jax.devices()[0]), "dtype": dtype,
              "jax_version": jax.__version__, "python": platform.python_version(), "quick": args.quick,
              "checks": records}
    _write_json_atomic(run_dir / "results.json", result)
    if args.json:
        _write_json_atomic(Path(args.json), result)
    print(_table(records))
    failed = [r for r in records if not r["passed"]]
    for r in failed:
        print(f"\nFAILED {r['name']}: {r['detail']}")
    print(f"\n{len(records) - len(failed)}/{len(records)} checks passed; results in {run_dir / 'results.json'}")
    if args.verbose:
        for r in records:
            print(f"\n[{r['name']}] {r['detail']}")
    return 0 if not failed else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sam-theory", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify", help="run the theorem checks and write runs/<timestamp>/results.json")
    v.add_argument("--quick", action="store_true", help="smaller sizes, for a laptop CPU")
    v.add_argument("--only", metavar="REGEX", help="run only the checks whose name matches REGEX")
    v.add_argument("--json", metavar="PATH", help="also write the results JSON to PATH")
    v.add_argument("--out", metavar="DIR", default="runs", help="parent folder of the run folder (default runs)")
    v.add_argument("--seed", type=int, default=0, help="base seed of every check (default 0)")
    v.add_argument("-v", "--verbose", action="store_true", help="print every check's detail string")
    v.add_argument("--list", action="store_true", help="list the registered checks and exit")
    v.set_defaults(func=verify)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "verify" and args.list:
        from . import checks
        for c in checks.select(args.only):
            print(f"{c.name:50s} [{c.tag}] THEORY.md {c.section}")
        return 0
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
