"""The notebooks: each percent-format source (notebooks/NN_*.py, the reviewed file) agrees cell by cell with its
committed .ipynb, and executes (a fresh kernel in the repository root) without error: every notebook ends with
assertions on the numbers it shows, so a failed claim fails here. Rebuild the .ipynb with
``python notebooks/run.py [NAME …]``."""
import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("notebooks_run", Path(__file__).parent.parent / "notebooks" / "run.py")
nbrun = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nbrun)

SOURCES = nbrun.sources()
EXPECTED = ["01_quickstart", "02_curvature_along_training", "03_theorem_a_stability", "04_theorem_b_convergence",
            "05_edge_of_stability", "06_diagonal_nets", "07_overparameterization"]


def test_every_notebook_is_paired():
    assert [p.stem for p in SOURCES] == EXPECTED
    assert sorted(p.stem for p in nbrun.HERE.glob("*.ipynb")) == EXPECTED


@pytest.mark.parametrize("py", SOURCES, ids=lambda p: p.stem)
def test_notebook_in_sync(py):
    assert nbrun.out_of_sync(py) is None, f"{nbrun.out_of_sync(py)}: run `python notebooks/run.py {py.stem}`"


@pytest.mark.parametrize("py", SOURCES, ids=lambda p: p.stem)
def test_notebook_executes(py):
    nb = nbrun.execute(py)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors


def test_out_of_sync_is_detected(tmp_path):
    import nbformat
    py = tmp_path / "01_x.py"
    py.write_text("# %%\nx = 1\n")
    assert "missing" in nbrun.out_of_sync(py)
    nb = nbrun.jupytext.read(py)
    nb.cells[0].source = "x = 2"
    nbformat.write(nb, py.with_suffix(".ipynb"))
    assert "cell 0 differs" in nbrun.out_of_sync(py)
