# Two commands on a fresh machine: `make run` (main job) and `make test` (pytest suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXTRAS ?= dev
PYTEST_WORKERS ?= 2

.PHONY: venv run test test-slow bench bench-torch clean chromium

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/sam-theory verify --quick

# tests/ plus every docstring example (`>>>`) of the package; notebooks execute in tests/test_notebooks.py.
test: $(STAMP) chromium
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --durations=15 --doctest-modules tests sam_theory

# Headless Chromium for the report's browser test (tests/test_report.py): installed from the system package
# manager when missing and we are root; otherwise that test skips and says why.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      chromium >/dev/null) || echo "chromium could not be installed: the browser test will skip"; \
	  else echo "chromium not found and not root: the browser test will skip"; fi

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) -m slow

bench: $(STAMP)
	$(BIN)/python benchmarks/step_cost.py

# PyTorch CPU comparison: torch is not a dependency; 2.13.0 is the CPU build pip finds on this workplace's disk.
bench-torch: $(STAMP)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python benchmarks/torch_sam.py

clean:
	rm -rf $(VENV) runs build *.egg-info
