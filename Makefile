VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint clean

$(STAMP): pyproject.toml
	@python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Hypercare Desk needs Python 3.11 or newer (python3 is $$(python3 -V 2>&1))"; exit 2; }
	@python3 -c 'import ensurepip, venv' 2>/dev/null || \
		{ echo "python3 cannot create virtual environments: run 'apt-get install python3-venv' first"; exit 2; }
	@echo "==> 1/3 creating the virtual environment $(VENV)"
	python3 -m venv $(VENV)
	@echo "==> 2/3 updating pip"
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	@echo "==> 3/3 installing Hypercare Desk and its dependencies (about a minute; pip shows each package)"
	$(PY) -m pip install --disable-pip-version-check --progress-bar on -e '.[test]'
	@touch $(STAMP)
	@echo "==> installed; next time 'make run' starts at once"

run: $(STAMP)
	@echo "==> starting the service (Ctrl-C stops it); try '$(VENV)/bin/hypercare demo' from a second terminal"
	$(VENV)/bin/hypercare run

# One pytest worker per core; TEST_WORKERS=0 runs the suite in this process (easier to debug).
TEST_WORKERS ?= auto

test: $(STAMP)
	$(VENV)/bin/pytest -q -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) var build *.egg-info
