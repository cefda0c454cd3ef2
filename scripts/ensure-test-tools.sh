#!/usr/bin/env bash
# Installs the tools the bridge's browser and multi-replica tests need, from Debian
# packages, when they are missing: nginx (the load balancer in front of the bridge
# replicas) and chromium (driven by Playwright; no browser is ever downloaded).
# Idempotent and quick when both are present. Needs root (or sudo) to install.
set -euo pipefail

missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
[ -x /usr/bin/chromium ] || missing+=(chromium)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
  else
    echo "ensure-test-tools: need root to install ${missing[*]}" >&2
    exit 1
  fi
fi

echo "ensure-test-tools: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The package starts its own nginx on port 80 on some systems; the tests run their own.
if [ -x /usr/sbin/nginx ] && [ -f /run/nginx.pid ] && command -v service >/dev/null 2>&1; then
  $sudo service nginx stop >/dev/null 2>&1 || true
fi
echo "ensure-test-tools: done"
