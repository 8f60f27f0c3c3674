#!/usr/bin/env bash
# Installs the system tools signspool's tests need when they are missing: redis-server (tests
# start their own instances), openssl (signature and timestamp verification), chromium (the /docs
# page test, driven by playwright-core), poppler-utils (pdfsig/pdfinfo judge PAdES) and xmlsec1
# (judges XAdES), jq (the curl tour of docs/getting-started.md). Debian/Ubuntu only; elsewhere it
# says what to install.
set -euo pipefail
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
[ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ] || missing+=(chromium)
command -v pdfsig >/dev/null 2>&1 || missing+=(poppler-utils)
command -v xmlsec1 >/dev/null 2>&1 || missing+=(xmlsec1)
command -v jq >/dev/null 2>&1 || missing+=(jq)
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
else
  echo "signspool: please install: ${missing[*]} (or set REDIS_URL for tests)" >&2
  exit 1
fi
