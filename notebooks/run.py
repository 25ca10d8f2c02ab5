"""Execute the paired notebooks and write their .ipynb with outputs: ``python notebooks/run.py [NAME …]``.

The percent-format ``.py`` beside each ``.ipynb`` is the reviewed source (jupytext); this script rebuilds the
``.ipynb`` from it and executes it (nbclient, kernel ``python3``) in the repository root, so ``import sam_theory``
is this checkout. `tests/test_notebooks.py` uses `execute` and `out_of_sync`.
"""
from __future__ import annotations

import sys
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TIMEOUT_S = 300  # per cell


def sources() -> list[Path]:
    """The paired sources: notebooks/NN_name.py."""
    return sorted(p for p in HERE.glob("[0-9][0-9]_*.py"))


def execute(py: Path, timeout: int = TIMEOUT_S):
    """The notebook of ``py`` executed (raises nbclient's CellExecutionError when a cell, e.g. an assert, fails)."""
    nb = jupytext.read(py)
    nb.metadata["jupytext"] = {"formats": "ipynb,py:percent"}
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    return nb


def _cells(nb) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def out_of_sync(py: Path) -> str | None:
    """Why ``py`` and its ``.ipynb`` differ (cell types and sources), or None if they agree."""
    ipynb = py.with_suffix(".ipynb")
    if not ipynb.is_file():
        return f"{ipynb.name} is missing"
    a, b = _cells(jupytext.read(py)), _cells(nbformat.read(ipynb, as_version=4))
    if a == b:
        return None
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"cell {i} differs: {x[1][:80]!r} vs {y[1][:80]!r}"
    return f"{len(a)} cells in {py.name}, {len(b)} in {ipynb.name}"


def main(names: list[str]) -> int:
    for py in sources():
        if names and not any(n in py.name for n in names):
            continue
        print(f"executing {py.name} …", flush=True)
        nbformat.write(execute(py), py.with_suffix(".ipynb"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
