"""`sam-theory` refuses bad arguments before running anything (argparse error, exit 2, a message naming the flag),
writes its JSON atomically without leaving ``*.tmp`` files, and never shares a run folder between runs."""
import json
import os
from pathlib import Path

import pytest

from sam_theory import checks, cli


@pytest.fixture
def spy_check(monkeypatch):
    """A registered check that records whether it ran (it must not, when the arguments are bad)."""
    ran = []

    @checks.register("test.spy", "exact", "§0")
    def _spy(ctx):
        ran.append(ctx.out_dir)
        return checks.registry.CheckResult([checks.registry.at_most("x", 0.0, 0.0, "zero")], {})
    yield ran
    checks.REGISTRY.pop("test.spy")


def _exit_code(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    return exc.value.code, capsys.readouterr().err


def test_bad_only_regex_is_an_argparse_error(tmp_path, capsys, spy_check):
    code, err = _exit_code(["verify", "--only", "[", "--out", str(tmp_path)], capsys)
    assert code == 2 and "--only" in err and "regular expression" in err and not spy_check


@pytest.mark.parametrize("where", ["directory", "missing_parent_is_file", "proc"])
def test_unwritable_json_is_refused_before_running(tmp_path, capsys, spy_check, where):
    afile = tmp_path / "afile"
    afile.write_text("x")
    target = {"directory": tmp_path, "missing_parent_is_file": afile / "r.json",
              "proc": Path("/proc/sam_theory_results.json")}[where]
    code, err = _exit_code(["verify", "--only", r"^test\.spy$", "--json", str(target), "--out",
                            str(tmp_path / "runs")], capsys)
    assert code == 2 and "--json" in err and not spy_check
    assert not (tmp_path / "runs").exists()


def test_out_onto_a_file_is_refused(tmp_path, capsys, spy_check):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out in (afile, afile / "sub"):
        code, err = _exit_code(["verify", "--only", r"^test\.spy$", "--out", str(out)], capsys)
        assert code == 2 and "--out" in err and "not a directory" in err and not spy_check


@pytest.mark.parametrize("command", [["verify", "--only", r"^test\.spy$"], ["plot", "convergence"]])
def test_negative_seed_is_refused(tmp_path, capsys, spy_check, command):
    code, err = _exit_code(command + ["--seed", "-1", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "--seed" in err and not spy_check


def test_plot_out_under_a_file_exits_2(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, err = _exit_code(["plot", "convergence", "--out", str(afile / "x.png")], capsys)
    assert code == 2 and "--out" in err and "not a directory" in err


def test_run_folders_are_unique_and_no_tmp_is_left(tmp_path, spy_check):
    for _ in range(3):  # well within one second
        assert cli.main(["verify", "--only", r"^test\.spy$", "--out", str(tmp_path), "--json",
                         str(tmp_path / "r.json")]) == 0
    runs = [p for p in tmp_path.iterdir() if p.is_dir() and not p.name.startswith(".")]  # not .jax_cache
    assert len(runs) == 3 and len(set(spy_check)) == 3
    assert all((p / "results.json").exists() for p in runs)
    assert json.loads((tmp_path / "r.json").read_text())["checks"][0]["name"] == "test.spy"
    assert not list(tmp_path.rglob("*.tmp"))


def test_atomic_write_cleans_up_on_failure(tmp_path, monkeypatch):
    def boom(*args):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        cli._write_json_atomic(tmp_path / "r.json", {"a": 1})
    assert not list(tmp_path.iterdir())
