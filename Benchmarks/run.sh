#!/usr/bin/env bash
# Reproduces the README's Performance figures: a release build of the agent and the benchmark
# tool (in .build-release), then the full run. Extra arguments go to sds-agent-bench, e.g.
#   Benchmarks/run.sh --streams 1000 --seconds 5
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${SDS_AGENT_VENV:-.venv}
if ! "$venv/bin/python" -c 'import grpc, envoy.service.discovery.v3.discovery_pb2' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet -r Tests/e2e/requirements.txt
fi
swift build -c release --scratch-path .build-release --product sds-agent
swift build -c release --scratch-path .build-release --product sds-agent-bench
bin=.build-release/release
"$bin/sds-agent-bench" --agent "$bin/sds-agent" --python "$venv/bin/python" "$@"
