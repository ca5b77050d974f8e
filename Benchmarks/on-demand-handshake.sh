#!/usr/bin/env bash
# First-handshake latency of on-demand certificates next to a certificate Envoy already holds.
#   Benchmarks/on-demand-handshake.sh [--agent PATH] [--count N]
# The agent is --agent, else $SDS_AGENT_BIN, else a release build made here (.build-release).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${SDS_AGENT_VENV:-.venv}
. Benchmarks/agent-binary.sh "$@"
exec "$venv/bin/python" Benchmarks/on_demand_handshake.py --agent "$agent" "${args[@]}"
