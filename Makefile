# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# OS packages: nginx routes canary traffic; buildah/skopeo/docker-registry build and
# push images daemonless; busybox-static makes a tiny local base image for tests.
DEMO_PACKAGES := nginx
TEST_PACKAGES := nginx buildah skopeo docker-registry busybox-static rsync

.PHONY: setup demo test lint system-demo system-test clean

$(BIN)/mlci: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

setup: $(BIN)/mlci

system-demo:
	@missing=""; for p in $(DEMO_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing; fi

system-test:
	@missing=""; for p in $(TEST_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing; fi

## The demo: a first release, a good canary promoted, a bad canary rolled back.
demo: system-demo setup
	$(BIN)/mlci demo
	$(BIN)/mlci demo --bad-canary

## The tests: unit, integration (real MLflow, model servers, nginx, registry + buildah).
test: system-test setup
	$(BIN)/ruff check src tests
	$(BIN)/mypy
	$(BIN)/pytest -q -p no:cacheprovider

clean:
	rm -rf $(VENV) .mlci-demo mlci-report .pytest_cache
