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


def test_check_figure_kind_runs_its_check(tmp_path, capsys):
    """`plot two-cycle` runs eos.two_cycle (quick) and renders its registered figure."""
    out = tmp_path / "cycle.png"
    assert cli.main(["plot", "two-cycle", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = capsys.readouterr().out
    assert "eos.two_cycle" in text and "PASS" in text


def test_every_check_figure_kind_names_a_check_with_a_figure():
    from sam_theory import checks
    cli.build_parser()
    kinds = cli.check_plot_kinds()
    assert {"two-cycle", "sam-edge", "diag-net", "m-sharpness", "phase-diagram", "escape", "moments-width"} <= set(kinds)
    for kind, name in kinds.items():
        check = checks.REGISTRY[name]
        assert check.figure is not None, kind
        assert kind in cli.PLOT_KINDS


def test_figures_are_bound_by_reference_not_by_name():
    """Checks bind their figure in `register`; the plots package has no name registry of check figures."""
    from sam_theory import checks, plots
    bound = {n for n, c in checks.REGISTRY.items() if c.figure is not None}
    assert {"eos.two_cycle", "eos.sam_edge", "diag_net.one_sam_beats_gd", "curvature.trace_estimators",
            "lightsam.no_divergence_grid", "msharpness.drift_identity", "msharpness.smaller_m_flatter"} <= bound
    assert not hasattr(plots, "FIGURES") and not hasattr(plots, "figure_for")
