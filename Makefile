# Two commands for a fresh machine: `make run` (the whole product on SQLite) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test migrate bootstrap shell clean bench bench-peers bench-logs soak

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.run-deps: requirements.lock | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.lock
	touch $@

$(VENV)/.test-deps: requirements.lock requirements-test.lock | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-test.lock
	touch $@ $(VENV)/.run-deps

run: $(VENV)/.run-deps
	$(BIN)/python manage.py serve

# One pytest-xdist worker per core, at most four (each has its own test database and Redis databases);
# PYTEST_WORKERS=0 runs the suite in one process.
PYTEST_WORKERS ?= auto
test: $(VENV)/.test-deps
	scripts/with-services.sh $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --maxprocesses=4 $(PYTEST_ARGS)

# The relay (on PostgreSQL + Redis and on SQLite) versus fake upstreams called directly, on throwaway services.
bench: $(VENV)/.test-deps
	scripts/with-services.sh $(BIN)/python bench/relay.py $(BENCH_ARGS)

# The same run plus LiteLLM's proxy and Portkey's gateway as further targets (installed into bench/.peers on first use).
bench-peers: $(VENV)/.test-deps
	scripts/with-services.sh $(BIN)/python bench/relay.py --peers $(BENCH_ARGS)

# The fault mix under load for a few minutes (two relay processes), then the books; SOAK_ARGS="--seconds 30".
soak: $(VENV)/.test-deps
	scripts/with-services.sh $(BIN)/python scripts/soak.py $(SOAK_ARGS)

# The usage log table at a few million rows: the console's and /v1/usage's queries timed, with their plans.
bench-logs: $(VENV)/.test-deps
	scripts/with-services.sh $(BIN)/python bench/usage_logs.py $(BENCH_ARGS)

migrate: $(VENV)/.run-deps
	$(BIN)/python manage.py migrate

shell: $(VENV)/.run-deps
	$(BIN)/python manage.py shell

clean:
	rm -rf $(VENV) .pytest_cache test-output
