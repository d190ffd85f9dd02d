# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
SEKMET_VENV := .venv-sekmet
SEKMET_VERSION := 0.1.1

.PHONY: run test venv servers sekmet medplum bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e ".[test]"
	touch $@

venv: $(VENV)/.installed

$(SEKMET_VENV)/.installed:
	$(PYTHON) -m venv $(SEKMET_VENV)
	$(SEKMET_VENV)/bin/pip install -q sekmet-fhir==$(SEKMET_VERSION)
	touch $@

sekmet: $(SEKMET_VENV)/.installed

servers: sekmet medplum

medplum:
	@if [ -f servers/medplum/package.json ]; then $(MAKE) -C servers/medplum install; fi

run: venv sekmet
	$(VENV)/bin/carebridge demo

test: venv servers
	$(VENV)/bin/pytest -q

bench: venv servers
	$(VENV)/bin/carebridge bench

clean:
	rm -rf $(VENV) $(SEKMET_VENV) servers/medplum/node_modules
