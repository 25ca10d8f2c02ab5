"""Self-contained HTML reports: one ``report.html`` a person can open offline or send to a co-author.

- `verification_report(run_dir)` renders a ``sam-theory verify`` run folder (``results.json``, the figures beside
  it, and a mutants JSON if ``verify --mutants`` ran): environment, pass/fail summary by tag, then per check its
  criteria (value, bound, verdict), its THEORY.md section, its figure, its detail (collapsible) and its mutants.
- `markdown_report_to_html(md_path)` renders the experiment runner's ``REPORT.md`` to ``report.html`` beside it.

Nothing is fetched at view time: the CSS is inline and every image is embedded as a base64 ``data:`` URI.
THEORY.md is looked up (`find_theory`) and the excerpt of each check's section is embedded; without it the report
still names the section.
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import mimetypes
import os
import re
from pathlib import Path


__all__ = ["verification_report", "markdown_report_to_html", "render_markdown", "find_theory", "theory_excerpt",
           "load_mutants"]

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0 auto; max-width: 1100px;
       padding: 1.5em; color: #1d2330; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { border-bottom: 1px solid #d0d4dc; padding-bottom: .2em; }
h3 { margin-bottom: .3em; } code, pre { font-family: Menlo, Consolas, monospace; font-size: .88em; }
pre { background: #f4f5f8; padding: .6em .8em; overflow-x: auto; white-space: pre-wrap; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: .92em; }
th, td { border: 1px solid #d0d4dc; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #eef0f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.pass { color: #0a6b2d; font-weight: 600; } .fail { color: #b00020; font-weight: 600; }
tr.fail-row { background: #fff0f1; }
.badge { display: inline-block; border-radius: 3px; padding: 0 .45em; font-size: .8em; background: #e4e7ee; }
section.check { border: 1px solid #d0d4dc; border-radius: 6px; padding: .3em 1em 1em; margin: 1.2em 0; }
section.check.failed { border-color: #b00020; }
img { max-width: 100%; height: auto; } figure { margin: .5em 0; }
details { margin: .4em 0; } summary { cursor: pointer; color: #2a4d9b; }
.muted { color: #5d6675; font-size: .9em; }
"""


# --- rendering helpers -------------------------------------------------------------------------------------------
def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _verdict(passed) -> str:
    return '<span class="pass">PASS</span>' if passed else '<span class="fail">FAIL</span>'


def _mutant_outcome(killed) -> str:
    """A killed mutant is the good outcome (the check failed under the fault); a surviving one is a defect."""
    return '<span class="pass">killed</span>' if killed else '<span class="fail">SURVIVED</span>'


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{CSS}</style></head>\n<body>\n{body}\n</body></html>\n")


def data_uri(path: Path) -> str:
    """``data:<mime>;base64,…`` of the file at ``path`` (the way every image enters a report)."""
    mime = mimetypes.guess_type(str(path))[0] or "application/octet-stream"
    return f"data:{mime};base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def render_markdown(text: str) -> str:
    """Markdown (tables, fenced code) to an HTML fragment."""
    import markdown as _markdown
    return _markdown.markdown(text, extensions=["tables", "fenced_code", "sane_lists"], output_format="html")


def _write_atomic(path: Path, text: str) -> Path:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


# --- THEORY.md -----------------------------------------------------------------------------------------------------
def find_theory(start: Path | None = None) -> Path | None:
    """THEORY.md: ``$SAM_THEORY_THEORY`` if set, else ``THEORY.md`` or ``shared/THEORY.md`` in ``start`` (default:
    the package's folder) or any folder above it. None if not found."""
    env = os.environ.get("SAM_THEORY_THEORY")
    if env:
        return Path(env) if Path(env).is_file() else None
    here = Path(start or Path(__file__).parent).resolve()
    for folder in (here, *here.parents):
        for cand in (folder / "THEORY.md", folder / "shared" / "THEORY.md"):
            if cand.is_file():
                return cand
    return None


def theory_excerpt(theory_text: str, section: str) -> str:
    """The markdown of THEORY.md's sections named in ``section`` ("§3.1, §4", "§5 (iv)", "§10.6").

    ``§N`` is the whole "## N." section; ``§N.M`` is the "### N.M" subsection if there is one, else item M of
    section N's numbered list, else the whole section N.
    """
    top = _split(theory_text, r"^## (\d+)\.")
    parts = []
    for num, sub in re.findall(r"§(\d+)(?:\.(\d+))?", section):
        body = top.get(num)
        if body is None:
            continue
        if sub:
            subs = _split(body, rf"^### {num}\.(\d+)\b")
            items = _split(body, r"^(\d+)\. ")
            body = subs.get(sub) or items.get(sub) or body
        if body not in parts:
            parts.append(body.strip())
    return "\n\n".join(parts)


def _split(text: str, heading: str) -> dict[str, str]:
    """Blocks of ``text`` that start at a line matching ``heading`` (group 1 is the key), up to the next such line
    or the next heading of a higher level."""
    lines = text.splitlines()
    level = None
    out, key, buf = {}, None, []
    rx = re.compile(heading)
    for line in lines:
        m = rx.match(line)
        stop = line.startswith("#") and level is not None and (len(line) - len(line.lstrip("#"))) <= level
        if m or stop:
            if key is not None:
                out.setdefault(key, "\n".join(buf))
            key, buf = (m.group(1), [line]) if m else (None, [])
            if m and line.startswith("#"):
                level = len(line) - len(line.lstrip("#"))
            continue
        if key is not None:
            buf.append(line)
    if key is not None:
        out.setdefault(key, "\n".join(buf))
    return out


# --- mutants ---------------------------------------------------------------------------------------------------------
def load_mutants(*candidates: Path) -> dict[str, list[dict]]:
    """Mutant records ``{"check", "mutant", "killed", "detail"}`` grouped by check, from the first of
    ``candidates`` (files or run folders; a folder is searched for JSON files) that holds a ``"mutants"`` list."""
    files: list[Path] = []
    for c in candidates:
        if c is None:
            continue
        c = Path(c)
        if c.is_dir():
            files += sorted(c.glob("mutants*.json")) + sorted(c.glob("*.json"))
        elif c.is_file():
            files.append(c)
    for f in files:
        try:
            obj = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        records = obj.get("mutants") if isinstance(obj, dict) else None
        if isinstance(records, list) and all(isinstance(r, dict) and "check" in r for r in records):
            grouped: dict[str, list[dict]] = {}
            for r in records:
                grouped.setdefault(r["check"], []).append(r)
            return grouped
    return {}


# --- the verification report --------------------------------------------------------------------------------------
_ENV_KEYS = (("platform", "platform"), ("device", "device"), ("dtype", "dtype"), ("jax_version", "JAX"),
             ("python", "Python"), ("seed", "seed"))


def _anchor(name: str) -> str:
    return "check-" + re.sub(r"[^A-Za-z0-9_-]", "-", name)


def _figure_path(record: dict, run_dir: Path) -> Path | None:
    fig = record.get("figure")
    candidates = [Path(fig), run_dir / Path(fig).name] if fig else []
    candidates.append(run_dir / f"{record['name']}.png")
    return next((p for p in candidates if p.is_file()), None)


def _environment(result: dict, source: Path) -> str:
    rows = [(label, result[key] if key in result else "not recorded") for key, label in _ENV_KEYS]
    rows.insert(5, ("mode", "quick" if result.get("quick") else "full"))
    known = {k for k, _ in _ENV_KEYS} | {"quick", "checks", "mutants"}
    rows += [(k, v) for k, v in result.items() if k not in known and not isinstance(v, (dict, list))]
    rows.append(("results", str(source)))
    return "<table>" + "".join(f"<tr><th>{_e(k)}</th><td>{_e(_fmt(v))}</td></tr>" for k, v in rows) + "</table>"


def _summary(checks: list[dict], mutants: dict[str, list[dict]]) -> str:
    tags: dict[str, list[int]] = {}
    for r in checks:
        t = tags.setdefault(r["tag"], [0, 0])
        t[0 if r["passed"] else 1] += 1
    n_fail = sum(v[1] for v in tags.values())
    head = (f'<p id="summary-line"><b>{len(checks) - n_fail}/{len(checks)} checks passed</b>'
            + (f', <span class="fail">{n_fail} failed</span>' if n_fail else "") + "</p>")
    by_tag = ("<table><tr><th>tag</th><th>passed</th><th>failed</th></tr>"
              + "".join(f'<tr><td>{_e(t)}</td><td class="num">{p}</td><td class="num">{f}</td></tr>'
                        for t, (p, f) in sorted(tags.items())) + "</table>")
    if mutants:
        recs = [m for ms in mutants.values() for m in ms]
        killed = sum(bool(m.get("killed")) for m in recs)
        head += f"<p>mutants: {killed}/{len(recs)} killed</p>"
    rows = []
    for r in checks:
        fig = "✓" if r.get("_figure") else ""
        rows.append(f'<tr class="check-row{"" if r["passed"] else " fail-row"}" data-check="{_e(r["name"])}">'
                    f'<td><a href="#{_anchor(r["name"])}">{_e(r["name"])}</a></td><td>{_e(r["tag"])}</td>'
                    f'<td>{_e(r.get("section", ""))}</td><td class="num">{_e(_fmt(r.get("measured")))}</td>'
                    f'<td class="num">{_e(_fmt(r.get("bound")))}</td><td>{_verdict(r["passed"])}</td>'
                    f'<td class="num">{_e(_fmt(r.get("seconds")))}</td><td>{fig}</td></tr>')
    table = ('<table id="checks"><thead><tr><th>check</th><th>tag</th><th>THEORY.md</th><th>measured</th>'
             "<th>bound</th><th>verdict</th><th>s</th><th>figure</th></tr></thead><tbody>"
             + "".join(rows) + "</tbody></table>")
    return head + by_tag + table


def _check_section(r: dict, theory_text: str | None, mutants: list[dict]) -> str:
    name = r["name"]
    out = [f'<section class="check{"" if r["passed"] else " failed"}" id="{_anchor(name)}">',
           f'<h3>{_e(name)} {_verdict(r["passed"])} <span class="badge">{_e(r["tag"])}</span> '
           f'<span class="badge">THEORY.md {_e(r.get("section", ""))}</span></h3>']
    crit = r.get("criteria") or []
    if crit:
        out.append("<table class=\"criteria\"><tr><th>criterion</th><th>value</th><th>bound</th><th>how</th>"
                   "<th>verdict</th></tr>" + "".join(
                       f'<tr><td>{_e(c["name"])}</td><td class="num">{_e(_fmt(c.get("value")))}</td>'
                       f'<td class="num">{_e(_fmt(c.get("bound")))}</td><td>{_e(c.get("how", ""))}</td>'
                       f'<td>{_verdict(c.get("passed"))}</td></tr>' for c in crit) + "</table>")
    else:
        out.append('<p class="muted">no criteria recorded (the check raised; see the detail)</p>')
    if r.get("_figure"):
        out.append(f'<figure><img class="check-figure" alt="figure of {_e(name)}" src="{r["_figure"]}">'
                   "</figure>")
    if theory_text:
        excerpt = theory_excerpt(theory_text, r.get("section", ""))
        if excerpt:
            out.append(f"<details class=\"theory\"><summary>THEORY.md {_e(r.get('section', ''))}</summary>"
                       f"{render_markdown(excerpt)}</details>")
    facts = {k: v for k, v in (r.get("facts") or {}).items() if k != "detail"}  # the detail is shown below
    if facts:
        out.append("<details class=\"facts\"><summary>facts (settings and side measurements)</summary><table>"
                   + "".join(f"<tr><th>{_e(k)}</th><td>{_e(_fmt(v))}</td></tr>" for k, v in facts.items())
                   + "</table></details>")
    out.append(f"<details class=\"detail\"{'' if r['passed'] else ' open'}><summary>detail</summary>"
               f"<pre>{_e(r.get('detail', ''))}</pre></details>")
    if mutants:
        out.append("<table class=\"mutants\"><tr><th>mutant</th><th>outcome</th><th>check under the fault</th></tr>" +
                   "".join(f'<tr><td>{_e(m.get("mutant", ""))}</td><td>{_mutant_outcome(m.get("killed"))}</td>'
                           f'<td>{_e(m.get("detail", ""))}</td></tr>' for m in mutants) + "</table>")
    out.append("</section>")
    return "\n".join(out)


def verification_report(run_dir, *, mutants=None, theory=None, out=None) -> Path:
    """Write ``report.html`` for a ``sam-theory verify`` run folder and return its path.

    Args:
      run_dir: the folder holding ``results.json`` and the check figures.
      mutants: a mutants JSON (``{"mutants": [{"check", "mutant", "killed", "detail"}]}``); default: the first
        such JSON found in ``run_dir``.
      theory: THEORY.md's path; default `find_theory`.
      out: the HTML path; default ``run_dir/report.html``.
    """
    run_dir = Path(run_dir)
    source = run_dir / "results.json"
    if not source.is_file():
        raise ValueError(f"run_dir {str(run_dir)!r} has no results.json")
    result = json.loads(source.read_text())
    if mutants is not None:
        grouped = load_mutants(Path(mutants))
        if not grouped:
            raise ValueError(f"mutants {str(mutants)!r} holds no \"mutants\" list of check records")
    else:
        grouped = load_mutants(run_dir)
    theory_path = Path(theory) if theory else find_theory()
    theory_text = theory_path.read_text(encoding="utf-8") if theory_path and theory_path.is_file() else None
    checks = [dict(r) for r in result.get("checks", [])]
    for r in checks:
        fig = _figure_path(r, run_dir)
        r["_figure"] = data_uri(fig) if fig is not None else None
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = [f"<h1>sam_theory verification report</h1><p class=\"muted\">run folder {_e(run_dir)} · "
            f"rendered {stamp} · THEORY.md: {_e(theory_path) if theory_text else 'not found'}</p>",
            "<h2>Environment</h2>", _environment(result, source),
            "<h2>Summary</h2>", _summary(checks, grouped),
            "<h2>Checks</h2>"]
    body += [_check_section(r, theory_text, grouped.get(r["name"], [])) for r in checks]
    return _write_atomic(Path(out) if out else run_dir / "report.html", _page("sam_theory verification", "\n".join(body)))


# --- REPORT.md -> report.html -------------------------------------------------------------------------------------
_IMG_MD = re.compile(r"(!\[[^\]]*\]\()([^)\s]+)((?:\s+\"[^\"]*\")?\))")
_IMG_HTML = re.compile(r"(<img\b[^>]*\bsrc=[\"'])([^\"']+)([\"'])", re.IGNORECASE)


def _embed(base: Path, src: str) -> str:
    if re.match(r"^(data:|[a-z][a-z0-9+.-]*://)", src, re.IGNORECASE):
        return src
    path = (base / src).resolve()
    return data_uri(path) if path.is_file() else src


def markdown_report_to_html(md_path, out=None) -> Path:
    """Render a markdown report (the experiment runner's ``REPORT.md``) to ``report.html`` beside it.

    Images referenced by a relative path (``![..](fig.png)`` or ``<img src=...>``) are embedded as data URIs; a
    missing image is left as it is (the browser then shows it broken, which the report's test catches).
    """
    md_path = Path(md_path)
    if not md_path.is_file():
        raise ValueError(f"md_path {str(md_path)!r} is not a file")
    base = md_path.parent
    text = md_path.read_text(encoding="utf-8")
    text = _IMG_MD.sub(lambda m: m.group(1) + _embed(base, m.group(2)) + m.group(3), text)
    fragment = _IMG_HTML.sub(lambda m: m.group(1) + _embed(base, m.group(2)) + m.group(3), render_markdown(text))
    title = next((ln.lstrip("# ").strip() for ln in text.splitlines() if ln.startswith("# ")), md_path.stem)
    return _write_atomic(Path(out) if out else base / "report.html", _page(title, fragment))


def report_after_verify(run_dir, json_path=None) -> Path:
    """``verify --html``: the run's report; mutants from ``verify --json PATH`` if that file holds them."""
    extra = Path(json_path) if json_path and load_mutants(Path(json_path)) else None
    return verification_report(run_dir, mutants=extra)


# --- command line ---------------------------------------------------------------------------------------------------
def add_report_command(sub) -> None:
    """``sam-theory report PATH``: the argparse sub-command (called by cli.build_parser)."""
    r = sub.add_parser("report", help="write a self-contained report.html for a verify run folder or a REPORT.md")
    r.add_argument("path", metavar="RUN_DIR", help="a verify run folder (results.json), or a folder or file "
                   "holding an experiment REPORT.md")
    r.add_argument("--mutants", metavar="JSON", help="mutants JSON (default: one found in RUN_DIR)")
    r.add_argument("--theory", metavar="THEORY.md", help="THEORY.md to excerpt (default: searched)")
    r.add_argument("--out", metavar="HTML", help="output file (default RUN_DIR/report.html)")
    r.set_defaults(func=report_command)


def report_command(args) -> int:
    path = Path(args.path)
    try:
        if path.is_dir() and (path / "results.json").is_file():
            out = verification_report(path, mutants=args.mutants, theory=args.theory, out=args.out)
        elif path.suffix.lower() == ".md" or (path / "REPORT.md").is_file():
            out = markdown_report_to_html(path if path.is_file() else path / "REPORT.md", out=args.out)
        else:
            raise ValueError(f"RUN_DIR {str(path)!r} holds neither results.json nor REPORT.md")
    except ValueError as exc:
        import sys
        print(f"sam-theory report: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0
