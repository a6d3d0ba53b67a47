#!/usr/bin/env bash
# Install everything the project needs from nothing: uv, the locked Python environment, and the Debian tools
# that the tests and bundles use (chromium for browser tests, zstd for tar --zstd, promtool from the prometheus
# package for the alert rules and metrics checks, poppler-utils' pdftotext for the PDF rendition's tests), and
# the fonts the PDF rendition embeds (fonts-dejavu-core, needed to package; docs/exports.md, "The rendition").
# Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

export UV_PYTHON_DOWNLOADS=never
if ! command -v uv >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check uv 2>&1 | grep -v "is ignored" || true
fi
UV=$(command -v uv || echo "python3 -m uv")

groups=()
[ "${1:-}" = "--dev" ] && groups=(--group dev)
$UV sync --frozen -p 3.11 "${groups[@]}" --quiet

missing=()
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf ] || missing+=(fonts-dejavu-core)
if [ "${1:-}" = "--dev" ]; then
  command -v pdftotext >/dev/null 2>&1 || missing+=(poppler-utils)
  [ -x /usr/lib/chromium/chromium ] || missing+=(chromium)
  command -v zstd >/dev/null 2>&1 || missing+=(zstd)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)  # fault drills start their own Redis
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "warning: missing ${missing[*]} (install them with apt-get); packaging or tests that need them fail" >&2
  fi
fi
