#!/usr/bin/env bash
# Revocation propagation: `ca revoke` to Envoy refusing the revoked certificate.
#   Benchmarks/revocation.sh [--agent PATH] [--runs N]
# The agent is --agent, else $SDS_AGENT_BIN, else a release build made here (.build-release).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${SDS_AGENT_VENV:-.venv}
agent=${SDS_AGENT_BIN:-}
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --agent) agent=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
if [ -z "$agent" ]; then
  swift build -c release --scratch-path .build-release --product sds-agent
  agent=.build-release/release/sds-agent
fi
exec "$venv/bin/python" Benchmarks/revocation.py --agent "$agent" "${args[@]}"
