# Sourced by the install scripts of Debian packages whose service must never run
# here (deploy/alertmanager/install.sh, deploy/prometheus/install.sh).
#
#   install_without_service PACKAGE SERVICE PROCESS
#
# Installs PACKAGE from Debian's mirrors (--no-install-recommends) while
# service starts are forbidden, then makes sure the unit SERVICE is stopped and
# disabled and that no process named PROCESS (as `ss -p` shows it, clipped to
# 15 characters) listens: the tests start their own instances on free loopback
# ports. Needs root (or sudo). Runs in a subshell, so its EXIT trap removes the
# temporary policy-rc.d however the install ends (an error, Ctrl-C, SIGTERM).

install_without_service() (
  set -euo pipefail
  package=$1 service=$2 process=$3
  policy=/usr/sbin/policy-rc.d
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi

  # Debian's way to keep maintainer scripts from starting services: a
  # policy-rc.d that answers 101 ("action forbidden"). Installed only for the
  # duration of the install, and only if the machine has none of its own.
  own_policy=no
  if [ ! -e "$policy" ]; then
    trap 'if [ "$own_policy" = yes ]; then "${sudo[@]}" rm -f "$policy"; fi' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    own_policy=yes
    "${sudo[@]}" chmod 755 "$policy"
  fi

  echo "$package: installing the Debian package" >&2
  # Through env: sudo would drop an exported DEBIAN_FRONTEND.
  apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get)
  "${apt[@]}" update -qq || echo "$package: apt-get update failed; trying the cached lists" >&2
  "${apt[@]}" install -y -qq --no-install-recommends "$package" >/dev/null

  # Belt and braces: whatever started it (a booted systemd ignoring
  # policy-rc.d, a sysvinit script), the packaged service must not keep its port.
  if [ -d /run/systemd/system ]; then
    "${sudo[@]}" systemctl disable --now "$service.service" >/dev/null 2>&1 || true
  elif [ -x "/etc/init.d/$service" ]; then
    "${sudo[@]}" "/etc/init.d/$service" stop >/dev/null 2>&1 || true
  fi
  if command -v ss >/dev/null; then
    # read it whole first: `grep -q` closing the pipe early would fail `ss` (pipefail)
    listening=$("${sudo[@]}" ss -ltnpH)
    if grep -q "\"$process\"" <<<"$listening"; then
      echo "$package: the packaged service still listens; stop it:" >&2
      grep "\"$process\"" <<<"$listening" >&2
      exit 1
    fi
  fi
)
