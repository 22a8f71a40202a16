#!/usr/bin/env bash
# Install the Debian packages the compliance documents need:
#
#   fonts-noto-cjk   fonts that render Chinese (WeasyPrint embeds them in the PDF)
#   libpango-1.0-0, libpangoft2-1.0-0
#                    the text layout WeasyPrint draws with
#   poppler-utils    pdftotext and pdffonts, which the tests read the PDFs with
#   chromium         the browser the tests open the HTML report in (Playwright)
#
#   deploy/reports/install.sh            everything (make test)
#   deploy/reports/install.sh runtime    only what the engine renders with (make run)
#
# Idempotent: does nothing when every package is installed. Needs root (or sudo).
# None of these packages runs a service.
set -euo pipefail

packages=(fonts-noto-cjk libpango-1.0-0 libpangoft2-1.0-0)
if [ "${1:-}" != runtime ]; then
  packages+=(poppler-utils chromium)
fi
missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
  echo "reports: installing ${missing[*]} from Debian" >&2
  # Through env: sudo would drop an exported DEBIAN_FRONTEND.
  apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get)
  "${apt[@]}" update -qq || echo "reports: apt-get update failed; trying the cached lists" >&2
  "${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

echo "reports: $(fc-list ':lang=zh-cn' family | head -1)"
if [ "${1:-}" != runtime ]; then
  echo "reports: $(pdftotext -v 2>&1 | head -1); $(chromium --version 2>/dev/null)"
fi
