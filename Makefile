# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test test-fast faults lint services clean js browser deploy-tools deploy-check

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## parley dev: every component in one process, in-memory bus and store, no servers needed
run: $(STAMP)
	$(VENV)/bin/parley dev

services:
	bash scripts/ensure-services.sh

## JS deps for tests/test_js_sdk.py (the official amazon-ivs-chat-messaging SDK), pinned by package-lock.json
tests/js/node_modules: tests/js/package.json tests/js/package-lock.json
	cd tests/js && npm ci --no-audit --no-fund
	touch tests/js/node_modules

js: tests/js/node_modules

## Chromium for tests/test_web_demo.py: Debian's package, installed only if missing (Playwright's own
## browser download does not work here, so `playwright install` is never run)
browser:
	@test -x /usr/bin/chromium || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; }

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

## the whole suite: lint, unit, integration (real Redis + RabbitMQ) and end-to-end
test: $(STAMP) services tests/js/node_modules browser lint deploy-tools
	$(PY) -m pytest -q -ra $(PYTEST_ARGS)

## unit tests only (no servers)
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not integration and not e2e" $(PYTEST_ARGS)

## the fault suite (bench/faults.py): kills, restarts and stalls mid-stream on throwaway clusters, a
## table of what each cost; its own redis-server and RabbitMQ node for engine faults (~3 min)
faults: $(STAMP) services
	$(PY) -m bench.faults $(FAULTS_ARGS)

## promtool (Debian's prometheus package) and docker-compose for tests/test_deploy.py; no-op when present
deploy-tools:
	@command -v promtool >/dev/null && command -v docker-compose >/dev/null || { \
	  echo "deploy-tools: installing promtool and docker-compose (apt)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends prometheus docker-compose >/dev/null; }
	promtool --version | head -1
	docker-compose version --short

## validate deploy/: promtool check config/rules + rule unit tests, docker-compose config, kubernetes-validate, dashboard
deploy-check: $(STAMP) deploy-tools
	$(PY) -m pytest -q tests/test_deploy.py

clean:
	rm -rf $(VENV) var .pytest_cache tests/js/node_modules
