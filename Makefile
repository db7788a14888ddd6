# The two commands a newcomer needs: `make run` and `make test`.
# Everything else is for development and CI. Every target installs what it needs.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
LOCKS := requirements/base.txt requirements/dev.txt
INSTALLED := $(VENV)/.installed
SOURCES := config core tenants security gateway services policy vault operations
HOST ?= 127.0.0.1
PORT ?= 8000
PROD_CHECK_ENV := DJANGO_SETTINGS_MODULE=config.settings.production \
	DJANGO_SECRET_KEY=security-scan-only-$$(head -c 48 /dev/urandom | base64 | tr -d '/+=\n') \
	DJANGO_ALLOWED_HOSTS=api.example.org PUBLIC_HOSTS=platform.example.org \
	DATABASE_URL='postgres://app@db.internal:5432/gateway?sslmode=verify-full' \
	REDIS_URL=rediss://security-state.internal:6380/0 CACHE_URL=rediss://cache.internal:6380/0 RABBITMQ_URL=amqps://app@broker.internal:5671/gateway \
	JWT_ISSUER=https://auth.example.org JWT_AUDIENCE=https://api.example.org \
	JWT_SIGNING_KEYS_DIR=/run/secrets/jwt-keys POLICY_ENGINE=opa OPA_URL=http://127.0.0.1:8181 \
	KEY_PROVIDER=vault VAULT_ADDR=https://vault.internal:8200 VAULT_ROLE_ID=gateway VAULT_SECRET_ID=scan-only \
	AWS_S3_BUCKET=gateway-exports TRUSTED_PROXIES=10.20.0.0/24 PROXY_SHARED_SECRET=$$(head -c 48 /dev/urandom | base64 | tr -d '/+=\n') \
	METRICS_TOKEN=$$(head -c 48 /dev/urandom | base64 | tr -d '/+=\n')

.PHONY: help setup-dev services run test coverage-report lint lint-imports format type-check migrations-check \
	attack-suite backup restore-test quality-check security-scan security-audit lock policy-review bench clean \
	deploy-blue health-check switch-traffic verify-deployment migrations-lint build security-check fuzz

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(INSTALLED): $(LOCKS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# The lock's own pip first, hash-checked: the pip a Python bundles may be too old for the lock (pip 23.2 takes
	@# an extra such as coverage[toml] from the index instead of the pinned coverage and refuses in --require-hashes).
	awk '/^pip==/ {keep = 1} keep && !/^ *--hash|^pip==/ {exit} keep' requirements/dev.txt > $(VENV)/pip.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes -r $(VENV)/pip.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements/base.txt -r requirements/dev.txt
	@touch $@

# `make run` uses two database roles, as production does: the tables' owner migrates and seeds (manage.py
# switches to it for those commands), the service's role serves and may only append to the audit log.
DEV_DATABASE_URL ?= postgres://gateway_service@127.0.0.1:5432/compliance_gateway
DEV_DATABASE_OWNER_URL ?= postgres://postgres@127.0.0.1:5432/compliance_gateway
AS_OWNER := DATABASE_URL=$(DEV_DATABASE_URL) DATABASE_OWNER_URL=$(DEV_DATABASE_OWNER_URL)
AS_SERVICE := DATABASE_URL=$(DEV_DATABASE_URL) DATABASE_OWNER_URL=
# The worker's beat takes backups (docs/operations/backups.md) over a replication connection: the owner's here.

services: ## Start local PostgreSQL, Redis and RabbitMQ if they are down; create the database
	@bash scripts/dev-services.sh

setup-dev: $(INSTALLED) services ## Install dependencies (hash-checked), start services, migrate
	$(AS_OWNER) $(PY) manage.py migrate --verbosity 0

run: setup-dev ## Serve the API on 127.0.0.1:8000 (and a Celery worker) with demo communities alpha and beta
	$(AS_SERVICE) $(PY) manage.py rotate_signing_key --if-missing
	$(AS_OWNER) $(PY) manage.py seed_demo --base-url http://$(HOST):$(PORT)
	$(AS_SERVICE) BACKUP_DATABASE_URL=$(DEV_DATABASE_OWNER_URL) bash scripts/serve.sh $(BIN) $(HOST) $(PORT)

# Two xdist workers (the suite's CI machine has two cores); each has its own test database, Redis databases,
# key file and state directory (tests/support/parallel.py). TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
test: $(INSTALLED) services ## Run the test suite with coverage (real PostgreSQL, Redis, RabbitMQ)
	@rc=0; $(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --cov --cov-report=term --no-cov-on-fail $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

attack-suite: $(INSTALLED) services ## Only the standing attack suite (tests/attacks): one test per security finding
	@rc=0; $(BIN)/pytest -m attack $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: the attack suite collected no tests" >&2; exit 1; fi; exit $$rc

# The API fuzzer's long run (docs/development.md, "The API fuzzer"): what CI runs in tests/contract/test_fuzz.py,
# with every phase for every role on both communities and FUZZ_EXAMPLES examples per operation and phase (CI: 10).
FUZZ_EXAMPLES ?= 100
FUZZ_SEED ?= 20260520
FUZZ_REPORT_DIR ?= fuzz-report
fuzz: $(INSTALLED) services ## The API fuzzer, long: FUZZ_EXAMPLES (100) per operation, every phase; reports in FUZZ_REPORT_DIR
	FUZZ_LONG=1 FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_SEED=$(FUZZ_SEED) FUZZ_REPORT_DIR=$(abspath $(FUZZ_REPORT_DIR)) \
		$(BIN)/pytest tests/contract/test_fuzz.py -p no:cacheprovider -n 0 --no-cov -rA $(PYTEST_ARGS)

coverage-report: $(INSTALLED) ## Coverage of the last test run (terminal and htmlcov/)
	@test -f .coverage || $(MAKE) test
	$(BIN)/coverage report
	$(BIN)/coverage html --quiet && echo "HTML report: htmlcov/index.html"

lint: $(INSTALLED) ## ruff lint (complexity at most 10 included), format check, the import contract
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

lint-imports: $(INSTALLED) ## The layers contract alone (pyproject.toml [tool.importlinter])
	$(BIN)/lint-imports

format: $(INSTALLED) ## Fix what ruff can (imports, lint autofixes) and format the tree
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

type-check: $(INSTALLED) ## mypy strict with the Django and DRF stubs, tests included
	$(BIN)/mypy .

migrations-check: $(INSTALLED) services ## Models and migrations agree (makemigrations --check)
	DJANGO_SETTINGS_MODULE=config.settings.test $(PY) manage.py makemigrations --check --dry-run

quality-check: lint type-check migrations-check ## Lint, contract, types, migrations, then coverage >= 80% of a fresh run
	@test -f .coverage || { echo "error: no coverage data: run make test first" >&2; exit 1; }
	@stale=$$(find $(SOURCES) tests -name '*.py' -newer .coverage -print -quit); \
	if [ -n "$$stale" ]; then echo "error: .coverage is older than $$stale: run make test again" >&2; exit 1; fi
	$(BIN)/coverage report --fail-under=80 > /dev/null && echo "coverage: $$($(BIN)/coverage report --format=total)% (>= 80%)"

security-scan: $(INSTALLED) ## bandit, pip-audit over the locks, check --deploy with production settings
	$(BIN)/bandit -q -c pyproject.toml -r $(SOURCES)
	$(PY) -m security.scan audit $(LOCKS)
	$(PROD_CHECK_ENV) $(PY) -m security.deploy_check

security-audit: $(INSTALLED) ## pip-audit alone over the lock files
	$(PY) -m security.scan audit $(LOCKS)

lock: ## Regenerate the hash-pinned lock files from requirements/*.in
	@test -x $(BIN)/pip-compile || { test -x $(PY) || $(PYTHON) -m venv $(VENV); $(PY) -m pip install --quiet pip-tools; }
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
		--no-emit-find-links --output-file requirements/base.txt requirements/base.in
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
		--no-emit-find-links --output-file requirements/dev.txt requirements/dev.in

policy-review: $(INSTALLED) ## Rego tests under regopy and regorus with rule coverage, then the decisions the change flips (BASE, CORPUS)
	$(PY) manage.py policy_test --require-second-engine
	$(PY) manage.py policy_diff --base $(or $(BASE),HEAD) --corpus $(or $(CORPUS),policy/corpus/sample.jsonl) \
		--markdown-out policy-diff.md
	@echo "Markdown for the pull request: policy-diff.md"

backup: $(INSTALLED) services ## Base backup and WAL of the platform's database, sealed into BACKUP_DIR
	$(AS_OWNER) $(PY) manage.py backup

restore-test: $(INSTALLED) services ## Restore the latest backup into a scratch cluster and prove it (non-zero on failure)
	$(AS_OWNER) $(PY) manage.py restore_test

bench: $(INSTALLED) services ## Measure token, policy, request, audit, export and scale (1,000 communities) figures (prints them)
	DJANGO_SETTINGS_MODULE=config.settings.test $(PY) -m bench.identity
	DJANGO_SETTINGS_MODULE=config.settings.test $(PY) -m bench.audit
	DJANGO_SETTINGS_MODULE=config.settings.test $(PY) -m bench.research
	DJANGO_SETTINGS_MODULE=config.settings.test $(PY) -m bench.cpu
	DJANGO_SETTINGS_MODULE=config.settings.test $(PY) -m bench.exports
	DJANGO_SETTINGS_MODULE=config.settings.test $(PY) -m bench.backups
	DJANGO_SETTINGS_MODULE=config.settings.test $(PY) -m bench.load
	DJANGO_SETTINGS_MODULE=config.settings.test $(PY) -m bench.scale

# Blue/green (docs/operations/blue-green.md): the idle colour beside the live one, as gunicorn on its own port;
# Kong's admin API at KONG_ADMIN_URL. RELEASE names the new release (default: the commit).
RELEASE ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo dev)
deploy-blue: $(INSTALLED) services ## Start the idle colour (gunicorn, SERVICE_RELEASE=$(RELEASE)) beside the live one
	$(AS_SERVICE) $(PY) manage.py bluegreen deploy --release $(RELEASE)

health-check: $(INSTALLED) ## Wait for the new colour's readiness, then smoke requests through it (non-zero on failure)
	$(AS_SERVICE) $(PY) manage.py bluegreen health-check

switch-traffic: $(INSTALLED) ## Move Kong's upstream weights to the new colour (ROLLBACK=1: back to the previous configuration)
	$(AS_SERVICE) $(PY) manage.py bluegreen switch $(if $(ROLLBACK),--rollback)

verify-deployment: $(INSTALLED) ## Check the live colour's release, readiness and error rate; roll back on failure
	$(AS_SERVICE) $(PY) manage.py bluegreen verify

migrations-lint: $(INSTALLED) services ## New migrations stay backward-compatible across one release (expand/contract)
	DJANGO_SETTINGS_MODULE=config.settings.test $(PY) manage.py migrations_compat

clean: ## Remove caches and coverage data (keeps .venv)
	rm -rf .pytest_cache .mypy_cache .ruff_cache htmlcov .coverage coverage.xml fuzz-report

# Image (issue 17): hadolint always; `docker build` only where a container runtime answers.
IMAGE ?= compliance-gateway
SERVICE_RELEASE ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)

build: $(INSTALLED) ## Lint the Dockerfile and build the image (fails clearly when no container runtime is present)
	$(BIN)/hadolint --config deploy/hadolint.yaml deploy/Dockerfile
	@if ! docker info >/dev/null 2>&1; then \
	  echo "error: no container runtime answers 'docker info': the image was NOT built (Dockerfile linted only)" >&2; exit 1; fi
	docker build --file deploy/Dockerfile --build-arg SERVICE_RELEASE=$(SERVICE_RELEASE) \
	  --build-arg VCS_REF=$$(git rev-parse HEAD) --tag $(IMAGE):$(SERVICE_RELEASE) .

security-check: security-scan ## The security scan plus the image checks: hadolint and the image/compose invariant tests
	$(BIN)/hadolint --config deploy/hadolint.yaml deploy/Dockerfile
	scripts/compose-config.sh
	$(BIN)/pytest tests/deploy -q -p no:cacheprovider
