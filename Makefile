# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
MNIST_PATH ?= $(abspath ../shared/data/mnist.npz)
export MNIST_PATH

# Installs come from the lock files in requirements/ (exact versions, hash-checked), then the
# project itself without dependencies. The Dockerfile runs these same commands
# (tests/test_deploy.py fails on drift). serve: the bot; train: + TensorFlow; dev: + tests.
INSTALL_LOCKED := -m pip install --require-hashes -r
INSTALL_PROJECT := -m pip install --no-deps
LOCK_SERVE := requirements/serve.txt
LOCK_TRAIN := requirements/train.txt
LOCK_DEV := requirements/dev.txt
# `make lock` re-resolves them from pyproject.toml: dev first, the others within its versions,
# so the three agree. Current pins are kept while they satisfy pyproject.toml;
# `make lock LOCK_FLAGS=--upgrade` takes the newest releases.
COMPILE := $(VENV)/bin/uv pip compile pyproject.toml --universal --python-version 3.11 \
	--generate-hashes --quiet

.PHONY: install run test lint train bench lock serve-venv train-extra check-install i18n

$(STAMP): pyproject.toml $(LOCK_DEV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) $(INSTALL_LOCKED) $(LOCK_DEV) -q
	$(PY) $(INSTALL_PROJECT) -e . -q
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)  ## start the bot (BOT_TOKEN from .env or the environment)
	$(PY) -m bot

test: $(STAMP)  ## lint, type-check and the whole test suite
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -q

lock: $(STAMP)  ## refresh requirements/*.txt from pyproject.toml
	$(COMPILE) $(LOCK_FLAGS) --extra train --extra dev -o $(LOCK_DEV)
	$(COMPILE) --extra train -c $(LOCK_DEV) -o $(LOCK_TRAIN)
	$(COMPILE) -c $(LOCK_DEV) -o $(LOCK_SERVE)

# The serving install alone, as in the image's serve stage (VENV_DIR=...), and the training
# extra on top of it (the train stage); check-install builds both in a temporary directory.
serve-venv:
	$(PYTHON) -m venv $(VENV_DIR)
	$(VENV_DIR)/bin/python $(INSTALL_LOCKED) $(LOCK_SERVE)
	$(VENV_DIR)/bin/python $(INSTALL_PROJECT) .

train-extra:
	$(VENV_DIR)/bin/python $(INSTALL_LOCKED) $(LOCK_TRAIN)

check-install: $(STAMP)  ## fresh venv from the locks: serves without TensorFlow; + train retrains
	$(PY) -m pytest -q -m slow tests/test_install.py

# The bot's texts: extract them from bot/, merge them into every language's .po (translate the
# new or fuzzy entries there), compile the .mo files the bot loads (committed with the .po).
LOCALES := bot/locales
i18n: $(STAMP)  ## refresh the translation catalogs
	$(VENV)/bin/pybabel extract --no-location --sort-output --omit-header -k N_ \
		-o $(LOCALES)/digitbot.pot bot
	$(VENV)/bin/pybabel update --no-fuzzy-matching --ignore-pot-creation-date -D digitbot \
		-i $(LOCALES)/digitbot.pot -d $(LOCALES)
	$(VENV)/bin/pybabel compile --statistics -D digitbot -d $(LOCALES)

train: $(STAMP)  ## reproduce model/release (the crop model, then the line reader) on the full MNIST
	$(PY) -m model.train --out model/release
	$(PY) -m model.train --arch line --out model/release

bench: $(STAMP)
	$(PY) bench/train_bench.py
