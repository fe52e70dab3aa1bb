VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint clean

$(STAMP): pyproject.toml
	@python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Hypercare Desk needs Python 3.11 or newer (python3 is $$(python3 -V 2>&1))"; exit 2; }
	@python3 -c 'import ensurepip, venv' 2>/dev/null || \
		{ echo "python3 cannot create virtual environments: run 'apt-get install python3-venv' first"; exit 2; }
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/hypercare run

test: $(STAMP)
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) var build *.egg-info
