"""`sam-theory plot …`: the convergence and rate figures, bad input, and the kind registry."""
import pytest

from sam_theory import cli


@pytest.mark.parametrize("kind", ["convergence", "rate"])
def test_plot_writes_png(tmp_path, capsys, kind):
    out = tmp_path / f"{kind}.png"
    rc = cli.main(["plot", kind, "--p", "30,60", "--n", "10", "--steps", "30", "--seeds", "3", "--out", str(out)])
    assert rc == 0 and out.exists() and out.stat().st_size > 1000
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "p=30:" in capsys.readouterr().out


def test_bad_p_is_a_clean_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["plot", "convergence", "--p", "40,abc", "--out", str(tmp_path / "x.png")])
    assert exc.value.code == 2 and "--p" in capsys.readouterr().err
    rc = cli.main(["plot", "convergence", "--p", "5", "--n", "10", "--out", str(tmp_path / "y.png")])
    assert rc == 2 and "p must exceed n" in capsys.readouterr().err and not (tmp_path / "y.png").exists()


def test_plot_kinds_are_extensible(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setitem(cli.PLOT_KINDS, "dummy", cli.PlotKind(
        lambda args: seen.setdefault("value", args.value) and 0,
        lambda parser: parser.add_argument("--value", type=int, default=1), "test kind"))
    assert cli.main(["plot", "dummy", "--value", "7", "--out", str(tmp_path / "d.png")]) == 0
    assert seen == {"value": 7}
