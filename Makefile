# The two commands of the README: `make run` and `make test`. Both install into .venv first.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 41002
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/chargeback
TEST_REDIS_URL ?= redis://127.0.0.1:6379/5

.PHONY: install run test lint format worker beat bench clean

$(BIN)/kt: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(BIN)/kt

install: $(BIN)/kt

run: install
	$(BIN)/python manage.py demo_run --port $(PORT)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: install lint
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/pytest $(PYTEST_ARGS)

worker: install
	$(BIN)/celery -A portal worker -l info

beat: install
	$(BIN)/celery -A portal beat -l info

clean:
	rm -rf $(VENV) db.sqlite3 media

# --- admin ---
# The admin's one browser test drives Debian's Chromium through the playwright package (never
# `playwright install`, which would download a browser). Installed only when missing.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
.PHONY: browser-deps
browser-deps:
	@test -x /usr/bin/chromium || ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium)
test: browser-deps
# --- end admin ---

# --- sso ---
# The single sign-on tests run a real OpenID Connect provider (node-oidc-provider, tests/sso/op/)
# on the machine's Node.js: installed from its package-lock.json (npm ci, the npm registry) when
# missing or when the lock file changed; nothing is downloaded while the tests run.
SSO_OP := tests/sso/op
.PHONY: sso-op-deps
sso-op-deps: $(SSO_OP)/node_modules/.package-lock.json
$(SSO_OP)/node_modules/.package-lock.json: $(SSO_OP)/package-lock.json
	@(command -v node && command -v npm) >/dev/null || ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq nodejs npm)
	cd $(SSO_OP) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@
test: sso-op-deps
# --- end sso ---

# --- bench-scale ---
# Issue 18's scale benchmark: 10 M + 1 M events generated as the gateway writes them, then
# every finance page, API and job timed against its goal (bench/scale.py; tens of minutes).
# Its own database, never the tests'; a rerun completes and reuses the data already there.
BENCH_SCALE_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/cb_scale
BENCH_SCALE_ARGS ?= --events 10000000 --small-events 1000000 --reuse
.PHONY: bench-scale
bench-scale: install
	BENCH_SCALE_DATABASE_URL=$(BENCH_SCALE_DATABASE_URL) nice -n 10 $(BIN)/python bench/scale.py $(BENCH_SCALE_ARGS)
# --- end bench-scale ---
