# crackscope: every set-up step lives here so a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
DEMO_OUT ?= runs/demo
# The library asks for a range of torch (pyproject.toml); this project installs exactly this one, the
# local CPU wheel. Every pip call below runs under it as a constraint, so that pip never resolves a
# newer torch, which would drag in gigabytes of CUDA packages.
TORCH  := torch==2.13.0
CONSTRAINTS := $(VENV)/constraints.txt

.PHONY: install install-dev chromium demo demo-surface lint test bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(CONSTRAINTS): Makefile | $(PY)
	echo "$(TORCH)" > $@

# Idempotent: reinstalls only when pyproject.toml changes.
$(STAMP): pyproject.toml | $(PY) $(CONSTRAINTS)
	$(PIP) install --quiet -c $(CONSTRAINTS) "$(TORCH)"
	$(PIP) install --quiet -c $(CONSTRAINTS) -e .
	$(VENV)/bin/crackscope compile-kernels   # the bit-packed kernels into numba's cache, ahead of the first image
	touch $@

install: $(STAMP)

$(VENV)/.installed-dev: $(STAMP)
	$(PIP) install --quiet -c $(CONSTRAINTS) -e ".[dev,ray]"
	touch $@

install-dev: $(VENV)/.installed-dev

# The main job on a small default: simulate 2,400 plates of the small preset (one notch each),
# inspect them, train MicroCrackAttentionNeXt-RC briefly, evaluate it on plates of a seed never
# used in training. Re-running resumes/skips finished steps.
demo: install
	$(VENV)/bin/crackscope simulate wavefield --config configs/wavefield/simulate_small_t250.yaml \
		--samples 2400 --batch 32 --seed 0 --out $(DEMO_OUT)/wavefield.zarr
	$(VENV)/bin/crackscope inspect $(DEMO_OUT)/wavefield.zarr --out $(DEMO_OUT)/inspect
	$(VENV)/bin/crackscope train --config configs/wavefield/demo.yaml --resume out_dir=$(DEMO_OUT) \
		data.store=$(DEMO_OUT)/wavefield.zarr
	$(VENV)/bin/crackscope simulate wavefield --config $(DEMO_OUT)/mcan-rc/simulate.yaml \
		--samples 400 --batch 32 --seed 1000 --out $(DEMO_OUT)/test-seed1000.zarr
	$(VENV)/bin/crackscope evaluate $(DEMO_OUT)/mcan-rc --data $(DEMO_OUT)/test-seed1000.zarr --out $(DEMO_OUT)
	@echo "demo results in $(DEMO_OUT)/: metrics.json, size_table.md, figures/masks.png (400 plates of an unseen seed);"
	@echo "  the trained run in $(DEMO_OUT)/mcan-rc, the dataset in $(DEMO_OUT)/wavefield.zarr, its summary in $(DEMO_OUT)/inspect"

# Surface segmentation: the shipped U-Net+CBAM evaluated on SD-saliency-900's test split and run on
# its images (masks + overlays), then a short training run of its own (small, CPU minutes).
SD_DATA ?= ../shared/datasets/SD-saliency-900
demo-surface: install
	$(VENV)/bin/crackscope evaluate sd-saliency-900/unet_cbam --data $(SD_DATA) --out $(DEMO_OUT)-surface/shipped
	$(VENV)/bin/crackscope predict sd-saliency-900/unet_cbam --data $(SD_DATA) --out $(DEMO_OUT)-surface/predict
	$(VENV)/bin/crackscope train --config configs/surface/unet_cbam.yaml --resume name=unet_cbam-short \
		out_dir=$(DEMO_OUT)-surface data.root=$(SD_DATA) data.size=96 model.base_channels=8 trainer.max_epochs=4
	@echo "surface demo in $(DEMO_OUT)-surface/: shipped/metrics.json, predict/masks + overlays, unet_cbam-short/"

# Lint (ruff), format check (ruff format) and declared-dependency check (deptry); .ci/run runs it before the tests.
lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/deptry src

# The browser tests (pytest -m browser) drive Debian's Chromium through Playwright; `playwright install`
# is never run: no browser is downloaded. Installed here when missing (as root, else with sudo).
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core

chromium: $(CHROMIUM)

test: install-dev $(CHROMIUM)
	$(VENV)/bin/python -m pytest -n 2 -q

# Devito is the optional `bench` extra, the reference solver of the speed comparison; the
# constraint keeps pip from replacing the pinned torch.
bench: install-dev | $(CONSTRAINTS)
	$(PIP) install --quiet -c $(CONSTRAINTS) -e ".[bench]"
	$(VENV)/bin/python benchmarks/simulate.py

clean:
	rm -rf $(VENV) runs .pytest_cache
