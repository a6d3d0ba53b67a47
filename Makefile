# The two commands: `make run` (start the app with embedded defaults and demo data) and `make test`.
PY := .venv/bin/python
MANAGE := $(PY) manage.py
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run dev serve setup setup-dev demo test lint check pytest schema schema-long bench bench-quick ci worker beat clean

# `make run` is the product as users meet it (DEBUG=0: Dossier's own error pages, static files through WhiteNoise)
# over plain local HTTP; `make dev` keeps Django's debug pages and auto-reload for working on the code.
# Both run beside the local RFC 3161 time-stamping authority unless DOSSIER_TSA_URLS names one (docs/trusted-time.md).
run: setup
	@scripts/with_local_tsa.sh $(MAKE) --no-print-directory demo serve DEBUG=0

dev: setup
	@scripts/with_local_tsa.sh $(MAKE) --no-print-directory demo serve DEBUG=1

serve:
	@echo ""
	@echo "  Dossier is starting at http://$(HOST):$(PORT)/"
	@echo "  Sign in as demo-operator / $${DEMO_PASSWORD:-demo-pass} (also demo-scientist, demo-reviewer,"
	@echo "  demo-approver, demo-compliance, demo-admin). API docs: http://$(HOST):$(PORT)/api/docs/"
	@echo ""
	@mkdir -p staticfiles  # WhiteNoise serves from the finders here; an absent STATIC_ROOT only earns a warning
	DEBUG=$(DEBUG) DOSSIER_HTTPS=0 DJANGO_RUNSERVER_HIDE_WARNING=true $(MANAGE) runserver $(HOST):$(PORT)

setup:
	@scripts/bootstrap.sh

setup-dev:
	@scripts/bootstrap.sh --dev

# Task and request logs stay quiet while seeding; warnings and errors still show.
demo:
	$(MANAGE) migrate --noinput -v0
	LOG_LEVEL=WARNING $(MANAGE) setup_schedules
	LOG_LEVEL=WARNING $(MANAGE) seed_demo

test: setup-dev lint check pytest schema

# docs/architecture.md: the layering, type-check and code-shape rules these enforce.
lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/lint-imports
	.venv/bin/mypy
	$(PY) scripts/type_ignores.py

check:
	$(MANAGE) check
	$(MANAGE) makemigrations --check --dry-run
	$(MANAGE) spectacular --validate --fail-on-warn > /dev/null
	promtool check rules deploy/prometheus/alerts.yml
	promtool test rules deploy/prometheus/alerts.test.yml

pytest:
	$(PY) -m pytest $(PYTEST_ARGS)

# The API against its own schema: schemathesis --checks all on a live server, as every demo role
# (docs/api-schema.md). `schema` is the derandomized quick pass of `make test`; `schema-long` digs deeper.
schema:
	$(PY) scripts/schema_check.py --profile quick

schema-long:
	$(PY) scripts/schema_check.py --profile long

bench: setup-dev
	$(PY) benchmarks/run.py

bench-quick: setup-dev
	$(PY) benchmarks/run.py --quick

ci:
	bash .ci/run

worker:
	.venv/bin/celery -A config worker -l INFO

beat:
	.venv/bin/celery -A config beat -l INFO --scheduler django_celery_beat.schedulers:DatabaseScheduler

clean:
	rm -rf var/ staticfiles/ .pytest_cache .ruff_cache
