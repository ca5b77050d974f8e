#!/usr/bin/env bash
# What Envoy 1.40 does past the agent's 4,096 streams per connection: one Envoy, N SDS
# subscriptions on one SDS cluster, and what each side holds once they settle.
#   Benchmarks/envoy-stream-limit.sh [--agent PATH] [--clusters N] [--max-requests M] [--seconds S]
# The agent is --agent, else $SDS_AGENT_BIN, else a release build made here (.build-release).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${SDS_AGENT_VENV:-.venv}
. Benchmarks/agent-binary.sh "$@"
exec "$venv/bin/python" Benchmarks/envoy_stream_limit.py --agent "$agent" "${args[@]}"
