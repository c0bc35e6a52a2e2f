#!/usr/bin/env bash
# What the side-by-side benchmark needs from Debian's packages: wrk (the load generator)
# and nginx-light (the anchor for serving files). A no-op when both are there.
set -euo pipefail
if command -v wrk >/dev/null && { command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; }; then
  exit 0
fi
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk nginx-light
