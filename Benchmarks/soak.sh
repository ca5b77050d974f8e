#!/usr/bin/env bash
# Soak: an agent with 20 s certificates under churning SDS streams and (fetch mode) a CA that is
# stopped and restarted every half minute; samples the agent's RSS, descriptors and threads and
# fails if they grow after warm-up beyond the bounds (RSS +20%, fds +10, threads +4).
#   Benchmarks/soak.sh [--minutes N] [--agent PATH] [--mode fetch|embedded] [soak.py options]
# The agent is --agent, else $SDS_AGENT_BIN, else a release build made here (.build-release).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${SDS_AGENT_VENV:-.venv}
if ! "$venv/bin/python" -c 'import grpc, jwt, envoy.service.secret.v3.sds_pb2_grpc' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet -r Tests/e2e/requirements.txt
fi
. Benchmarks/agent-binary.sh "$@"
exec "$venv/bin/python" Benchmarks/soak.py --agent "$agent" "${args[@]}"
