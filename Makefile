# Quick start: `make demo` runs the main job, `make test` runs the test suite.
# Each target sets itself up first (libLLVM >= 18, .venv, editable install).
.PHONY: setup demo test bench clean

VENV := .venv/bin

setup:
	@bash scripts/setup.sh

demo: setup
	$(VENV)/rvs-mi demo

test: setup
	$(VENV)/python -m pytest -q

clean:
	rm -rf .venv out build *.egg-info .pytest_cache
