# One entry point for set-up and everyday tasks. Every target installs what it needs first and is
# idempotent: a second run does no harm and little work.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
MANIFEST := dbt_project/target/manifest.json
DBT_SOURCES := $(shell find dbt_project -path dbt_project/target -prune -o -type f \( -name '*.sql' -o -name '*.yml' \) -print)
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
HOST ?= 127.0.0.1
PORT ?= 3000
DOCS_HOST ?= 127.0.0.1
DOCS_PORT ?= 8080
CHROMIUM := /usr/bin/chromium

.PHONY: help install demo test dev dbt-build dbt-docs manifest lint db-start db-stop db-status benchmark benchmark-loop benchmark-composite benchmark-areas benchmark-observe benchmark-startup benchmark-records benchmark-refresh benchmark-events clean browser

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11) and "Python 3.11 is required (set PYTHON=...)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -c requirements.lock -e '.[test]'
	touch $(STAMP)

install: $(STAMP) ## create the venv and install the pinned dependencies

$(DAGSTER_HOME)/dagster.yaml: dagster_project/dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster_project/dagster.yaml $@

# dagster-dbt's own preparation of the DbtProject in dagster_project/resources.py (a `dbt parse`); its dbt is
# the venv's. The code location prepares it by itself too when it is missing or stale (dagster_project/dbt_manifest.py).
$(MANIFEST): $(STAMP) $(DBT_SOURCES)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dagster-dbt project prepare-and-package --file dagster_project/dbt_manifest.py
	touch $@

manifest: $(MANIFEST) ## prepare dbt's manifest.json (needed by dagster-dbt at import)

db-start: $(STAMP) ## start the embedded PostGIS (no-op with DATABASE_URL or when running)
	$(BIN)/ndvi-db start

db-stop: ## stop the embedded PostGIS
	@if [ -x $(BIN)/ndvi-db ]; then $(BIN)/ndvi-db stop; else echo "nothing installed, nothing to stop"; fi

db-status: $(STAMP) ## show whether the embedded PostGIS runs, and where
	$(BIN)/ndvi-db status

demo: db-start $(MANIFEST) $(DAGSTER_HOME)/dagster.yaml ## generate sample data, materialise every asset for two years
	$(BIN)/ndvi-demo

browser: ## Debian's chromium for the browser tests (installed as root when missing; otherwise they skip)
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing the Debian package chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "$(CHROMIUM) is missing and this is not root: browser tests will skip (apt-get install chromium)"; fi

test: db-start $(MANIFEST) browser ## set up, then run the whole test suite
	$(BIN)/ruff check .
	$(BIN)/pytest -q

dev: db-start $(MANIFEST) $(DAGSTER_HOME)/dagster.yaml ## Dagster UI on http://$(HOST):$(PORT) (Ctrl-C stops it)
	set -m; DAGSTER_EVENT_BATCH_SIZE=$${DAGSTER_EVENT_BATCH_SIZE:-1000} $(BIN)/dagster dev -h $(HOST) -p $(PORT)

dbt-build: db-start $(MANIFEST) ## plain `dbt build` (every year in raw.ndvi_composites) against the same database
	$(BIN)/ndvi-dbt build

dbt-docs: db-start $(MANIFEST) ## generate the dbt docs and serve them on http://$(DOCS_HOST):$(DOCS_PORT) (Ctrl-C stops)
	$(BIN)/ndvi-dbt docs generate
	$(BIN)/ndvi-dbt docs serve --host $(DOCS_HOST) --port $(DOCS_PORT) --no-browser

lint: $(STAMP) ## ruff
	$(BIN)/ruff check .

CASES ?= enschede L
benchmark: db-start $(MANIFEST) ## zonal stats: ndvi_stats_yearly vs exactextract and numpy (CASES="enschede L", BENCH_ARGS=)
	$(BIN)/python benchmarks/zonal_stats.py $(CASES) $(BENCH_ARGS)

benchmark-loop: db-start $(MANIFEST) ## wall time of one demo year through ndvi-pipeline run vs its steps
	$(BIN)/python benchmarks/yearly_loop.py

benchmark-composite: $(STAMP) ## composite speed and memory against the odc-stac baseline (4, 25, 100 Mpx)
	$(BIN)/python benchmarks/composite.py

benchmark-areas: db-start $(MANIFEST) ## a province as many areas (A) against one area (B): wall, CPU, RSS (BENCH_ARGS=)
	$(BIN)/python benchmarks/areas.py $(BENCH_ARGS)

benchmark-observe: $(STAMP) ## observing 24 areas x 2 years against compositing them (BENCH_ARGS=)
	$(BIN)/python benchmarks/observe.py $(BENCH_ARGS)

benchmark-startup: $(STAMP) ## start-up and exit of ndvi-pipeline with and without its garbage-collector policy (BENCH_ARGS=)
	$(BIN)/python benchmarks/startup.py $(BENCH_ARGS)

benchmark-records: $(STAMP) ## per-partition metadata in one batch of 342 areas x 9 years: our partitions vs Dagster's (BENCH_ARGS=)
	$(BIN)/python benchmarks/partition_records.py $(BENCH_ARGS)

benchmark-refresh: $(STAMP) ## an unchanged yearly GeoJSON: the inputs digest against rendering it again (BENCH_ARGS=)
	$(BIN)/python benchmarks/yearly_refresh.py $(BENCH_ARGS)

benchmark-events: $(STAMP) ## a batch run's Dagster events: bulk writes against one event at a time (BENCH_ARGS=)
	$(BIN)/python benchmarks/event_log.py $(BENCH_ARGS)

clean: db-stop ## remove the venv, the embedded database, Dagster home and outputs
	rm -rf $(VENV) .pgdata .dagster_home data dbt_project/target test-artifacts
