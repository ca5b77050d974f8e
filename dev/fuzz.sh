#!/usr/bin/env bash
# Fuzzes the parsers and the SDS stream state machine with libFuzzer and AddressSanitizer.
#   dev/fuzz.sh [SECONDS] [TARGET…]   each target (default: all) for SECONDS (default 20)
#   dev/fuzz.sh --smoke               each target for 10 s (dev/test runs this)
# Targets run as many at once as there are cores (each fuzzer is one thread).
# Targets are Sources/sds-agent-fuzz/FuzzTarget+*.swift; their seeds are Tests/fuzz-corpus/<target>/.
# The instrumented build lives in .build-fuzz (every dependency is compiled with the sanitizers).
# New coverage goes to .build-fuzz/corpus/<target>/, never into the committed seeds; crashes go to
# .build-fuzz/crashes/ and make the script exit 1. Replay one with the ordinary build:
#   swift run sds-agent-fuzz <target> <crash file>
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=20
if [ "${1:-}" = --smoke ]; then
  seconds=10
  shift
elif [[ "${1:-}" =~ ^[0-9]+$ ]]; then
  seconds=$1
  shift
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for dir in Tests/fuzz-corpus/*/; do
    targets+=("$(basename "$dir")")
  done
fi

scratch=.build-fuzz
echo "== building sds-agent-fuzz with -sanitize=fuzzer,address ($scratch)"
fuzz_flags=(--scratch-path "$scratch" -c debug -Xswiftc -sanitize=fuzzer,address -Xswiftc -DSDS_AGENT_FUZZING)
swift build "${fuzz_flags[@]}" --product sds-agent-fuzz
bin="$(swift build "${fuzz_flags[@]}" --show-bin-path)/sds-agent-fuzz"

crashes=$scratch/crashes
mkdir -p "$crashes"
for target in "${targets[@]}"; do
  [ -d "Tests/fuzz-corpus/$target" ] || { echo "no target $target (no Tests/fuzz-corpus/$target)" >&2; exit 2; }
done

# One target: its log in $scratch/<target>.log, exit status 1 if libFuzzer found something.
fuzz_one() {
  local target=$1
  mkdir -p "$scratch/corpus/$target"
  # Swift's backtracer would wait on a crashing process; libFuzzer reports crashes itself.
  # Leak checks are off: the Swift runtime's caches look like leaks to LeakSanitizer.
  SWIFT_BACKTRACE=enable=no FUZZ_TARGET=$target ASAN_OPTIONS=detect_leaks=0 "$bin" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$crashes/$target-" "$scratch/corpus/$target" "Tests/fuzz-corpus/$target" \
    >"$scratch/$target.log" 2>&1
}

# As many targets at once as there are cores: each fuzzer is one thread.
parallel=$(nproc)
failed=()
for ((first = 0; first < ${#targets[@]}; first += parallel)); do
  batch=("${targets[@]:first:parallel}")
  pids=()
  for target in "${batch[@]}"; do
    echo "== fuzzing $target for ${seconds}s"
    fuzz_one "$target" &
    pids+=($!)
  done
  for i in "${!batch[@]}"; do
    target=${batch[$i]}
    if ! wait "${pids[$i]}"; then
      failed+=("$target")
      grep -E "ERROR|Fatal error|invariant violated|SUMMARY|Test unit written" "$scratch/$target.log" >&2 || true
    fi
    echo "$target: $(grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$scratch/$target.log" | tr '\n' ' ')"
  done
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found crashes in: ${failed[*]}; inputs in $crashes/, logs in $scratch/<target>.log" >&2
  echo "replay: swift run sds-agent-fuzz <target> $crashes/<file>; keep it as Tests/fuzz-corpus/<target>/crash-…" >&2
  exit 1
fi
echo "fuzzing found nothing in ${targets[*]}"
