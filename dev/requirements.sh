#!/usr/bin/env bash
# What the test suite needs from Debian, by the part of ./dev/test that needs it: the one list,
# used by ./dev/test (and so by .ci/run) and by dev/package-deb.sh.
#
# usage: dev/requirements.sh install [PART...]  as root: apt-get install what is missing; as anyone
#                                               else: print the apt-get line and the parts that need it,
#                                               exit 1
#        dev/requirements.sh check [PART...]    print what is missing, by part; exit 1 if anything is
#        dev/requirements.sh missing-parts [PART...]  the parts that cannot run here, one a line
# Without PART, every part. Parts: generated-code units package e2e boot.
set -euo pipefail

# command  Debian package  parts of ./dev/test that run it
requirements=(
  "protoc protobuf-compiler generated-code"
  "systemd-analyze systemd units,e2e"
  "dpkg-deb dpkg package"
  "dpkg-shlibdeps dpkg-dev package"
  "strip binutils package"
  "patchelf patchelf package"
  "lintian lintian package"
  "openssl openssl e2e"
  "curl curl e2e"
  "faketime faketime e2e"
  "setpriv util-linux e2e"
  "systemd-socket-activate systemd e2e"
  "python3-venv python3-venv e2e"
  "systemd-nspawn systemd-container boot"
  "mmdebstrap mmdebstrap boot"
  "nsenter util-linux boot"
  "zstd zstd boot"
  "initdb postgresql e2e"
  "ip iproute2 e2e"
)

# What each part is, for the message that names what a missing package stops.
describe() {
  case "$1" in
  generated-code) echo "the check that the committed protobuf code is current" ;;
  units) echo "systemd-analyze verify of the units" ;;
  package) echo "the Debian package and lintian" ;;
  e2e) echo "the end-to-end tests with Envoy" ;;
  boot) echo "the package booted under systemd (root only)" ;;
  esac
}

present() {
  case "$1" in
  python3-venv) python3 -c 'import venv, ensurepip' 2>/dev/null ;;
  initdb) compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null ;;
  *) command -v "$1" >/dev/null ;;
  esac
}

# Prints "package part,part" for every missing command whose parts meet the wanted ones.
missing() {
  local wanted=("$@") entry tool package parts part
  for entry in "${requirements[@]}"; do
    read -r tool package parts <<<"$entry"
    present "$tool" && continue
    if [ ${#wanted[@]} -gt 0 ]; then
      local hit=0
      for part in ${parts//,/ }; do
        for w in "${wanted[@]}"; do [ "$part" = "$w" ] && hit=1; done
      done
      [ "$hit" = 1 ] || continue
    fi
    echo "$package $parts"
  done
}

report() {
  local rows=$1
  local packages parts
  packages=$(cut -d' ' -f1 <<<"$rows" | sort -u | tr '\n' ' ')
  parts=$(cut -d' ' -f2 <<<"$rows" | tr ',' '\n' | sort -u)
  echo "missing Debian packages: ${packages% }" >&2
  echo "install them with:" >&2
  echo "  apt-get update && apt-get install -y ${packages% }" >&2
  echo "without them these parts of the suite cannot run:" >&2
  while read -r part; do echo "  - $part: $(describe "$part")" >&2; done <<<"$parts"
}

command=${1:-check}
shift || true
case "$command" in
check)
  rows=$(missing "$@")
  [ -z "$rows" ] && exit 0
  report "$rows"
  exit 1
  ;;
install)
  rows=$(missing "$@")
  [ -z "$rows" ] && exit 0
  if [ "$(id -u)" != 0 ]; then
    report "$rows"
    exit 1
  fi
  packages=$(cut -d' ' -f1 <<<"$rows" | sort -u | tr '\n' ' ')
  echo "== installing Debian packages the suite needs: ${packages% }" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq $packages >/dev/null
  rows=$(missing "$@")
  [ -z "$rows" ] && exit 0
  echo "still missing after apt-get install:" >&2
  report "$rows"
  exit 1
  ;;
missing-parts)
  missing "$@" | cut -d' ' -f2 | tr ',' '\n' | sort -u | sed '/^$/d'
  ;;
*)
  echo "usage: dev/requirements.sh install|check [PART...] | missing-parts" >&2
  exit 2
  ;;
esac
