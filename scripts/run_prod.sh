#!/usr/bin/env bash
# `make run-prod`: Dossier as production runs it, on one host: gunicorn (deploy/gunicorn.conf.py), a Celery worker
# and beat, on PostgreSQL and Redis (docs/deployment.md). Migrates, installs the schedules and collects static
# files first. Every value below is a default for the local services; the environment overrides it. Ctrl-C (or
# SIGTERM) stops all three processes; if any of them exits, the others are stopped too.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${DATABASE_URL:-}" ]; then  # the local services: started if installed but down, the database created once
  scripts/services.sh
  createdb -h 127.0.0.1 -U postgres dossier 2>/dev/null || true
fi
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/dossier}"
export CELERY_BROKER_URL="${CELERY_BROKER_URL:-redis://127.0.0.1:6379/1}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
export DEBUG="${DEBUG:-0}"
# Plain HTTP on the loopback; behind a TLS-terminating proxy set DOSSIER_HTTPS=1 and DOSSIER_PROXY_SSL_HEADER.
export DOSSIER_HTTPS="${DOSSIER_HTTPS:-0}"
export WEB_BIND="${WEB_BIND:-${HOST:-127.0.0.1}:${PORT:-8000}}"
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-config.settings}"
PY=.venv/bin/python

echo "preparing: migrate, setup_schedules, collectstatic"
$PY manage.py migrate --noinput -v0
LOG_LEVEL=WARNING $PY manage.py setup_schedules
$PY manage.py collectstatic --noinput -v0

pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM EXIT

.venv/bin/gunicorn -c deploy/gunicorn.conf.py config.wsgi &
pids+=($!)
# On one host the worker runs below the web process's priority: a signature or a page waits for no bundle being
# packaged, and packaging takes every cycle the web process leaves (WORKER_NICENESS=0 runs them as equals).
nice -n "${WORKER_NICENESS:-10}" .venv/bin/celery -A config worker -l INFO --concurrency "${WORKER_CONCURRENCY:-2}" \
  -n "worker@%h" &
pids+=($!)
.venv/bin/celery -A config beat -l INFO --scheduler django_celery_beat.schedulers:DatabaseScheduler \
  --pidfile= &
pids+=($!)

echo ""
echo "  Dossier (gunicorn + worker + beat) is serving at http://${WEB_BIND}/ — Ctrl-C stops all three"
echo ""
# Returns as soon as one of them exits; the trap then stops the others.
wait -n "${pids[@]}"
