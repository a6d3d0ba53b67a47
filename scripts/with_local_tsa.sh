#!/usr/bin/env bash
# Run a command with trusted time on (docs/trusted-time.md): unless DOSSIER_TSA_URLS is already set, start the
# local RFC 3161 TSA (scripts/local_tsa.py, keys under var/tsa/) beside it and point Dossier at it. The TSA
# stops when the command ends. Exit code: the command's.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${DOSSIER_TSA_URLS:-}" ]; then
  exec "$@"
fi
port="${DOSSIER_LOCAL_TSA_PORT:-8318}"
dir="var/tsa"
.venv/bin/python scripts/local_tsa.py --dir "$dir" --init-only > /dev/null
.venv/bin/python scripts/local_tsa.py --port "$port" --dir "$dir" > /dev/null &
tsa_pid=$!
trap 'kill "$tsa_pid" 2> /dev/null || true' EXIT
export DOSSIER_TSA_URLS="http://127.0.0.1:${port}/"
export DOSSIER_TSA_CA_FILE="$dir/root.pem"
"$@"
