#!/usr/bin/env bash
# Install Debian's prometheus-alertmanager for the real-client test
# (tests/ingest/test_alertmanager_client.py), without ever running its service.
#
#   deploy/alertmanager/install.sh
#
# Idempotent: does nothing when /usr/bin/prometheus-alertmanager exists. The
# tests start their own Alertmanager on free loopback ports; the packaged
# service would listen on 9093, the port of our Kafka controller
# (deploy/lib/debian-package.sh keeps it from running).
set -euo pipefail

binary=/usr/bin/prometheus-alertmanager

if [ ! -x "$binary" ]; then
  # shellcheck source=../lib/debian-package.sh
  . "$(dirname "$0")/../lib/debian-package.sh"
  install_without_service prometheus-alertmanager prometheus-alertmanager prometheus-aler
fi

echo "alertmanager: $("$binary" --version 2>&1 | head -1)"
