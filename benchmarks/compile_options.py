"""XLA CPU's legacy fusion emitters (`sam_theory.compiler`) against XLA's defaults, in three settings.

Run: `python benchmarks/compile_options.py [--rounds 3] [--verify]`. Each workload runs in a fresh process per
setting, the settings interleaved round by round so that all see the same machine load; the table gives the best
round of each and the ratios to XLA's defaults.
Settings:
- defaults: ``SAM_THEORY_XLA_OPTIONS=default`` (XLA's defaults everywhere);
- scoped: the library as shipped, `jit_fast_compile` programs (curvature engine, inits, draws) with the legacy
  emitters, everything else XLA's defaults (``XLA_FLAGS=--xla_cpu_use_fusion_emitters=true`` pins the rest, which
  also stops the CLI from switching the process);
- process: ``XLA_FLAGS=--xla_cpu_use_fusion_emitters=false``, every program of the process (what
  `fast_compile_process` does for `sam-theory verify` and `plot`).
Workloads:
- readme: the README's curvature block as written (extracted like `tests/test_readme.py`), process wall and CPU;
- top_eigenvalues: 5 pairs, 40 Lanczos steps, on a GELU two-layer net with p = 10,500 (first call = compile + run;
  second call = run);
- train: SAM, 2000 steps, batch 32, two-layer GELU net n = 256, width 256 (p = 5,632);
- hessian_moments: linear regression n = 20, p = 400, b = 4, matrix-free (batch_moments.py's section 2);
- verify (with --verify): `sam-theory verify --quick --no-cache`, wall.
The printed values of every workload are compared between the settings (equal, or round-off).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WORKLOADS = {
    "top_eigenvalues": """
import jax
from sam_theory import float64
from sam_theory.problems import two_layer_net
from sam_theory.curvature import hvp, top_eigenvalues
with float64():
    prob = two_layer_net(n=64, d=20, width=500, activation="gelu", n_test=0, seed=0)
    op = hvp(prob.loss, prob.init(jax.random.key(0)))
    t0 = time.perf_counter(); v = top_eigenvalues(op, 5, num_iters=40).values; v.block_until_ready()
    t1 = time.perf_counter(); top_eigenvalues(op, 5, num_iters=40, key=jax.random.key(1)).values.block_until_ready()
    emit(first=t1 - t0, warm=time.perf_counter() - t1, value=float(v[0]))
""",
    "train": """
import jax
from sam_theory import train
from sam_theory.problems import two_layer_net
from sam_theory.optim import sam
prob = two_layer_net(n=256, d=20, width=256, activation="gelu", n_test=0, seed=0)
run = lambda s: train(prob, sam(0.05, 0.05), steps=2000, batch_size=32, key=jax.random.key(s), log_every=100)
t0 = time.perf_counter(); h = jax.block_until_ready(run(0)); t1 = time.perf_counter(); jax.block_until_ready(run(1))
emit(first=t1 - t0, warm=time.perf_counter() - t1, value=float(h.losses[-1]))
""",
    "hessian_moments": """
import jax, jax.numpy as jnp
from sam_theory import float64
from sam_theory.problems import linear_regression
from sam_theory.curvature import BatchCurvature, hessian_moments
with float64():
    prob = linear_regression(20, 400, seed=0, n_test=0)
    w = jnp.zeros(400)
    mom = lambda: hessian_moments(BatchCurvature.from_problem(prob, w, batch_size=4, method="matrix_free"))
    t0 = time.perf_counter(); m = mom(); jax.block_until_ready(m.a); t1 = time.perf_counter()
    jax.block_until_ready(mom().a)
    emit(first=t1 - t0, warm=time.perf_counter() - t1, value=float(m.s[4]))
""",
}

PRELUDE = """
import json, time
def emit(**kw):
    print("RESULT " + json.dumps(kw))
"""


def readme_block() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Curvature (`sam_theory.curvature`"):]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


SETTINGS = {
    "defaults": {"SAM_THEORY_XLA_OPTIONS": "default"},
    "scoped": {"XLA_FLAGS": "--xla_cpu_use_fusion_emitters=true"},
    "process": {"XLA_FLAGS": "--xla_cpu_use_fusion_emitters=false"},
}


def run(code: str, setting: str, argv=None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("SAM_THEORY_XLA_OPTIONS", "XLA_FLAGS")}
    env.update(PYTHONPATH=str(ROOT), **SETTINGS[setting])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(argv or [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode and not (argv and out.returncode == 1):  # verify exits 1 on declared negatives
        raise RuntimeError(out.stderr[-2000:])
    found = re.findall(r"^RESULT (.*)$", out.stdout, re.M)
    res = json.loads(found[-1]) if found else {"value": out.stdout.strip().splitlines()[-1]}
    res.update(wall=wall, cpu=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    return res


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--verify", action="store_true", help="also time `sam-theory verify --quick --no-cache`")
    args = ap.parse_args(argv)
    jobs = {"readme": (readme_block(), None), **{k: (PRELUDE + v, None) for k, v in WORKLOADS.items()}}
    if args.verify:
        jobs["verify"] = ("", [sys.executable, "-m", "sam_theory.cli", "verify", "--quick", "--no-cache"])
    best = {}
    for name, (code, cmd) in jobs.items():
        for r in range(1 if name == "verify" else args.rounds):
            for setting in SETTINGS:
                res = run(code, setting, cmd)
                prev = best.setdefault((name, setting), res)
                for k in ("wall", "cpu", "first", "warm"):
                    if k in res:
                        prev[k] = min(prev[k], res[k])
                prev["value"] = res["value"]
            print(f"{name} round {r + 1}: " + "; ".join(f"{s} {best[(name, s)]}" for s in SETTINGS), file=sys.stderr)
    print("| workload | metric | defaults | scoped | process | defaults / scoped | defaults / process |")
    print("|---|---|---|---|---|---|---|")
    for name in jobs:
        d, sc, pr = (best[(name, s)] for s in SETTINGS)
        for k in ("wall", "cpu", "first", "warm"):
            if k in d:
                print(f"| {name} | {k} [s] | {d[k]:.2f} | {sc[k]:.2f} | {pr[k]:.2f} | {d[k] / sc[k]:.2f} | "
                      f"{d[k] / pr[k]:.2f} |")
    print("\nPrinted values (defaults; scoped; process):")
    for name in jobs:
        print(f"- {name}: " + "; ".join(str(best[(name, s)]["value"]) for s in SETTINGS))


if __name__ == "__main__":
    main()
