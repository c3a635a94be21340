# The two commands of the quick start: `make demo` and `make test`. Both set up .venv when needed.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test test-fast bench calibrate clean-venv

setup:
	@bash scripts/setup.sh

demo: setup
	@mkdir -p runs/demo && touch runs/demo/.hguard-demo  # the demo's own folder (made by an older demo too)
	@$(PY) -m hguard demo --out runs/demo

test: setup
	@bash scripts/test.sh

test-fast: setup
	@$(PY) -m pytest -q -n logical --maxprocesses 4 --dist worksteal -m "not default_model and not slow"

bench: setup
	@$(PY) benchmarks/run_all.py

calibrate: setup
	@$(PY) calibration/reference.py

clean-venv:
	rm -rf $(VENV)
