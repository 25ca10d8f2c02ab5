import json

import jax.numpy as jnp

from sam_theory import checks
from sam_theory.cli import main

FOUNDATION = ["hessian.closed_form.linear_regression", "theorem_b.bound.linear_regression",
              "theorem_b.rate_improves_with_p", "sam.no_nan_at_stationary_point"]


def test_verify_foundation_checks_pass(tmp_path, capsys):
    out = tmp_path / "res.json"
    pattern = "|".join(n.replace(".", r"\.") for n in FOUNDATION)
    rc = main(["verify", "--quick", "--only", f"^({pattern})$", "--json", str(out), "--out", str(tmp_path / "runs")])
    text = capsys.readouterr().out
    res = json.loads(out.read_text())
    assert set(res) >= {"platform", "dtype", "jax_version", "checks"}
    assert res["dtype"] == "float64"
    names = {c["name"]: c for c in res["checks"]}
    assert set(names) == set(FOUNDATION)
    for c in res["checks"]:
        assert set(c) >= {"name", "tag", "passed", "measured", "bound", "detail", "seconds"}
        assert c["passed"], c["detail"]
    assert rc == 0 and "4/4 checks passed" in text
    run_dirs = [d for d in (tmp_path / "runs").iterdir() if not d.name.startswith(".")]  # .jax_cache: compile cache
    assert (tmp_path / "runs" / ".jax_cache").is_dir()
    assert len(run_dirs) == 1 and (run_dirs[0] / "results.json").exists()
    assert (run_dirs[0] / "theorem_b.bound.linear_regression.png").exists()
    assert jnp.zeros(()).dtype == jnp.float32  # float64 did not leak out of verify


def test_failing_check_fails_verify(tmp_path, monkeypatch):
    @checks.register("test.always_fails", "exact", "§0")
    def _fails(ctx):
        raise RuntimeError("boom")
    try:
        rc = main(["verify", "--only", "^test\\.always_fails$", "--json", str(tmp_path / "r.json"),
                   "--out", str(tmp_path)])
        res = json.loads((tmp_path / "r.json").read_text())
        assert rc == 1 and not res["checks"][0]["passed"] and "boom" in res["checks"][0]["detail"]
    finally:
        checks.REGISTRY.pop("test.always_fails")


def test_unknown_filter_is_an_error(tmp_path):
    assert main(["verify", "--only", "^nothing-matches$", "--out", str(tmp_path)]) == 2


def test_registry_tags_are_valid():
    for c in checks.REGISTRY.values():
        assert c.tag in checks.registry.TAGS and c.section.startswith("§")
