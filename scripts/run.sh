#!/usr/bin/env bash
# Install and start tam-portal on the embedded default: SQLite and development keys in ./data,
# Celery tasks in-process. The admin is at http://127.0.0.1:8000/admin/, TEEP/HTTP at /tam.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap-venv.sh
export DEBUG="${DEBUG:-true}"
.venv/bin/python manage.py migrate --no-input
.venv/bin/python manage.py tam_bootstrap
exec .venv/bin/python manage.py runserver "${BIND:-127.0.0.1:8000}"
