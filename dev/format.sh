#!/usr/bin/env bash
# Formats the hand-written Swift code with the toolchain's swift-format and .swift-format.
# `dev/format.sh --lint` only reports.
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files '*.swift' | grep -v '^Sources/EnvoySDSProtos/')
if [ "${1:-}" = "--lint" ]; then
  swift format lint --strict $files
else
  swift format --in-place $files
fi
