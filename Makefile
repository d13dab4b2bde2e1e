# One command each, on a fresh clone: `make demo`, `make test`, `make html`, `make bench`.
# Every target first creates (or refreshes, when requirements.txt changed) the virtualenv in .venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-requirements

.PHONY: setup demo test html bench exercises clean

setup: $(STAMP)

$(STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

# Train and export the MNIST model (unless one exists), serve it, query it with the handbook's client.
demo: setup
	$(PY) scripts/demo.py

test: setup
	$(PY) -m pytest

html: setup
	$(PY) -m sphinx -W -n --keep-going -b html -c . docs _build/html
	@echo "open _build/html/index.html"

bench: setup
	$(PY) -m bench

exercises: setup
	$(PY) -m pytest -m exercise exercises

clean:
	rm -rf _build .pytest_cache
