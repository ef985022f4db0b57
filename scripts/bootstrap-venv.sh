# Sourced by run.sh and test.sh: make sure ./.venv exists with the project installed.
# Works on a fresh Debian machine with only Python 3.11: installs python3-venv if missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
EXTRAS="${1:-}"
if [ ! -x .venv/bin/python ]; then
  if ! "$PYTHON" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "python3-venv is missing: installing it with apt-get" >&2
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      "$PYTHON" -m venv .venv
    else
      echo "Cannot create a virtualenv: install python3-venv (sudo apt-get install python3-venv)" >&2
      exit 1
    fi
  fi
fi
stamp=".venv/.installed${EXTRAS:+-$EXTRAS}"
# The project installed with extras (test.sh) also serves run.sh: no second install.
if [ -z "$EXTRAS" ] && [ ! -f "$stamp" ]; then
  for other in .venv/.installed-*; do
    if [ -f "$other" ] && [ ! pyproject.toml -nt "$other" ]; then stamp="$other"; break; fi
  done
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".${EXTRAS:+[$EXTRAS]}"
  touch "$stamp"
fi
