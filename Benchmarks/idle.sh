#!/usr/bin/env bash
# Startup to READY (exec → READY=1 on NOTIFY_SOCKET, warm state directory) and an idle agent's
# RSS, CPU, threads and descriptors over N minutes.
#   Benchmarks/idle.sh [--agent PATH] [--runs N] [--minutes M] [--every SECONDS]
# The agent is --agent, else $SDS_AGENT_BIN, else a release build made here (.build-release).
set -euo pipefail
cd "$(dirname "$0")/.."
. Benchmarks/agent-binary.sh "$@"
exec python3 Benchmarks/idle.py --agent "$agent" "${args[@]}"
