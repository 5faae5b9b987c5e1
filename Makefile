# cdnpurge: every install step lives here, so a fresh clone needs only `make demo` or `make test`.
# Targets are stamp-based: nothing is reinstalled unless its input file changed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SAM_VENV := .tools/sam
SAM := $(SAM_VENV)/bin/sam
NODE_DEPS := local/node_modules/.installed
AWS_REGION ?= us-east-1
# Where `make demo` saves its run (`cdnpurge report $(DEMO_RUN)` draws it); ignored by git.
DEMO_RUN ?= local/runs/demo.json
export AWS_DEFAULT_REGION ?= $(AWS_REGION)
# sam and boto3 must never reach a real account from a developer machine or CI.
export AWS_ACCESS_KEY_ID ?= testing
export AWS_SECRET_ACCESS_KEY ?= testing
export SAM_CLI_TELEMETRY := 0

.PHONY: help install demo test lint typecheck docs unit sam-validate sam-build bench clean
.DEFAULT_GOAL := help

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

$(NODE_DEPS): local/package.json local/package-lock.json
	cd local && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(SAM_VENV)/.installed: requirements-sam.txt
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet -r requirements-sam.txt
	touch $@

install: $(BIN)/.installed $(NODE_DEPS) ## create .venv (with the cdnpurge CLI) and the local stack's deps

demo: install ## run an upload and a publish event through queue, handler, table and fake CDNs
	$(BIN)/python -m cdnpurge_local.demo --save $(DEMO_RUN)

lint: $(BIN)/.installed ## ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/.installed ## mypy (strict)
	$(BIN)/mypy layers/core local/cdnpurge_local functions tests bench

docs: $(BIN)/.installed ## the documentation site (mkdocs.yml, docs/) built into site/; a broken link fails it
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# What `sam build` reads: rebuilt only when one of these changed (the stamps live in .aws-sam/, ignored).
BUILD_INPUTS := template.yaml $(shell find layers/core functions -type f -not -path '*/__pycache__/*')

.aws-sam/.validated: template.yaml $(SAM_VENV)/.installed
	$(SAM) validate --lint --region $(AWS_REGION)
	mkdir -p .aws-sam && touch $@

.aws-sam/build/.built: $(BUILD_INPUTS) $(SAM_VENV)/.installed
	$(SAM) build --region $(AWS_REGION)
	touch $@

sam-validate: .aws-sam/.validated ## sam validate --lint (offline; again only when template.yaml changed)

sam-build: .aws-sam/build/.built ## sam build: cross-builds the arm64/python3.13 layer (again only when inputs changed)
	@find .aws-sam/build/CoreLayer -type f -printf '%s\n' | \
		awk '{s += $$1} END {printf "layer size: %.1f MiB unzipped, files only (budget 12 MiB)\n", s / 1048576}'

test: install lint typecheck docs sam-validate sam-build ## everything: lint, types, docs, SAM, unit, contract, integration, reliability
	$(BIN)/python -m pytest -n 2 --dist loadgroup

bench: install sam-build ## storms vs a naive purger (bench/results/, JSON and charts), rate sharing, verification, cold start, layer size
	$(BIN)/python -m bench.storm
	$(BIN)/python -m bench.concurrency
	$(BIN)/python -m bench.coalescing
	$(BIN)/python -m bench.verification
	$(BIN)/python -m bench.coldstart

clean: ## remove build outputs (keeps the venvs)
	rm -rf .aws-sam build site .mypy_cache .ruff_cache .pytest_cache
