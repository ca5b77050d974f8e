#!/usr/bin/env bash
# Revocation propagation: `ca revoke` to Envoy refusing the revoked certificate.
#   Benchmarks/revocation.sh [--agent PATH] [--runs N]
# The agent is --agent, else $SDS_AGENT_BIN, else a release build made here (.build-release).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${SDS_AGENT_VENV:-.venv}
. Benchmarks/agent-binary.sh "$@"
exec "$venv/bin/python" Benchmarks/revocation.py --agent "$agent" "${args[@]}"
