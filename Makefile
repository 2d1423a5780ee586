# machinenativeops.platform: one entry point for setup, tests, the lab and benchmarks.
# `make test` on a fresh Debian 12 machine installs everything and runs every test.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
PY := $(BIN)/python
COLLECTIONS := $(CURDIR)/build/collections
STAGE := $(COLLECTIONS)/ansible_collections/machinenativeops/platform
SANITY_ROOT := $(CURDIR)/build/sanity/ansible_collections/machinenativeops/platform
LAB_DIR ?= $(CURDIR)/.lab

export PATH := $(BIN):$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH := true
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help setup system-packages venv stage lab-build test lint ruff yamllint ansible-lint changelog-lint sanity unit lab-tests \
        integration bench train evaluate lab-up lab-down lab-status build docs clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | column -t -s $$'\t'

setup: system-packages venv stage lab-build ## install Debian packages, the virtualenv, the lab's control plane; stage the collection

lab-build: venv ## build etcd, kube-apiserver, controller-manager, scheduler, kubectl, KWOK from their Go modules (cached)
	$(PY) -m lab build

system-packages: ## apt-get the packages listed in bindep.txt that are missing
	@pkgs=$$(awk '!/^#/ && NF {print $$1}' bindep.txt); missing=""; \
	for p in $$pkgs; do dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

venv: $(VENV)/.installed ## the virtualenv with requirements-dev.txt (pinned by constraints.txt)

$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -r requirements-dev.txt
	touch $@

stage: ## make the tree importable as ansible_collections.machinenativeops.platform
	@mkdir -p $(dir $(STAGE))
	@[ -L $(STAGE) ] || ln -sfn $(CURDIR) $(STAGE)

test: setup lint sanity unit matrix-ci lab-tests integration ## everything CI runs

lint: ruff yamllint ansible-lint changelog-lint ## ruff, yamllint, ansible-lint (production profile), changelog fragments

ruff:
	$(BIN)/ruff check .

yamllint:
	$(BIN)/yamllint -s .

ansible-lint:
	$(BIN)/ansible-lint --offline --profile production

changelog-lint:
	$(BIN)/antsibull-changelog lint

sanity: venv ## ansible-test sanity on a staged copy (ansible-test resolves symlinks), offline-capable
	$(PY) tools/ansible_test_offline_bootstrap.py
	@mkdir -p $(SANITY_ROOT)
	rsync -a --delete --exclude-from=.sanity-exclude ./ $(SANITY_ROOT)/
	@# A repository of its own: otherwise ansible-test lists files through this checkout's git, which ignores build/.
	[ -d $(SANITY_ROOT)/.git ] || git -C $(SANITY_ROOT) init -q
	cd $(SANITY_ROOT) && $(BIN)/ansible-test sanity --python 3.11 --color no

unit: ## pytest unit tests of module_utils and plugins
	$(PY) -m pytest tests/unit

lab-tests: ## pytest tests of the lab itself (real clients against the emulator and servers)
	$(PY) -m pytest tests/lab

integration: ## modules and playbooks run by ansible-playbook / ansible-runner against the lab
	$(PY) -m pytest tests/integration

bench: setup ## benchmarks: figures and ratios against a baseline measured in the same run
	$(PY) -m bench

train: setup ## train the anomaly models into ml/models/<version>/
	$(PY) -m ml.train

evaluate: setup ## evaluate the anomaly models and write ml/reports/
	$(PY) -m ml.evaluate

lab-up: setup ## start the local lab in $(LAB_DIR)
	$(PY) -m lab up --dir $(LAB_DIR)

lab-down: ## stop everything the lab started
	$(PY) -m lab down --dir $(LAB_DIR)

lab-status:
	$(PY) -m lab status --dir $(LAB_DIR)

build: setup ## build the collection tarball
	$(BIN)/ansible-galaxy collection build --force --output-path build/

clean:
	rm -rf build tests/output .pytest_cache .ruff_cache

# -- ansible-core compatibility matrix (tools/matrix.py, tests/matrix/): one virtualenv per ansible-core minor -------
.PHONY: matrix matrix-ci matrix-lock
LEGS ?= 2.16 2.17 2.18 2.19 2.20 2.21
MATRIX_CI_LEGS := 2.16 2.21

matrix: venv stage ## every ansible-core leg: sanity, unit, lab smoke on the oldest and newest (LEGS="2.16 2.21" selects)
	$(PY) tools/matrix.py --legs "$(LEGS)"

matrix-ci: venv stage ## sanity + unit of the oldest and the newest ansible-core leg (part of make test)
	$(PY) tools/matrix.py --legs "$(MATRIX_CI_LEGS)" --steps sanity,unit

matrix-lock: venv ## re-resolve the pins of the legs in LEGS (tests/matrix/constraints-<leg>.txt)
	$(PY) tools/matrix.py --legs "$(LEGS)" --lock
