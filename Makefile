# rayforge: entry points. Every target runs a script of scripts/, which needs nothing but
# bash, Python 3.11+ and root (for Docker); the scripts build their own tooling venv.
SHELL := /usr/bin/env bash

.DEFAULT_GOAL := help
.PHONY: help lab lab-destroy test lint

help: ## Show this help
	@awk 'BEGIN { FS = ":.*## " } /^[a-zA-Z_-]+:.*## / { printf "  make %-12s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

lab: ## Bring up the lab cluster (scripts/lab.sh)
	scripts/lab.sh

lab-destroy: ## Tear the lab cluster down (scripts/lab.sh destroy)
	scripts/lab.sh destroy

test: ## Everything: lint, app tests, every Molecule scenario (RAYFORGE_SCENARIOS="a b" for some)
	scripts/test.sh

lint: ## Lint only: yamllint, ansible-lint, ruff, argument specs (no Docker, no Molecule)
	RAYFORGE_ONLY_LINT=1 scripts/test.sh
