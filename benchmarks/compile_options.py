"""`sam_theory.compiler.COMPILER_OPTIONS` (XLA CPU's legacy fusion emitters) against XLA's defaults.

Run: `python benchmarks/compile_options.py [--rounds 3] [--verify]`. Each workload runs in a fresh process per
setting (``SAM_THEORY_XLA_OPTIONS=default`` for XLA's defaults), the two settings interleaved round by round so
that both see the same machine load; the table gives the best round of each and the ratio defaults / ours.
Workloads:
- readme: the README's curvature block as written (extracted like `tests/test_readme.py`), process wall and CPU;
- top_eigenvalues: 5 pairs, 40 Lanczos steps, on a GELU two-layer net with p = 10,500 (first call = compile + run;
  second call = run);
- train: SAM, 2000 steps, batch 32, two-layer GELU net n = 256, width 256 (p = 5,632);
- hessian_moments: linear regression n = 20, p = 400, b = 4, matrix-free (batch_moments.py's section 2);
- verify (with --verify): `sam-theory verify --quick --no-cache`, wall.
The printed values of every workload are compared between the settings (round-off only).
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


def run(code: str, default: bool, argv=None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("SAM_THEORY_XLA_OPTIONS", None)
    if default:
        env["SAM_THEORY_XLA_OPTIONS"] = "default"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    cmd = argv or [sys.executable, "-c", code]
    out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode not in (0, 1) or (argv is None and out.returncode):
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
        rounds = 1 if name == "verify" else args.rounds
        for r in range(rounds):
            for default in (True, False):
                res = run(code, default, cmd)
                prev = best.setdefault((name, default), res)
                for k in ("wall", "cpu", "first", "warm"):
                    if k in res:
                        prev[k] = min(prev[k], res[k])
                prev["value"] = res["value"]
            print(f"{name} round {r + 1}: defaults {best[(name, True)]} ours {best[(name, False)]}", file=sys.stderr)
    print("| workload | metric | XLA defaults | sam_theory options | defaults / ours | value (defaults; ours) |")
    print("|---|---|---|---|---|---|")
    for name in jobs:
        d, o = best[(name, True)], best[(name, False)]
        for k in ("wall", "cpu", "first", "warm"):
            if k in d:
                print(f"| {name} | {k} [s] | {d[k]:.2f} | {o[k]:.2f} | {d[k] / o[k]:.2f} | "
                      f"{d['value']}; {o['value']} |")


if __name__ == "__main__":
    main()
