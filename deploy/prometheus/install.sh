#!/usr/bin/env bash
# Install Debian's prometheus (the server and promtool) for the rule tests
# (`make rules-test`, tests/deploy/test_prometheus_rules.py), without ever
# running its service.
#
#   deploy/prometheus/install.sh
#
# Idempotent: does nothing when /usr/bin/prometheus and /usr/bin/promtool
# exist. The tests start their own Prometheus on a free loopback port; the
# packaged service would listen on 9090 (next to our Kafka on 9092/9093), so
# the install forbids service starts (policy-rc.d exit 101) and stops and
# disables the unit should anything have started it anyway. Only the server
# package: --no-install-recommends keeps out prometheus-node-exporter, which
# would be one more service. Needs root (or sudo) and Debian's package mirrors.
set -euo pipefail

binary=/usr/bin/prometheus
promtool=/usr/bin/promtool
policy=/usr/sbin/policy-rc.d

if [ -x "$binary" ] && [ -x "$promtool" ]; then
  echo "prometheus: $("$binary" --version 2>&1 | head -1)"
  echo "prometheus: $("$promtool" --version 2>&1 | head -1)"
  exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi

# Debian's way to keep maintainer scripts from starting services: a
# policy-rc.d that answers 101 ("action forbidden"). Installed only for the
# duration of the install, and only if the machine has none of its own.
own_policy=no
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
  "${sudo[@]}" chmod 755 "$policy"
  own_policy=yes
fi
cleanup() { if [ "$own_policy" = yes ]; then "${sudo[@]}" rm -f "$policy"; fi; }
trap cleanup EXIT

echo "prometheus: installing the Debian package prometheus" >&2
# Through env: sudo would drop an exported DEBIAN_FRONTEND.
apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get)
"${apt[@]}" update -qq || echo "prometheus: apt-get update failed; trying the cached lists" >&2
"${apt[@]}" install -y -qq --no-install-recommends prometheus >/dev/null

# Belt and braces: whatever started it (a booted systemd ignoring policy-rc.d,
# a sysvinit script), the packaged service must not keep port 9090.
if [ -d /run/systemd/system ]; then
  "${sudo[@]}" systemctl disable --now prometheus.service >/dev/null 2>&1 || true
elif [ -x /etc/init.d/prometheus ]; then
  "${sudo[@]}" /etc/init.d/prometheus stop >/dev/null 2>&1 || true
fi
if command -v ss >/dev/null && ss -ltnpH | grep -q '"prometheus",'; then
  echo "prometheus: the packaged service still listens; stop it:" >&2
  ss -ltnpH | grep '"prometheus",' >&2
  exit 1
fi

"$binary" --version 2>&1 | head -1
"$promtool" --version 2>&1 | head -1
