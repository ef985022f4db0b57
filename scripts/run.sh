#!/usr/bin/env bash
# Install and start tam-portal on the embedded default: SQLite and development keys in the data
# folder (./data, or $DATA_DIR), Celery tasks in-process.
#
# BIND=host:port (or just a port) chooses the address; it is remembered, with the URL devices
# fetch payloads from (TAM_PUBLIC_BASE_URL, derived from BIND unless given), in the data
# folder's .env, which every later `manage.py` reads (tam_portal/settings.py): the port chosen
# once is used everywhere. Other lines you add to that .env are kept.
#   --setup-only   migrate, create keys and the first account, write the .env; do not serve
set -euo pipefail
cd "$(dirname "$0")/.."
setup_only=""
for arg in "$@"; do
  case "$arg" in
    --setup-only) setup_only=1 ;;
    *) echo "usage: $0 [--setup-only]" >&2; exit 2 ;;
  esac
done
source scripts/bootstrap-venv.sh ""   # no extras (and not this script's own arguments)

data_dir="${DATA_DIR:-./data}"
env_file="$data_dir/.env"
# The last value of NAME in the data folder's .env, if any.
remembered() { if [ -f "$env_file" ]; then sed -n "s/^$1=//p" "$env_file" | tail -n 1; fi; }

old_bind="$(remembered BIND)"
bind="${BIND:-${old_bind:-127.0.0.1:8000}}"
case "$bind" in
  *[!0-9]*) ;;                      # host:port
  *) bind="127.0.0.1:$bind" ;;      # a port alone
esac
port="${bind##*:}"
host="${bind%:*}"
case "$port" in ''|*[!0-9]*) echo "BIND must be host:port or a port, not '$bind'" >&2; exit 2 ;; esac
# What a browser or an agent on this machine connects to.
case "$host" in
  0.0.0.0|'') url_host=127.0.0.1 ;;
  '[::]') url_host='[::1]' ;;
  *) url_host="$host" ;;
esac
url="http://$url_host:$port"

# TAM_PUBLIC_BASE_URL (payload URIs in the manifests the TAM builds): given, else the one
# remembered for this same BIND, else this server's URL.
public_url="${TAM_PUBLIC_BASE_URL:-}"
if [ -z "$public_url" ] && [ "$bind" = "$old_bind" ]; then
  public_url="$(remembered TAM_PUBLIC_BASE_URL)"
fi
public_url="${public_url:-$url}"

mkdir -p "$data_dir"
tmp="$(mktemp "$data_dir/.env.XXXXXX")"
{
  echo "# Written by scripts/run.sh (the embedded default); read by every manage.py command."
  echo "# The process environment wins over these lines; DEBUG=false there ignores this file."
  echo "DEBUG=true"
  echo "BIND=$bind"
  echo "TAM_PUBLIC_BASE_URL=$public_url"
  if [ -n "${ALLOWED_HOSTS:-}" ]; then echo "ALLOWED_HOSTS=$ALLOWED_HOSTS"; fi
  if [ -f "$env_file" ]; then
    grep -v -E '^(# Written by scripts/run.sh|# The process environment wins|DEBUG=|BIND=|TAM_PUBLIC_BASE_URL=)' "$env_file" \
      | { if [ -n "${ALLOWED_HOSTS:-}" ]; then grep -v '^ALLOWED_HOSTS='; else cat; fi; } || true
  fi
} > "$tmp"
mv "$tmp" "$env_file"

# From here on, settings come from the .env (the environment still wins where it is set).
.venv/bin/python manage.py migrate --no-input
.venv/bin/python manage.py tam_bootstrap
echo "tam-portal: $url/admin/ (the admin), $url/tam (TEEP/HTTP); settings in $env_file"
if [ "$public_url" != "$url" ]; then echo "payload URIs use TAM_PUBLIC_BASE_URL=$public_url"; fi
if [ -n "$setup_only" ]; then exit 0; fi
exec .venv/bin/python manage.py runserver "$bind"
