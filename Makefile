# The two commands: `make run` (start the app with embedded defaults and demo data) and `make test`.
PY := .venv/bin/python
MANAGE := $(PY) manage.py
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run setup setup-dev demo test lint check pytest schema schema-long bench bench-quick ci worker beat clean

run: setup demo
	@echo ""
	@echo "  Dossier is starting at http://$(HOST):$(PORT)/"
	@echo "  Sign in as demo-operator / $${DEMO_PASSWORD:-demo-pass} (also demo-scientist, demo-reviewer,"
	@echo "  demo-approver, demo-compliance, demo-admin). API docs: http://$(HOST):$(PORT)/api/docs/"
	@echo ""
	DEBUG=$${DEBUG:-1} $(MANAGE) runserver $(HOST):$(PORT)

setup:
	@scripts/bootstrap.sh

setup-dev:
	@scripts/bootstrap.sh --dev

demo:
	$(MANAGE) migrate --noinput -v0
	$(MANAGE) setup_schedules
	$(MANAGE) seed_demo

test: setup-dev lint check pytest schema

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

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
