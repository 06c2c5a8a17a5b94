# Two commands for a newcomer: `make run` and `make test`. Each builds its own .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test lint audit unit test-faults fuzz bench bench-scaling clean multi-instance

# npm ci: the console's Chart.js from the npm registry at install time (exact version in
# package-lock.json, into node_modules/, which the gateway serves; never committed).
$(STAMP): pyproject.toml package.json package-lock.json
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	npm ci --omit=dev --ignore-scripts --no-audit --no-fund
	touch $@

$(TEST_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	touch $@

## Set up, migrate, load demo data, start the PBX simulator when no AMI host is set, serve.
run: $(STAMP)
	$(BIN)/switchboard db upgrade
	$(BIN)/switchboard serve --demo

## The dependency rule (.importlinter: layers, independent features, no cycles), ruff (with a
## complexity limit, C90), ruff format, mypy (strict, over tests and bench too).
lint: $(TEST_STAMP)
	$(BIN)/lint-imports
	$(BIN)/ruff check gateway channels adapters crm_sync tests bench scripts
	$(BIN)/ruff format --check gateway channels adapters crm_sync tests bench scripts
	$(BIN)/mypy

## Known vulnerabilities in the installed dependencies (pip-audit, PyPI's advisory data).
## --strict: a package that could not be checked (service unreachable) fails the audit,
## because an audit that could not run is not a pass. Ignores: AUDIT_IGNORES below.
audit: $(TEST_STAMP)
	$(BIN)/python -m pip_audit --local --strict --skip-editable --progress-spinner off $(AUDIT_IGNORES) \
	  || { echo "AUDIT FAILED: a known vulnerability, or packages PyPI's JSON API could not be asked about (see README, Security)" >&2; exit 1; }

# Advisories we accept, one `--ignore-vuln ID` each with the reason beside it
# (none yet). Upgrade the pin instead whenever a fixed version exists.
AUDIT_IGNORES :=

## Set up, make sure PostgreSQL and Redis run (starting or installing them), lint, run every
## test with coverage measured ([tool.coverage] in pyproject.toml), print coverage per package.
test: $(TEST_STAMP) lint
	scripts/ensure-chromium.sh >/dev/null
	eval "$$(scripts/ensure-services.sh)" && $(BIN)/python -m pytest -q --cov --cov-report=
	$(BIN)/python scripts/coverage_summary.py

test-faults: $(TEST_STAMP)
	eval "$$(scripts/ensure-services.sh)" && SWITCHBOARD_FAULT_SCALE=full $(BIN)/python -m pytest -q tests/faults

fuzz: $(TEST_STAMP)
	eval "$$(scripts/ensure-services.sh)" && SWITCHBOARD_FUZZ_SCALE=full $(BIN)/python -m pytest -q -m "not slow" tests -k fuzz

bench: $(TEST_STAMP)
	eval "$$(scripts/ensure-services.sh)" && for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

## Two gateway processes against one (screen-pop latency, webhook and send throughput);
## `make bench-scaling BENCH_ARGS="--calls 2000 --messages 5000"` for bigger runs.
bench-scaling: $(TEST_STAMP)
	eval "$$(scripts/ensure-services.sh)" && $(BIN)/python bench/bench_scaling.py $(BENCH_ARGS)

## Two gateways, one simulator, one PostgreSQL and Redis (local scale-out testing; not CI).
multi-instance: $(STAMP)
	scripts/multi-instance.sh

clean:
	rm -rf $(VENV) node_modules switchboard.db*
