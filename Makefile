# crackscope: every set-up step lives here so a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
DEMO_OUT ?= runs/demo

.PHONY: install install-dev demo test bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Idempotent: reinstalls only when pyproject.toml changes.
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install --quiet "torch==2.13.0"
	$(PIP) install --quiet -e .
	touch $@

install: $(STAMP)

$(VENV)/.installed-dev: $(STAMP)
	$(PIP) install --quiet -e ".[dev,ray]"
	touch $@

install-dev: $(VENV)/.installed-dev

demo: install
	$(VENV)/bin/crackscope simulate wavefield --preset small --samples 32 --batch 8 --seed 0 --out $(DEMO_OUT)/wavefield.zarr
	$(VENV)/bin/crackscope inspect $(DEMO_OUT)/wavefield.zarr --out $(DEMO_OUT)/inspect
	@echo "demo results: $(DEMO_OUT)/wavefield.zarr (dataset) and $(DEMO_OUT)/inspect (summary + figure)"

test: install-dev
	$(VENV)/bin/python -m pytest -n 2 -q

# Devito is the optional `bench` extra, the reference solver of the speed comparison; the
# constraint keeps pip from replacing the pinned torch.
bench: install-dev
	echo "torch==2.13.0" > $(VENV)/torch-constraint.txt
	$(PIP) install --quiet -c $(VENV)/torch-constraint.txt -e ".[bench]"
	$(VENV)/bin/python benchmarks/simulate.py

clean:
	rm -rf $(VENV) runs .pytest_cache
