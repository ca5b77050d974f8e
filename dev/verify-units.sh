#!/usr/bin/env bash
# Verifies the systemd units with systemd-analyze, pointing ExecStart at a built binary
# (verify insists the command exists). Any diagnostic fails: systemd-analyze only warns
# about unknown keys. The service is verified with its exe-rules.conf drop-in.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-$(swift build --show-bin-path)/sds-agent}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
sed "s|/usr/bin/sds-agent|$binary|" systemd/sds-agent.service > "$tmp/sds-agent.service"
cp -r systemd/sds-agent.socket systemd/sds-agent.service.d "$tmp/"
# By name, with $tmp first in the unit path (the trailing colon keeps the default ones): only
# then does verify read the drop-in directory.
output=$(cd "$tmp" && SYSTEMD_UNIT_PATH="$tmp:" SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no \
  sds-agent.socket sds-agent.service 2>&1) || {
  echo "$output"; exit 1; }
if [ -n "$output" ]; then echo "$output"; exit 1; fi
echo "systemd units verified: sds-agent.socket sds-agent.service (+ sds-agent.service.d/exe-rules.conf)"
