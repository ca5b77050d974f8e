#!/usr/bin/env bash
# Proves the committed generated code matches the .proto files: regenerates into a temporary
# folder and diffs. Needs protoc (Debian's protobuf-compiler) and builds the plugins from the
# package's dependencies; ./dev/test runs it.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
dev/generate-protos.sh "$tmp" >/dev/null
status=0
for f in "$tmp"/*.swift; do
  diff -u "Sources/EnvoySDSProtos/$(basename "$f")" "$f" || status=1
done
[ "$status" = 0 ] && echo "generated code is up to date"
exit $status
