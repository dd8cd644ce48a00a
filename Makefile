# Two commands for a fresh machine: `make run` (the whole product on SQLite) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test migrate bootstrap shell clean bench bench-logs

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

test: $(VENV)/.test-deps
	scripts/with-services.sh $(BIN)/python -m pytest $(PYTEST_ARGS)

# The relay against a fast fake upstream versus the upstream called directly, on throwaway PostgreSQL and Redis.
bench: $(VENV)/.test-deps
	scripts/with-services.sh $(BIN)/python bench/relay.py $(BENCH_ARGS)

# The usage log table at a few million rows: the console's and /v1/usage's queries timed, with their plans.
bench-logs: $(VENV)/.test-deps
	scripts/with-services.sh $(BIN)/python bench/usage_logs.py $(BENCH_ARGS)

migrate: $(VENV)/.run-deps
	$(BIN)/python manage.py migrate

shell: $(VENV)/.run-deps
	$(BIN)/python manage.py shell

clean:
	rm -rf $(VENV) .pytest_cache test-output
