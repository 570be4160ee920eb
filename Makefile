# flux-ci — every target a person or CI needs. `make help` lists them.
SHELL := bash
.DEFAULT_GOAL := help

include .ci/versions.env

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
comma := ,
# Everything after `make test ARGS=...` goes to pytest, e.g. ARGS='-k push -x'.
ARGS ?=
# `make test` and `make e2e` run on TEST_WORKERS pytest-xdist workers, each file on one worker and
# each worker with a sandbox of its own (about 570 MiB): most of an e2e test is waiting for the
# controllers, so two workers halve the wall time on two cores. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
WORKERS := $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadgroup)
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' flux_ci/__init__.py)
IMAGE ?= flux-ci:$(VERSION)
# `make image` runs $CONTAINER_ENGINE, else docker when a Docker engine answers, else podman. Extra
# flags, e.g. IMAGE_BUILD_FLAGS='--build-context tools=DIR' to take prebuilt tools (see Dockerfile),
# or '--platform linux/arm64'.
IMAGE_BUILD_FLAGS ?=
# The tools each target runs, and only those are built (.ci/build-tools.sh, side by side): the
# demo's sandbox runs source- and kustomize-controller only; sandbox-up runs all four controllers;
# `make tools` (and so `make test`) builds everything, cosign included.
DEMO_CONTROLLERS := source-controller kustomize-controller
DEMO_TOOLS := etcd kube-apiserver kubectl flux oras $(DEMO_CONTROLLERS)
SANDBOX_TOOLS := $(DEMO_TOOLS) helm-controller notification-controller

.PHONY: help install tools test unit e2e lint lock mutation demo bench image sandbox-up sandbox-down clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

$(PY): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(PY)

install: $(PY) ## create .venv with flux-ci and its dev tools

tools: ## build the pinned flux, oras, kubectl, etcd, kube-apiserver and controllers (cached)
	.ci/build-tools.sh

lock: install ## regenerate the hashed requirements.lock and requirements-build.lock from pyproject.toml
	.ci/lock.sh

test: install tools ## run every test: unit and end-to-end in the real sandbox
	$(PY) -m pytest $(WORKERS) $(ARGS)

unit: install ## run the unit tests only (no binaries needed)
	$(PY) -m pytest -m 'not e2e' $(ARGS)

e2e: install tools ## run the end-to-end tests only
	$(PY) -m pytest -m e2e $(WORKERS) $(ARGS)

mutation: install ## mutation testing of the decision modules with the unit tests (minutes; not in `make test`)
	$(PY) -m tests.mutation

lint: install ## ruff and mypy --strict; hadolint on the Dockerfile, shellcheck on the CI scripts
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(VENV)/bin/hadolint Dockerfile
	$(VENV)/bin/shellcheck --external-sources --source-path=SCRIPTDIR .ci/run .ci/*.sh

sandbox-up: install ## start registry + API server + Flux controllers on 127.0.0.1; prints the env file
	.ci/build-tools.sh $(SANDBOX_TOOLS)
	$(PY) -m tests.sandbox up --clusters $(or $(CLUSTERS),1)

sandbox-down: install ## stop everything sandbox-up started
	$(PY) -m tests.sandbox down

demo: install ## deploy examples/manifests into the sandbox with flux-ci, using only env vars
	.ci/build-tools.sh $(DEMO_TOOLS)
	$(PY) -m tests.sandbox up --controllers $(subst $(eval) ,$(comma),$(DEMO_CONTROLLERS))
	$(PY) -m tests.sandbox demo

bench: install tools ## time N deploys in a private sandbox: step durations, detection lag, peak memory
	$(PY) -m tests.benchmark $(ARGS)

image: ## build the drop-in CI image ($(IMAGE)) with docker or podman, whichever runs
	@engine=$${CONTAINER_ENGINE:-$$(if docker info >/dev/null 2>&1; then echo docker; \
	  elif command -v podman >/dev/null; then echo podman; else echo docker; fi)}; \
	set -x; "$$engine" build --tag $(IMAGE) --build-arg VERSION=$(VERSION) \
	  --build-arg REVISION=$$(git rev-parse HEAD 2>/dev/null) --build-arg CREATED=$$(date -u +%FT%TZ) \
	  $(IMAGE_BUILD_FLAGS) .

clean: sandbox-down ## remove the venv and caches (keeps the built tools)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache mutants
