#!/usr/bin/env bash
# Where the agent's per-stream memory goes: runs the streams phase of the benchmark with the
# release agent under heaptrack's allocation tracker, then prints the peak consumers. Needs
# heaptrack (apt install heaptrack). Extra arguments go to sds-agent-bench, e.g. --streams 1000.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --scratch-path .build-release --product sds-agent
swift build -c release --scratch-path .build-release --product sds-agent-bench
bin=$(pwd)/.build-release/release
heaptrack_lib=$(dirname "$(readlink -f "$(command -v heaptrack)")")/../lib/heaptrack
[ -f "$heaptrack_lib/libheaptrack_preload.so" ] || heaptrack_lib=/usr/lib/heaptrack
out=$(mktemp -d /tmp/sds-agent-heaptrack.XXXXXX)
# The bench starts the agent through this wrapper, which preloads the tracker into the agent
# itself (not into heaptrack's shell script), so the bench's SIGTERM reaches the agent.
cat > "$out/agent.sh" <<WRAPPER
#!/bin/sh
exec env LD_PRELOAD=$heaptrack_lib/libheaptrack_preload.so DUMP_HEAPTRACK_OUTPUT=$out/raw.\$\$ "$bin/sds-agent" "\$@"
WRAPPER
chmod +x "$out/agent.sh"
"$bin/sds-agent-bench" --agent "$out/agent.sh" --phases streams --streams 10000 "$@"
for raw in "$out"/raw.*; do
  "$heaptrack_lib/libexec/heaptrack_interpret" < "$raw" | zstd -q > "$raw.zst"
  rm "$raw"
  heaptrack_print -n 4 -s 12 "$raw.zst" | sed -n '/PEAK MEMORY CONSUMERS/,/PEAK INSTANCES/p' \
    | awk '/peak memory consumed/ {print} /consumed over/ {line=$0; getline; print "  " line " " substr($1, 1, 100)}'
  heaptrack_print "$raw.zst" | grep -E "^peak heap"
done
echo "full data: $out"
