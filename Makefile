# Two commands on a fresh machine: `make run` (main job) and `make test` (pytest suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXTRAS ?= dev,experiments
PYTEST_WORKERS ?= 2
# Declared negative results (README, "Claims that do not hold"): claims that fail on some evaluation seeds at their
# pre-registered settings. They run at every seed and print FAILED with their numbers when they fail; only the exit
# status of `make run` / `make verify-full` ignores them. One list for every seed: no per-seed exemptions.
NEGATIVE := ^(theorem_a\.(sam_minima_flatter|gap_grows_with_width)|diag_net\.one_sam_beats_gd)$$

.PHONY: venv run test test-slow verify-full mutants bench bench-torch clean chromium

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/sam-theory verify --quick --expect-fail '$(NEGATIVE)'

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

# Full verification (CI): full size at seed 0, then quick size at seeds 1–4 (the issue-12 acceptance seeds); every
# run must pass except the declared negative results (NEGATIVE above), which still run and print FAILED with their
# numbers when they fail.
verify-full: $(STAMP)
	$(BIN)/sam-theory verify --seed 0 --json runs/verify-full-seed0.json --expect-fail '$(NEGATIVE)'
	for s in 1 2 3 4; do \
	  $(BIN)/sam-theory verify --quick --seed $$s --json runs/verify-quick-seed$$s.json --expect-fail '$(NEGATIVE)' \
	    || exit 1; done

# Mutation testing (outside CI): every check under each of its declared mutants, quick size; all must be killed.
mutants: $(STAMP)
	$(BIN)/sam-theory verify --mutants --quick --json runs/mutants.json

bench: $(STAMP)
	$(BIN)/python benchmarks/step_cost.py

# PyTorch CPU comparison: torch is not a dependency; 2.13.0 is the CPU build pip finds on this workplace's disk.
bench-torch: $(STAMP)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python benchmarks/torch_sam.py

clean:
	rm -rf $(VENV) runs build *.egg-info
