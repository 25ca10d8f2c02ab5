"""`escape_test` as one `run_many` call (issue 16) reproduces the outputs of its former hand-written segment loop.

tests/data/escape_main.npz holds the `EscapeResult` fields computed by main's `escape_test` (an outer `lax.scan` of
`train.run` segments, one key per segment) before the change, for the cases below (the theorem_a escape check's
problem and keys, the stability test's case, a batch-2-with-replacement SAM case and a diverging run).
"""
from pathlib import Path

import jax
import numpy as np

from sam_theory.curvature import BatchCurvature
from sam_theory.optim import sam, usam
from sam_theory.stability import critical_learning_rate, escape_test
from sam_theory.testing import interpolating_diagonal_net

GOLDEN = Path(__file__).parent / "data" / "escape_main.npz"


def _cases():
    prob, x_star = interpolating_diagonal_net(1000)
    crit = critical_learning_rate(BatchCurvature.from_problem(prob, x_star, 1), 0.05).eta
    for factor in (0.7, 1.4):
        for s in range(2):
            yield f"check_f{factor}_s{s}", prob, x_star, usam(factor * crit, 0.05), 1e-6, 1000, 1100 + s, dict(batch_size=1)
    prob0, xs0 = interpolating_diagonal_net(0)
    yield "test_case", prob0, xs0, usam(0.01, 0.01), 1e-6, 1000, 0, dict(log_every=10)
    yield "b2_replace", prob0, xs0, sam(0.05, 0.02), 1e-3, 200, 5, dict(batch_size=2, replace=True, log_every=20)
    yield "diverge", prob0, xs0, usam(3.0, 0.05), 1e-2, 300, 7, dict(batch_size=1, log_every=25)


def test_escape_matches_main_segment_loop(x64):
    golden = np.load(GOLDEN)
    seen = set()
    for name, prob, x_star, opt, eps, steps, seed, kw in _cases():
        res = escape_test(prob, x_star, opt, eps, steps, jax.random.key(seed), **kw)
        g = {f: golden[f"{name}/{f}"] for f in ("escaped", "t", "distances", "losses", "max_distance",
                                                  "final_distance", "diverged")}
        assert bool(res.escaped) == bool(g["escaped"]) and bool(res.diverged) == bool(g["diverged"]), name
        np.testing.assert_array_equal(res.t, g["t"])
        scale = max(1.0, float(np.nanmax(np.abs(g["distances"]))))  # the diverging run holds 1e80 after it
        np.testing.assert_allclose(res.distances, g["distances"], rtol=1e-12, atol=1e-12, err_msg=name)
        assert abs(res.max_distance - float(g["max_distance"])) <= 1e-12 * scale, name
        assert abs(res.final_distance - float(g["final_distance"])) <= 1e-12 * scale, name
        np.testing.assert_allclose(res.losses, g["losses"], rtol=1e-12, atol=1e-15, equal_nan=True, err_msg=name)
        seen.add(name)
    assert {"diverge", "check_f1.4_s0", "check_f0.7_s0"} <= seen
    assert bool(golden["diverge/diverged"]) and bool(golden["check_f1.4_s0/escaped"])  # the cases cover both outcomes
