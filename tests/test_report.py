"""The HTML reports (sam_theory.report): content checks without a browser, then the page in headless Chromium:
no console error, every check a row, every image loaded, nothing requested from the network. The screenshots are
kept under runs/artifacts/ (or $SAM_THEORY_ARTIFACTS) for a person to look at."""
import json
import os
import re
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sam_theory import cli, report  # noqa: E402

from tests.browser import Browser, chromium  # noqa: E402

ARTIFACTS = Path(os.environ.get("SAM_THEORY_ARTIFACTS", Path(__file__).parent.parent / "runs" / "artifacts"))

THEORY = """# THEORY.md
## 1. Notation
one
## 3. Problems
intro
1. **Linear regression** rows a_i
2. **Two-layer network** width m
## 4. Curvature
four
### 4.1 Batch moments
moments text
## 5. Theorem A
five
"""


def _png(path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [1, 0])
    fig.savefig(path)
    plt.close(fig)
    return path


def _run_dir(tmp_path: Path) -> Path:
    """A synthetic run folder: one passing check with a figure, one failing, one that raised; mutants beside it."""
    run = tmp_path / "run"
    run.mkdir()
    _png(run / "a.ok.png")
    crit = {"name": "rel_err", "value": 3e-16, "bound": 1e-10, "passed": True, "how": "value ≤ bound"}
    checks = [
        {"name": "a.ok", "tag": "exact", "section": "§3.1, §4", "passed": True, "measured": 3e-16, "bound": 1e-10,
         "criteria": [crit], "facts": {"n": 20}, "detail": "PASS rel_err", "seconds": 0.1,
         "figure": str(run / "a.ok.png")},
        {"name": "b.fails", "tag": "trend", "section": "§5 (iv)", "passed": False, "measured": -1.5, "bound": 2.0,
         "criteria": [{**crit, "name": "z", "value": -1.5, "bound": 2.0, "passed": False, "how": "z > bound"}],
         "facts": {}, "detail": "FAIL z <script>alert(1)</script>", "seconds": 1.0},
        {"name": "c.raised", "tag": "bound", "section": "§4.1", "passed": False, "measured": None, "bound": None,
         "criteria": [], "facts": {}, "detail": "error:\nTraceback", "seconds": 0.0},
    ]
    (run / "results.json").write_text(json.dumps({"platform": "cpu", "device": "cpu:0", "dtype": "float64",
                                                  "jax_version": "0.10.2", "python": "3.11", "quick": True,
                                                  "seed": 3, "checks": checks}))
    (run / "mutants.json").write_text(json.dumps({"mutants": [
        {"check": "a.ok", "mutant": "drop_term", "killed": True, "detail": "FAIL rel_err"},
        {"check": "a.ok", "mutant": "flip_sign", "killed": False, "detail": "every criterion still passes"}]}))
    return run


def test_theory_excerpt_picks_sections():
    assert report.theory_excerpt(THEORY, "§1").startswith("## 1. Notation")
    ex = report.theory_excerpt(THEORY, "§3.1, §4")
    assert "Linear regression" in ex and "Two-layer" not in ex and "four" in ex and "moments text" in ex
    assert report.theory_excerpt(THEORY, "§4.1").startswith("### 4.1") and "four" not in \
        report.theory_excerpt(THEORY, "§4.1")
    assert "five" in report.theory_excerpt(THEORY, "§5 (iv)") and "Notation" not in \
        report.theory_excerpt(THEORY, "§5 (iv)")
    assert report.theory_excerpt(THEORY, "§9") == ""


def test_verification_report_content(tmp_path):
    run = _run_dir(tmp_path)
    theory = tmp_path / "THEORY.md"
    theory.write_text(THEORY)
    html = report.verification_report(run, theory=theory).read_text()
    rows = re.findall(r'<tr class="check-row[^"]*" data-check="([^"]+)"', html)
    assert rows == ["a.ok", "b.fails", "c.raised"]
    assert "1/3 checks passed" in html and "2 failed" in html
    assert "mutants: 1/2 killed" in html and "flip_sign" in html
    assert '<span class="fail">SURVIVED</span>' in html and '<span class="pass">killed</span>' in html
    assert html.count("data:image/png;base64,") == 1
    assert "<script>alert" not in html  # detail text is escaped
    assert "Linear regression" in html and "moments text" in html  # THEORY.md excerpts
    assert "3e-16" in html and "z &gt; bound" in html
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing from the network


def test_verification_report_bad_input(tmp_path):
    with pytest.raises(ValueError, match="run_dir"):
        report.verification_report(tmp_path)
    run = _run_dir(tmp_path)
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(ValueError, match="mutants"):
        report.verification_report(run, mutants=tmp_path / "other.json")


def _report_md(tmp_path: Path) -> Path:
    folder = tmp_path / "exp"
    (folder / "figs").mkdir(parents=True)
    _png(folder / "figs" / "gap.png")
    md = folder / "REPORT.md"
    md.write_text("# Experiments\n\n| claim | gap | verdict |\n|---|---|---|\n| 10.1 | 0.05 ± 0.01 | holds |\n\n"
                  "![gap against width](figs/gap.png)\n\n<img src=\"figs/gap.png\" width=\"200\">\n")
    return md


def test_markdown_report_to_html(tmp_path):
    md = _report_md(tmp_path)
    out = report.markdown_report_to_html(md)
    html = out.read_text()
    assert out == md.parent / "report.html"
    assert "<table>" in html and "<title>Experiments</title>" in html
    assert html.count("data:image/png;base64,") == 2 and "figs/gap.png" not in html
    with pytest.raises(ValueError, match="md_path"):
        report.markdown_report_to_html(tmp_path / "missing.md")


def test_report_command(tmp_path, capsys):
    run = _run_dir(tmp_path)
    assert cli.main(["report", str(run), "--out", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").is_file()
    md = _report_md(tmp_path)
    assert cli.main(["report", str(md.parent)]) == 0 and (md.parent / "report.html").is_file()
    assert cli.main(["report", str(tmp_path / "nothing")]) == 2


# --- in a real browser ----------------------------------------------------------------------------------------------
needs_chromium = pytest.mark.skipif(
    chromium() is None, reason="no chromium on PATH: `make test` installs it (apt-get install chromium) when run "
                               "as root; elsewhere install it or set $CHROMIUM")


def _check_page(b: Browser, path: Path, shot: str) -> dict:
    b.load(path.resolve().as_uri())
    info = b.evaluate("""(() => ({
        rows: Array.from(document.querySelectorAll('tr.check-row')).map(r => r.dataset.check),
        images: Array.from(document.images).map(i => ({ok: i.complete, w: i.naturalWidth})),
        title: document.title}))()""")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    b.screenshot(ARTIFACTS / shot)
    print(f"screenshot: {ARTIFACTS / shot}")
    assert b.errors() == []
    assert all(u.startswith(("file:", "data:")) for u in b.requested_urls()), b.requested_urls()
    assert info["images"] and all(i["ok"] and i["w"] > 0 for i in info["images"]), info["images"]
    return info


@needs_chromium
def test_verify_html_in_browser(tmp_path):
    """`verify --quick --html` on three fast checks (one with a figure) plus a mutants JSON, opened in Chromium."""
    out = tmp_path / "runs"
    code = cli.main(["verify", "--quick", "--html", "--out", str(out),
                     "--only", r"^(eos\.two_cycle|sam\.no_nan_at_stationary_point|problems\.diag_net_hessian)"])
    assert code == 0
    (run,) = [d for d in out.iterdir() if not d.name.startswith(".")]
    results = json.loads((run / "results.json").read_text())
    names = [r["name"] for r in results["checks"]]
    (run / "mutants.json").write_text(json.dumps({"mutants": [
        {"check": names[0], "mutant": "m", "killed": True, "detail": "FAIL"}]}))
    report.verification_report(run)
    with Browser() as b:
        info = _check_page(b, run / "report.html", "verify-report.png")
        assert info["rows"] == names
        assert len(info["images"]) == sum(1 for r in results["checks"] if r.get("figure"))
        box = b.evaluate("""(() => { const s = document.querySelector('section.check img').closest('section')
            .getBoundingClientRect(); return {x: s.x + scrollX, y: s.y + scrollY, width: s.width,
            height: s.height}; })()""")
        b.screenshot(ARTIFACTS / "verify-report-check.png", clip=box)
        assert b.evaluate("document.querySelectorAll('table.mutants tr').length") == 2


@needs_chromium
def test_synthetic_and_markdown_reports_in_browser(tmp_path):
    run = _run_dir(tmp_path)
    report.verification_report(run)
    md_html = report.markdown_report_to_html(_report_md(tmp_path))
    with Browser() as b:
        assert _check_page(b, run / "report.html", "synthetic-report.png")["rows"] == ["a.ok", "b.fails",
                                                                                     "c.raised"]
        info = _check_page(b, md_html, "experiments-report.png")
        assert info["title"] == "Experiments" and len(info["images"]) == 2
