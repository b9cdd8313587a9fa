#!/usr/bin/env bash
# Installs the system tools the test suite drives as real peers, when missing:
# Debian's `prometheus` (prometheus + promtool: they scrape and judge /health/metrics),
# `dovecot-imapd` (the IMAP server the mail-order bot's tests start on loopback, as a plain process)
# and `chromium` (the admin UI's browser tests drive /usr/bin/chromium).
# `pnpm test` itself never installs anything; this script is the first step of the
# README's test command and of .ci/run. Idempotent: does nothing when all are present.
set -euo pipefail

missing=()
command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
dpkg -s dovecot-imapd >/dev/null 2>&1 && [ -x /usr/sbin/dovecot ] || missing+=(dovecot-imapd)
[ -x /usr/bin/chromium ] || missing+=(chromium)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "[test tools] missing: ${missing[*]}; install these Debian/Ubuntu packages (e.g. sudo apt-get install ${missing[*]}) and run again" >&2
  exit 1
fi
echo "[test tools] installing Debian packages: ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
