# Two commands matter: `make demo` and `make test`. Each installs what it needs first:
# uv (into .bootstrap/ when it is not on PATH), then the locked environment (.venv/).
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.bootstrap/bin/uv)
BUF := $(CURDIR)/.tools/node_modules/.bin/buf

.PHONY: demo test install lint typecheck pytest protos buf clean help

help:
	@echo "make demo   - generate a 20k-track corpus, serve, ingest and print recommendations"
	@echo "make test   - lint, type-check and run the whole test suite"
	@echo "make protos - regenerate the committed gRPC stubs from proto/"

$(CURDIR)/.bootstrap/bin/uv:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "musicrec needs Python 3.11+ as $(PYTHON)"; exit 1; }
	$(PYTHON) -m venv .bootstrap
	.bootstrap/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# --compile-bytecode: every process (each parse worker, each test server) then starts from .pyc files
# even where PYTHONDONTWRITEBYTECODE is set; ~2 s less per process start here, ~6 s once at install.
install: $(UV)
	$(UV) sync --frozen --quiet --compile-bytecode

# buf lints the protos when npm can install it; the test that uses it skips with a reason otherwise.
buf:
	@if [ ! -x "$(BUF)" ] && command -v npm >/dev/null 2>&1; then \
		npm install --silent --no-audit --no-fund --prefix .tools @bufbuild/buf@1.75.0 >/dev/null 2>&1 || echo "note: could not install buf; proto lint test will skip"; \
	fi

demo: install
	$(UV) run musicrec demo $(ARGS)

lint: install
	$(UV) run ruff check .
	$(UV) run ruff format --check .

typecheck: install
	$(UV) run mypy libs services cli tests scripts benchmarks

pytest: install buf
	$(UV) run pytest

test: lint typecheck pytest

protos: install
	$(UV) run python scripts/gen_protos.py

clean:
	rm -rf .venv .bootstrap .tools .pytest_cache .mypy_cache .ruff_cache
