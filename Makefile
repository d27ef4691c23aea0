# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
MNIST_PATH ?= $(abspath ../shared/data/mnist.npz)
export MNIST_PATH

.PHONY: install run test lint train bench i18n

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)  ## start the bot (BOT_TOKEN from .env or the environment)
	$(PY) -m bot

test: $(STAMP)  ## lint, type-check and the whole test suite
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -q

# The bot's texts: extract them from bot/, merge them into every language's .po (translate the
# new or fuzzy entries there), compile the .mo files the bot loads (committed with the .po).
LOCALES := bot/locales
i18n: $(STAMP)  ## refresh the translation catalogs
	$(VENV)/bin/pybabel extract --no-location --sort-output --omit-header -k N_ \
		-o $(LOCALES)/digitbot.pot bot
	$(VENV)/bin/pybabel update --no-fuzzy-matching --ignore-pot-creation-date -D digitbot \
		-i $(LOCALES)/digitbot.pot -d $(LOCALES)
	$(VENV)/bin/pybabel compile --statistics -D digitbot -d $(LOCALES)

train: $(STAMP)  ## reproduce model/release with the defaults on the full MNIST
	$(PY) -m model.train --out model/release

bench: $(STAMP)
	$(PY) bench/train_bench.py
