# Two commands for a new machine: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
export HOST PORT

.PHONY: run test test-fast install browser pgbouncer redis drill-scale migrate lint lock messages clean
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Installs the lock (exact versions and hashes: what CI tested), then the project itself.
$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

# Re-pins requirements.lock from the ranges in requirements.txt (pip-tools, in its own venv).
lock:
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet pip-tools
	.lock-venv/bin/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe \
		--no-emit-index-url --output-file requirements.lock requirements.txt

install: $(VENV)/.installed

# After changing a page's text: extracts the messages and updates both catalogs (then translate
# the new French entries in app/locales/fr/LC_MESSAGES/messages.po).
messages: install
	$(VENV)/bin/pybabel extract -F babel.cfg -k N_ --no-location --sort-output -o app/locales/messages.pot .
	$(VENV)/bin/pybabel update -i app/locales/messages.pot -d app/locales --width 100 --ignore-obsolete
	rm app/locales/messages.pot

migrate: install
	$(PY) -m app migrate

run: migrate
	$(VENV)/bin/gunicorn main:app -c gunicorn_config.py

# The browser tests drive Debian's Chromium (never a browser Playwright downloads): installed
# with apt when missing.
browser:
	@command -v chromium >/dev/null || { \
		echo "== installing Debian's chromium for the browser tests"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# PgBouncer for the pooling tests and the scale-out drill: Debian's package (its own service,
# where systemd would start one, is stopped: the tests start theirs on a free port).
pgbouncer:
	@test -x /usr/sbin/pgbouncer || { \
		echo "== installing Debian's pgbouncer for the pooling tests"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer && \
		if [ -d /run/systemd/system ]; then $(SUDO) systemctl disable --now pgbouncer.service; fi; }

# Redis for the throttle tests and the drill, at TEST_REDIS_URL (default redis://127.0.0.1:6379/0):
# when nothing answers there, Debian's redis-server (installed when missing) is started on its
# port, bound to 127.0.0.1, keeping nothing on disk.
redis:
	@bash .ci/redis.sh

# Three nodes on 127.0.0.2-4 over one PostgreSQL (through PgBouncer), SeaweedFS and Redis.
drill-scale: install pgbouncer redis
	TEST_DATABASE_URL=$${TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/test} \
		$(PY) -m pytest -q -p no:playwright -s tests/drills

# The suite on SQLite always and, when TEST_DATABASE_URL is set, on PostgreSQL at the same time
# (there without the tests marked `once`: what they prove does not depend on the database). The
# suite mostly waits on servers, browsers and clocks, so the two passes share two cores well;
# the PostgreSQL pass writes to build/test-postgresql.log, printed once both are done.
test: install browser pgbouncer redis
	@mkdir -p build; pg=""; \
	if [ -n "$$TEST_DATABASE_URL" ]; then \
		echo "== on PostgreSQL ($$TEST_DATABASE_URL) meanwhile: build/test-postgresql.log"; \
		$(PY) -m pytest -q -p no:cacheprovider > build/test-postgresql.log 2>&1 & pg=$$!; \
		trap 'kill $$pg 2>/dev/null' INT TERM; \
	fi; \
	echo "== on SQLite"; \
	env -u TEST_DATABASE_URL $(PY) -m pytest -q; sqlite=$$?; \
	postgres=0; \
	if [ -n "$$pg" ]; then \
		wait $$pg; postgres=$$?; \
		echo "== on PostgreSQL ($$TEST_DATABASE_URL)"; cat build/test-postgresql.log; \
	fi; \
	[ $$sqlite = 0 ] && [ $$postgres = 0 ]

# The inner loop: everything but the tests that start servers, worker pools or load runs.
test-fast: install
	env -u TEST_DATABASE_URL $(PY) -m pytest -q -m "not slow"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .lock-venv .pytest_cache .ruff_cache .mypy_cache
