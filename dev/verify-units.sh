#!/usr/bin/env bash
# Verifies the systemd units with systemd-analyze, pointing ExecStart at a built binary
# (verify insists the command exists). Any diagnostic fails: systemd-analyze only warns
# about unknown keys.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-$(swift build --show-bin-path)/sds-agent}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
sed "s|/usr/local/bin/sds-agent|$binary|" systemd/sds-agent.service > "$tmp/sds-agent.service"
cp systemd/sds-agent.socket "$tmp/"
output=$(cd "$tmp" && SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no ./sds-agent.socket ./sds-agent.service 2>&1) || {
  echo "$output"; exit 1; }
if [ -n "$output" ]; then echo "$output"; exit 1; fi
echo "systemd units verified: sds-agent.socket sds-agent.service"
