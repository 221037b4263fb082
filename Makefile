# The README's two commands, `make demo` and `make test`, set themselves up on a fresh machine:
# they create .venv with pip when missing and (re)install only when the lock file or pyproject.toml changed.
# They need Python 3.11+, make and (for the web page's tests) Debian's chromium; nothing else.
SHELL  := bash
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

export PIP_DISABLE_PIP_VERSION_CHECK := 1

# The lock: every package of the extras below at one exact version with its sha256 hashes (pip-tools), so two
# installs are the same install. pyproject.toml keeps ranges; `make lock` re-resolves after a change there.
LOCK        := requirements/dev.txt
LOCK_EXTRAS := all,dev
# Without --emit-index-url / --emit-find-links the lock names no index: each machine's pip configuration says
# where packages come from (here: PyPI plus the local folders that hold torch). --all-build-deps pins setuptools,
# so the editable install below builds without build isolation, from locked packages only.
PIP_COMPILE := $(BIN)/pip-compile --quiet --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links \
	--all-build-deps --extra $(LOCK_EXTRAS)
# pip-tools writes the project itself into the lock when an extra names it (all = ["rookery[train,serve,...]"]),
# as `rookery @ file:///ABSOLUTE/PATH`: not portable and not hashable (jazzband/pip-tools#2002); it is dropped.
DROP_SELF := sed -i -e '/^\# WARNING: pip install will require the following package to be hashed/d' \
	-e '/^\# Consider using a hashable URL/d' -e '/^rookery @ file:/,/^    \# via /d'

.PHONY: install demo serve test test-slow test-containers test-containers-slow lint format bench clean browser docs lock lock-check

install: $(STAMP)

# --require-hashes: a file whose hash is not in the lock is refused. pip itself is in the lock too.
$(STAMP): $(LOCK) pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	@touch $@

# Re-resolve after a change to the dependencies in pyproject.toml. The pins already in the lock are kept where they
# still fit (pip-compile prefers them), so only what the change needs moves; `make lock UPGRADE=1` moves all.
lock:
	@test -x $(BIN)/pip-compile || $(MAKE) install
	CUSTOM_COMPILE_COMMAND="make lock" $(PIP_COMPILE) --generate-hashes $(if $(UPGRADE),--upgrade) \
		--output-file $(LOCK) pyproject.toml
	$(DROP_SELF) $(LOCK)

# CI: is the lock current, i.e. would `make lock` pin the same versions? A resolution from the lock's own pins,
# without hashes (a version's files and hashes do not change on the index, and hashing them is most of the time).
lock-check: $(STAMP)
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && cp $(LOCK) "$$tmp/lock.txt" && \
	$(PIP_COMPILE) --output-file "$$tmp/lock.txt" pyproject.toml && $(DROP_SELF) "$$tmp/lock.txt" && \
	pins() { grep -E '^[A-Za-z0-9._-]+==' "$$1" | sed 's/ .*//' | sort; } && \
	if ! diff <(pins $(LOCK)) <(pins "$$tmp/lock.txt"); then \
		echo "$(LOCK) is out of date with pyproject.toml: run 'make lock' and commit it" >&2; exit 1; fi && \
	echo "$(LOCK) is current ($$(pins $(LOCK) | wc -l) pinned packages)"

# The web page's tests drive Debian's Chromium (never a downloaded browser); they skip without it.
browser:
	@test -x /usr/bin/chromium || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		(apt-get install -y -q chromium >/dev/null || (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null)) ; } || \
		echo "note: /usr/bin/chromium is missing (apt-get install chromium); the browser tests will skip"

demo: $(STAMP)
	$(BIN)/rookery demo

serve: $(STAMP)
	$(BIN)/rookery serve

test: $(STAMP) browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-slow: $(STAMP) browser
	$(BIN)/python -m pytest -m "slow and not container" $(PYTEST_ARGS)

# Real container images (podman, as root; tests/deploy/test_images.py): the slim serving image, built and run on
# loopback (CI runs this one); test-containers-slow also builds the full training image and MLflow's own
# generated image (10-15 min each; torch's CPU index is out of reach here, so PyPI's CUDA build is taken).
test-containers: $(STAMP)
	bash deploy/tools/podman-setup.sh
	$(BIN)/python -m pytest -m "container and not slow" $(PYTEST_ARGS)

test-containers-slow: $(STAMP)
	bash deploy/tools/podman-setup.sh
	ROOKERY_TORCH_INDEX_URL=https://pypi.org/simple $(BIN)/python -m pytest -m "container and slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench docs
	$(BIN)/ruff format --check src tests bench docs
	$(BIN)/mypy
	$(BIN)/hadolint deploy/Dockerfile deploy/Dockerfile.gpu deploy/Dockerfile.serve
	$(BIN)/actionlint .github/workflows/*.yml
	$(BIN)/shellcheck deploy/deploy.sh $(wildcard deploy/tools/*.sh)

format: $(STAMP)
	$(BIN)/ruff check --fix src tests bench docs
	$(BIN)/ruff format src tests bench docs

# The documentation site into build/site; --strict turns every warning (a broken link, a missing page, an API
# object that does not resolve) into a failure. NO_MKDOCS_2_WARNING: Material's end-of-life banner (see CONTRIBUTING).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir build/site

bench: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[bench,openvino]'   # the peers the benches run (SAHI); not in the lock
	$(BIN)/python bench/data_build.py --quick
	$(BIN)/python bench/sliced_inference.py --quick
	$(BIN)/python bench/tracking_overhead.py --quick
	$(BIN)/python bench/serving.py --quick
	$(BIN)/python bench/gpu_throughput.py --quick   # exits 0 with a message without CUDA

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist src/*.egg-info
