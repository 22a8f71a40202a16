#!/usr/bin/env bash
# Install Debian's prometheus-alertmanager for the real-client test
# (tests/ingest/test_alertmanager_client.py), without ever running its service.
#
#   deploy/alertmanager/install.sh
#
# Idempotent: does nothing when /usr/bin/prometheus-alertmanager exists. The
# tests start their own Alertmanager on free loopback ports; the packaged
# service would listen on 9093, the port of our Kafka controller, so the
# install forbids service starts (policy-rc.d exit 101) and stops and disables
# the unit should anything have started it anyway. Needs root (or sudo) and
# Debian's package mirrors.
set -euo pipefail

binary=/usr/bin/prometheus-alertmanager
policy=/usr/sbin/policy-rc.d

if [ -x "$binary" ]; then
  echo "alertmanager: $("$binary" --version 2>&1 | head -1)"
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

echo "alertmanager: installing the Debian package prometheus-alertmanager" >&2
# Through env: sudo would drop an exported DEBIAN_FRONTEND.
apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get)
"${apt[@]}" update -qq || echo "alertmanager: apt-get update failed; trying the cached lists" >&2
"${apt[@]}" install -y -qq --no-install-recommends prometheus-alertmanager >/dev/null

# Belt and braces: whatever started it (a booted systemd ignoring policy-rc.d,
# a sysvinit script), the packaged service must not keep port 9093.
if [ -d /run/systemd/system ]; then
  "${sudo[@]}" systemctl disable --now prometheus-alertmanager.service >/dev/null 2>&1 || true
elif [ -x /etc/init.d/prometheus-alertmanager ]; then
  "${sudo[@]}" /etc/init.d/prometheus-alertmanager stop >/dev/null 2>&1 || true
fi
if command -v ss >/dev/null && ss -ltnpH | grep -q '"prometheus-aler'; then
  echo "alertmanager: the packaged service still listens; stop it:" >&2
  ss -ltnpH | grep '"prometheus-aler' >&2
  exit 1
fi

"$binary" --version 2>&1 | head -1
