#!/usr/bin/env bash
# `make run`: the API under gunicorn, with a Celery worker (every queue) and the beat
# scheduler beside it, so exports are built and audit events chained and checkpointed.
# Ctrl-C stops all of them. Usage: scripts/serve.sh BIN_DIR HOST PORT
set -euo pipefail

BIN=$1 HOST=$2 PORT=$3
STATE="${LOCAL_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/compliance-gateway}"  # as the settings say
mkdir -p "$STATE"
export DJANGO_SETTINGS_MODULE=config.settings.development

"$BIN/celery" -A config worker --beat --schedule "$STATE/celerybeat-schedule" \
  -Q default,keys,audit --pool threads --concurrency 4 --loglevel warning &
worker=$!
trap 'kill "$worker" 2>/dev/null || true; wait "$worker" 2>/dev/null || true' EXIT INT TERM

# Four gevent workers, limits and logs in config/gunicorn.py: the access log names the path, never the query string.
"$BIN/gunicorn" config.wsgi:application --config python:config.gunicorn --bind "$HOST:$PORT"
