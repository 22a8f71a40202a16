#!/usr/bin/env bash
# Install the benchmark tools from Debian's packages: wrk (HTTP load).
# Idempotent; needs root (or sudo) and Debian's package mirrors.
set -euo pipefail
if command -v wrk >/dev/null; then exit 0; fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq || true
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null
