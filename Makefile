# The two commands: `make demo` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DB := sqlite:///demo/oppiva.db
export OPPIVA_SECRET_KEY_FILE ?= demo/oppiva.key

.PHONY: install demo test lint format bench lock clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install  ## set up, load sample customers into demo/oppiva.db and serve the API
	$(BIN)/oppiva --database $(DEMO_DB) demo
	$(BIN)/oppiva --database $(DEMO_DB) serve

test: install  ## the whole suite, on SQLite and on PostgreSQL, one worker per core
	$(BIN)/pytest -n auto

lint: install  ## ruff (lint and format) and mypy strict
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

bench: install  ## every benchmark under benchmarks/, printing its figures
	@for script in benchmarks/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

lock: install  ## refresh constraints.txt from the environment
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^pip==' > constraints.txt

clean:
	rm -rf $(VENV) demo .pytest_cache .mypy_cache .ruff_cache
