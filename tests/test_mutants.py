"""Mutation testing: every check declares mutants, `run_mutant` kills them, and `verify --mutants` reports them."""
import json

import pytest

from sam_theory import checks
from sam_theory.checks import Context, CheckResult, at_most, run_check, run_mutant
from sam_theory.cli import main

# Cheap checks (a few seconds each at quick size) whose every mutant is run here; the rest: `make mutants`.
CHEAP = ["eos.two_cycle", "problems.diag_net_hessian_closed_form", "diag_net.conserved_quantity",
         "hessian.closed_form.linear_regression", "sam.no_nan_at_stationary_point"]


def test_every_check_declares_a_mutant():
    missing = [n for n, c in checks.REGISTRY.items() if not c.mutants]
    assert not missing, f"checks without mutants: {missing}"
    for c in checks.REGISTRY.values():
        assert len(set(c.mutants)) == len(c.mutants), c.name


@pytest.mark.parametrize("name", CHEAP)
def test_cheap_check_passes_and_kills_every_mutant(name):
    check = checks.REGISTRY[name]
    record, _ = run_check(check, Context(quick=True, seed=0))
    assert record["passed"], record["detail"]
    assert record["criteria"] and all(set(c) == {"name", "value", "bound", "passed", "how"} for c in record["criteria"])
    for mutant in check.mutants:
        row = run_mutant(check, mutant, Context(quick=True, seed=0))
        assert row["killed"], (mutant, row["detail"])


@pytest.fixture
def toy_checks():
    """Three toy checks: one kills its mutant, one applies none of its mutants, one declares none."""
    @checks.register("test.toy_kills", "exact", "§0", mutants=("off",))
    def _kills(ctx):
        return CheckResult([at_most("x", 1.0 if ctx.mutated("off") else 0.0, 0.0)])

    @checks.register("test.toy_survives", "exact", "§0", mutants=("never_applied",))
    def _survives(ctx):
        return CheckResult([at_most("x", 0.0, 0.0)])

    @checks.register("test.toy_no_mutant", "exact", "§0")
    def _none(ctx):
        return CheckResult([at_most("x", 0.0, 0.0)])
    yield
    for name in ("test.toy_kills", "test.toy_survives", "test.toy_no_mutant"):
        checks.REGISTRY.pop(name)


def test_run_mutant_kills_only_applied_faults(toy_checks):
    assert run_mutant(checks.REGISTRY["test.toy_kills"], "off", Context())["killed"]
    row = run_mutant(checks.REGISTRY["test.toy_survives"], "never_applied", Context())
    assert not row["killed"] and "never applied" in row["detail"]
    with pytest.raises(ValueError, match="not declared"):
        Context(declared_mutants=("a",)).mutated("b")


def test_verify_mutants_json_and_exit_code(tmp_path, capsys, toy_checks):
    out = tmp_path / "m.json"
    assert main(["verify", "--mutants", "--quick", "--only", r"^test\.toy_kills$", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert set(res) >= {"mutants"} and res["mutants"] == [
        {"check": "test.toy_kills", "mutant": "off", "killed": True, "detail": res["mutants"][0]["detail"]}]
    assert "FAIL x" in res["mutants"][0]["detail"] and "1/1 mutants killed" in capsys.readouterr().out
    assert main(["verify", "--mutants", "--only", r"^test\.toy_", "--json", str(out)]) == 1
    rows = {r["check"]: r for r in json.loads(out.read_text())["mutants"]}
    assert set(rows) == {"test.toy_kills", "test.toy_survives", "test.toy_no_mutant"}
    assert rows["test.toy_kills"]["killed"] and not rows["test.toy_survives"]["killed"]
    assert rows["test.toy_no_mutant"] == {"check": "test.toy_no_mutant", "mutant": None, "killed": False,
                                          "detail": "the check declares no mutant"}
    text = capsys.readouterr().out
    assert "1/3 mutants killed" in text and "SURVIVED test.toy_survives:never_applied" in text


def test_verify_json_lists_criteria(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["verify", "--quick", "--only", r"^eos\.two_cycle$", "--json", str(out), "--out", str(tmp_path),
                 "-v"]) == 0
    (rec,) = json.loads(out.read_text())["checks"]
    assert rec["criteria"] and rec["measured"] == rec["criteria"][0]["value"] and rec["figure"].endswith(".png")
    assert "PASS max_t" in capsys.readouterr().out  # -v prints the criteria lines
