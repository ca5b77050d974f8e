#!/usr/bin/env bash
# Regenerates Sources/EnvoySDSProtos/*.pb.swift and *.grpc.swift from the .proto subset in
# Sources/EnvoySDSProtos/Protos with Debian's protoc and the Swift plugins built from the
# package's own dependencies. Usage: dev/generate-protos.sh [OUTPUT_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
out=${1:-Sources/EnvoySDSProtos}
protos=Sources/EnvoySDSProtos/Protos

command -v protoc >/dev/null || { echo "protoc not found: apt-get install protobuf-compiler" >&2; exit 1; }
swift build --product protoc-gen-swift >/dev/null
swift build --product protoc-gen-grpc-swift-2 >/dev/null
bin=$(swift build --show-bin-path)

files=$(cd "$protos" && find . -name '*.proto' | sed 's|^\./||' | sort)
mkdir -p "$out"
out=$(cd "$out" && pwd)
find "$out" -maxdepth 1 \( -name '*.pb.swift' -o -name '*.grpc.swift' \) -delete
# google/protobuf/*.proto come from protoc's own include directory.
(cd "$protos" && protoc \
  --plugin=protoc-gen-swift="$bin/protoc-gen-swift" \
  --swift_opt=Visibility=Public,FileNaming=PathToUnderscores \
  --swift_out="$out" \
  -I . $files)
services=$(cd "$protos" && grep -l '^service ' $files)
(cd "$protos" && protoc \
  --plugin=protoc-gen-grpc-swift="$bin/protoc-gen-grpc-swift-2" \
  --grpc-swift_opt=Visibility=Public,FileNaming=PathToUnderscores,Server=true,Client=true \
  --grpc-swift_out="$out" \
  -I . $services)
echo "generated into $out:"; ls "$out" | grep -E '\.(pb|grpc)\.swift$'
