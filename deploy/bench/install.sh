#!/usr/bin/env bash
# Install the benchmark tools:
# - wrk (closed-loop HTTP load, the maximum rate), from Debian's packages;
# - vegeta (open-loop HTTP load at a constant rate, for latency at a given
#   load), built with Go from the Go module proxy into .data/bench/bin
#   (git-ignored), where bench/ingest.py looks for it.
# Idempotent. wrk needs root (or sudo) and Debian's package mirrors; vegeta
# needs Go >= 1.22 (on PATH or in /usr/local/go) and the Go module proxy.
set -euo pipefail

VEGETA_VERSION=v12.13.0
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$root/.data/bench/bin

if ! command -v wrk >/dev/null; then
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq || true
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi

if [ ! -x "$bin/vegeta" ] || [ "$(cat "$bin/vegeta.version" 2>/dev/null)" != "$VEGETA_VERSION" ]; then
  go=$(command -v go || echo /usr/local/go/bin/go)
  if [ ! -x "$go" ]; then
    echo "bench: vegeta needs Go >= 1.22 (not found on PATH nor in /usr/local/go)" >&2
    exit 1
  fi
  mkdir -p "$bin"
  GOBIN=$bin "$go" install "github.com/tsenart/vegeta/v12@$VEGETA_VERSION"
  echo "$VEGETA_VERSION" >"$bin/vegeta.version"
fi
