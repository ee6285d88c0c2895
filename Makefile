# leadflow — the two commands a user needs (`make demo`, `make test`) and a few for developers.
# Works on a fresh machine with only Python 3.11 and make: the venv is created when missing and
# reinstalled whenever pyproject.toml changes.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export PREFECT_HOME := $(CURDIR)/.leadflow/prefect
# Prefect makes only the last folder of its home: on a fresh clone .leadflow/ does not exist yet
$(shell mkdir -p "$(PREFECT_HOME)")
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE := 500
export PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE := 500

.PHONY: demo test lint format bench chaos scale install clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# An agency's week of clients against the sandbox: `make demo DEMO_ARGS="--leads 50 --faults 0.2"`.
# State (ledger, sandbox snapshot) in .leadflow/demo/: a rerun continues, --fresh starts over.
demo: $(STAMP)
	$(BIN)/leadflow demo $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# two pytest workers (pytest-xdist): the suite waits on Prefect servers, subprocesses and loopback
# vendors about as much as it computes, so two workers on 2 cores take half the time of one
TEST_WORKERS ?= 2
test: $(STAMP) lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

# every benchmark beside its baseline; the table goes to benchmarks/RESULTS.md (machine, date)
bench: $(STAMP)
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

# issue 14's chaos run at full size (CI runs 20 leads in `make test`); its table is printed.
# Another seed: `make chaos CHAOS_SEED=7`; another size: `make chaos CHAOS_LEADS=100`.
CHAOS_LEADS ?= 300
CHAOS_SEED ?= 20261202
chaos: $(STAMP)
	LEADFLOW_CHAOS_LEADS=$(CHAOS_LEADS) LEADFLOW_CHAOS_SEED=$(CHAOS_SEED) \
		PREFECT_LOGGING_LEVEL=WARNING $(BIN)/python -m pytest tests/chaos -q -s --timeout=1800 \
		$(PYTEST_ARGS)

# issue 13's scale-out tests (a Prefect server on PostgreSQL, two workers, 500 journeys, one worker
# killed): minutes each, so outside `make test`'s 10-minute budget. Needs PostgreSQL on 127.0.0.1.
scale: $(STAMP)
	LEADFLOW_TEST_DATABASE_URL=$${LEADFLOW_TEST_DATABASE_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/postgres} \
		$(BIN)/python -m pytest tests/deployments -m scale -q $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .leadflow .pytest_cache .ruff_cache
