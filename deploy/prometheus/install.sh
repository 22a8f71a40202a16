#!/usr/bin/env bash
# Install Debian's prometheus (the server and promtool) for the rule tests
# (`make rules-test`, tests/deploy/test_prometheus_rules.py), without ever
# running its service.
#
#   deploy/prometheus/install.sh
#
# Idempotent: does nothing when /usr/bin/prometheus and /usr/bin/promtool
# exist. The tests start their own Prometheus on a free loopback port; the
# packaged service would listen on 9090 (next to our Kafka on 9092/9093).
# --no-install-recommends keeps out prometheus-node-exporter, which would be
# one more service (deploy/lib/debian-package.sh).
set -euo pipefail

binary=/usr/bin/prometheus
promtool=/usr/bin/promtool

if [ ! -x "$binary" ] || [ ! -x "$promtool" ]; then
  # shellcheck source=../lib/debian-package.sh
  . "$(dirname "$0")/../lib/debian-package.sh"
  install_without_service prometheus prometheus prometheus
fi

echo "prometheus: $("$binary" --version 2>&1 | head -1)"
echo "prometheus: $("$promtool" --version 2>&1 | head -1)"
