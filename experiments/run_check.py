"""Run one or more registered checks at full (non-quick) size and write their figures and JSON.

    python experiments/run_check.py theorem_b.bound.linear_regression --out experiments/out

This is the long-run counterpart of `sam-theory verify --quick`: same checks, larger seeds and steps.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from sam_theory import checks


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="+", help="check names or regexes")
    ap.add_argument("--out", default="experiments/out")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ctx = checks.Context(quick=False, seed=args.seed, out_dir=out)
    for pattern in args.names:
        for check in checks.select(pattern):
            record, data = checks.run_check(check, ctx)
            fig = checks.render_figure(check, data, out / f"{check.name}.png")
            (out / f"{check.name}.json").write_text(json.dumps(record, indent=2))
            print(f"{check.name}: {'PASS' if record['passed'] else 'FAIL'} measured={record['measured']} "
                  f"bound={record['bound']} ({record['seconds']} s){'; figure ' + str(fig) if fig else ''}")
            print("  " + record["detail"])


if __name__ == "__main__":
    main()
