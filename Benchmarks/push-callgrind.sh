#!/usr/bin/env bash
# What one push costs the agent, in instructions: a figure a noisy, shared machine repeats.
# Runs the streams phase twice with the release agent under `valgrind --tool=callgrind`, once
# with one forced rotation and once with 1+EXTRA; the difference of the agent's total
# instructions, divided by the extra pushes (EXTRA × the `default` streams), is what a push
# costs: the rotation's signal, each stream's response, the HTTP/2 frames and the socket writes.
# The rotation itself (a key and a certificate) is in the difference too, once per fan-out.
# Needs valgrind (apt install valgrind), objcopy (binutils) and a C compiler.
#
# usage: Benchmarks/push-callgrind.sh [--streams N] [--extra-fan-outs K] [--agent PATH]
#                                     [--bench PATH] [--keep]
#   --streams N          streams held open (half of them `default`; default 2000)
#   --extra-fan-outs K   rotations in the second run beyond the first's one (default 4)
#   --agent PATH         the agent (default: a release build in .build-release)
#   --bench PATH         sds-agent-bench (default: the release build beside it; any build will do,
#                        as only the agent runs under callgrind)
#   --keep               keep the callgrind files (printed), for callgrind_annotate
set -euo pipefail
cd "$(dirname "$0")/.."
streams=2000
extra=4
agent=""
bench=""
keep=false
while [ $# -gt 0 ]; do
  case "$1" in
  --streams) streams=$2; shift 2 ;;
  --extra-fan-outs) extra=$2; shift 2 ;;
  --agent) agent=$2; shift 2 ;;
  --bench) bench=$2; shift 2 ;;
  --keep) keep=true; shift ;;
  *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v valgrind > /dev/null || { echo "needs valgrind (apt install valgrind)" >&2; exit 1; }
if [ -z "$agent" ]; then
  swift build -c release --scratch-path .build-release --product sds-agent
  agent=$(pwd)/.build-release/release/sds-agent
fi
if [ -z "$bench" ]; then
  swift build -c release --scratch-path .build-release --product sds-agent-bench
  bench=$(pwd)/.build-release/release/sds-agent-bench
fi
out=$(mktemp -d /tmp/sds-agent-callgrind.XXXXXX)
# Valgrind 3.19 (Debian 12) cannot read the DWARF 5 the Swift toolchain writes: it profiles a
# copy without debug information (the symbols stay, so functions keep their names).
objcopy --strip-debug "$agent" "$out/sds-agent"
# libdispatch passes sigsuspend a mask in read-only memory, which valgrind before 3.20 writes
# to, and crashes; this preloaded sigsuspend hands the kernel a copy instead.
cat > "$out/sigsuspend.c" <<'SHIM'
#define _GNU_SOURCE
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>
int sigsuspend(const sigset_t *mask) {
  sigset_t copy = *mask;
  return (int)syscall(SYS_rt_sigsuspend, &copy, _NSIG / 8);
}
SHIM
cc -shared -fPIC -O2 -o "$out/sigsuspend.so" "$out/sigsuspend.c"

# The bench starts the agent through this wrapper; valgrind runs in the agent's own process, so
# the bench's SIGTERM reaches the agent, which exits and so writes its callgrind file (the bench
# waits SDS_AGENT_BENCH_STOP_SECONDS for that, not its usual 5 s).
cat > "$out/agent.sh" <<WRAPPER
#!/bin/sh
export LD_PRELOAD=$out/sigsuspend.so
exec valgrind --tool=callgrind --callgrind-out-file=$out/callgrind.\$RUN.%p "$out/sds-agent" "\$@" 2>> $out/valgrind.log
WRAPPER
chmod +x "$out/agent.sh"
export SDS_AGENT_BENCH_STOP_SECONDS=300

# run NAME FAN_OUTS: the bench's report on stdout; the agent's instructions in $out/callgrind.NAME.*
run() {
  RUN=$1 "$bench" --agent "$out/agent.sh" --phases streams --streams "$streams" --fan-outs "$2" > "$out/report.$1"
  local totals
  totals=$(grep -h "^totals:" "$out"/callgrind."$1".* | awk '{s += $2} END {printf "%.0f", s}')
  [ -n "$totals" ] || { echo "no callgrind totals for run $1 (see $out/valgrind.log)" >&2; exit 1; }
  echo "$totals"
}
one=$(run one 1)
more=$(run more $((1 + extra)))
pushed=$(grep -A 4 "^### Fan-out" "$out/report.more" | awk -F'|' 'NR == 5 {gsub(/ /, "", $3); print $3}')
[ -n "$pushed" ] || pushed=$(((streams + 1) / 2))
pushes=$((extra * pushed))
echo "streams: $streams (default: $pushed), extra fan-outs: $extra, extra pushes: $pushes"
echo "agent instructions, 1 fan-out: $one"
echo "agent instructions, $((1 + extra)) fan-outs: $more"
awk -v a="$one" -v b="$more" -v n="$pushes" \
  'BEGIN {printf "instructions per push: %.0f\n", (b - a) / n}'
echo "fan-outs under callgrind (wall clock meaningless here):"
sed -n '/Fan-out/,$p' "$out/report.more"
if $keep; then
  echo "callgrind files: $out (callgrind_annotate $out/callgrind.more.*)"
else
  rm -rf "$out"
fi
