# Fresh machine with only Python 3.11: `make demo` runs the main job, `make test` runs the tests.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[cpu,test]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m pipelines.train

# Lint and architecture contracts (config in pyproject.toml): ruff, then import-linter's layers,
# "srkeras never imports db/apps" and no-import-circle contracts.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

test: $(STAMP)
	@$(PY) -m pytest -q $(PYTEST_ARGS) || { rc=$$?; [ $$rc -eq 5 ] && echo "pytest collected no tests (exit 5): the suite is broken"; exit $$rc; }

clean:
	rm -rf $(VENV)
