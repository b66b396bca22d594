# The single entry point for people and CI. `make run` and `make test` are the whole set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
REDIS_URL ?= redis://127.0.0.1:6379/0
export REDIS_URL
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help install run test lint chaos bench redis clean

help:
	@echo "make run    set up (venv, packages, migrations, schedules, demo tenant) and start web, worker and beat"
	@echo "make test   the same set-up, then the whole test suite (with lint and the migrations check)"
	@echo "make lint   ruff and the migrations check only"

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt $(BIN)/activate
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

install: $(VENV)/.installed

# Starts a private redis-server when none answers at REDIS_URL; says how to get one when it is not installed.
redis: install
	@if $(PY) -c "import os, redis; redis.Redis.from_url(os.environ['REDIS_URL'], socket_connect_timeout=1).ping()" 2>/dev/null; then \
		echo "Redis answers at $$REDIS_URL"; \
	elif command -v redis-server >/dev/null; then \
		port=$$($(PY) -c "import os, urllib.parse as u; print(u.urlparse(os.environ['REDIS_URL']).port or 6379)"); \
		mkdir -p var; \
		redis-server --port $$port --bind 127.0.0.1 --daemonize yes --save "" --appendonly no \
			--dir $(CURDIR)/var --logfile $(CURDIR)/var/redis.log --pidfile $(CURDIR)/var/redis.pid; \
		sleep 0.5; echo "Started a private redis-server on port $$port (log: var/redis.log)"; \
	else \
		echo "No Redis answers at $$REDIS_URL and redis-server is not installed."; \
		echo "Install it (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis) or set REDIS_URL."; \
		exit 1; \
	fi

run: export DEBUG ?= 1
run: export WEB_HOST ?= 127.0.0.1
run: redis
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) manage.py setup_periodic_tasks
	$(PY) manage.py seed_demo --base-url http://127.0.0.1:$${PORT:-8000}
	$(BIN)/honcho start --port $${PORT:-8000} web worker beat

lint: install
	$(BIN)/ruff check .
	DEBUG=1 $(PY) manage.py makemigrations --check --dry-run

# The suite mostly waits on real processes (workers killed and restarted, outages, beats taking over), so on
# PostgreSQL it runs in two pytest-xdist processes, each with its own test database, Redis database and media folder
# (config/settings_test.py). On SQLite in one: its database-wide write lock makes the crash tests' timing depend on
# whatever runs beside them. TEST_WORKERS=0 runs it in one process anywhere.
TEST_WORKERS ?= $(if $(findstring postgres,$(DATABASE_URL)),2,0)

test: redis lint
	$(BIN)/pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

chaos: redis
	$(BIN)/pytest -n $(TEST_WORKERS) -m chaos $(PYTEST_ARGS)

bench: redis
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .ruff_cache
