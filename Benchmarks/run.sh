#!/usr/bin/env bash
# Reproduces the README's Performance figures in one run: a release build of the agent and the
# benchmark tool (in .build-release), then
#   1. sds-agent-bench's phases, each beside its peer (extra arguments go to it, e.g.
#      Benchmarks/run.sh --streams 1000 --seconds 5);
#   2. the instructions per push under callgrind (Benchmarks/push-callgrind.sh; skipped, with a
#      line saying so, without valgrind);
#   3. exec to READY and an idle agent (Benchmarks/idle.sh) for SDS_AGENT_IDLE_MINUTES (10).
# The soak at 100,000 streams is its own command: Benchmarks/soak.sh.
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

echo
echo "## Instructions per push (callgrind)"
if command -v valgrind > /dev/null; then
  Benchmarks/push-callgrind.sh --agent "$bin/sds-agent" --bench "$bin/sds-agent-bench"
else
  echo "skipped: needs valgrind (apt install valgrind)"
fi

echo
echo "## Startup to READY, and an idle agent"
Benchmarks/idle.sh --agent "$bin/sds-agent" --minutes "${SDS_AGENT_IDLE_MINUTES:-10}"
