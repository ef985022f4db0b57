#!/usr/bin/env bash
# Install the test dependencies and run the whole suite. Honors DATABASE_URL and
# CELERY_BROKER_URL (CI points them at PostgreSQL and Redis); extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap-venv.sh test
export DATA_DIR="${DATA_DIR:-$(mktemp -d)}"
mkdir -p test-artifacts
exec .venv/bin/python -m pytest "$@"
