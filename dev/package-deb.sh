#!/usr/bin/env bash
# Builds the Debian package sds-agent_<version>-<revision>_<arch>.deb with dpkg-deb and prints
# where it wrote it. The version is what the binary's `--version` prints, so the two agree.
#
# usage: dev/package-deb.sh [--binary PATH] [--revision N] [--output DIR] [--compression xz|gzip]
#
# Without --binary: a release build with the Swift runtime linked in
# (`swift build -c release --static-swift-stdlib`, in .build-static), which needs only libc,
# libstdc++, zlib and libgcc: the build to ship.
# With --binary PATH: that build as it is (CI packages the debug build ./dev/test made). The
# Swift runtime libraries it loads from the toolchain (its RUNPATH) are bundled under
# /usr/lib/sds-agent and its RUNPATH is set there with patchelf.
# --compression gzip: faster to build, larger (./dev/test uses it); the default is xz.
#
# Layout: /usr/bin/sds-agent; /lib/systemd/system/sds-agent.{service,socket};
# /usr/lib/sysusers.d/sds-agent.conf (account sds-agent, group envoy); the conffile
# /etc/sds-agent/config.yaml (systemd/config.minimal.yaml); /usr/share/sds-agent/exe-rules.conf
# (the drop-in for exe rules); example configs and Envoy bootstraps in
# /usr/share/doc/sds-agent/examples. Maintainer scripts: packaging/debian/.
set -euo pipefail
cd "$(dirname "$0")/.."

binary=""
revision=1
output=$PWD
compression=xz
while [ $# -gt 0 ]; do
  case "$1" in
  --binary) binary=$2; shift 2 ;;
  --revision) revision=$2; shift 2 ;;
  --output) output=$2; shift 2 ;;
  --compression) compression=$2; shift 2 ;;
  *) echo "usage: dev/package-deb.sh [--binary PATH] [--revision N] [--output DIR] [--compression xz|gzip]" >&2
    exit 2 ;;
  esac
done

# Checked before any build: a missing tool fails now, with the line that installs it. Only the
# --binary route bundles the toolchain's libraries and sets a RUNPATH, so only it needs patchelf.
needed=(dpkg-deb dpkg-shlibdeps strip readelf)
[ -n "$binary" ] && needed+=(patchelf)
absent=()
for tool in "${needed[@]}"; do command -v "$tool" >/dev/null || absent+=("$tool"); done
if [ ${#absent[@]} -gt 0 ]; then
  echo "package-deb: missing ${absent[*]}; install with: apt-get install dpkg-dev binutils$([ -n "$binary" ] && echo " patchelf")" >&2
  exit 1
fi

if [ -z "$binary" ]; then
  echo "== swift build -c release --static-swift-stdlib (.build-static)" >&2
  swift build -c release --static-swift-stdlib --product sds-agent --scratch-path .build-static >&2
  binary=$(swift build -c release --static-swift-stdlib --scratch-path .build-static --show-bin-path)/sds-agent
fi
[ -x "$binary" ] || { echo "package-deb: $binary is not an executable" >&2; exit 1; }

upstream=$("$binary" --version)
[[ "$upstream" =~ ^[0-9][0-9A-Za-z.+~]*$ ]] || { echo "package-deb: '$binary --version' printed '$upstream', not a version" >&2; exit 1; }
version="$upstream-$revision"
arch=$(dpkg --print-architecture)

work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
# dpkg-shlibdeps knows libraries under debian/<package>/ as the package's own.
root=$work/debian/sds-agent
install -d "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/usr/lib/sysusers.d" \
  "$root/etc/sds-agent" "$root/usr/share/sds-agent" "$root/usr/share/doc/sds-agent/examples" \
  "$root/usr/share/lintian/overrides"

strip --strip-unneeded --remove-section=.comment --remove-section=.note -o "$root/usr/bin/sds-agent" "$binary"
chmod 0755 "$root/usr/bin/sds-agent"

# Every library the binary loads through its RUNPATH (the toolchain's directory) comes along;
# the system's (libc, libstdc++, zlib, libgcc) become dependencies below.
runpath=$(readelf -d "$binary" | sed -n 's/.*(\(RUNPATH\|RPATH\)).*\[\(.*\)\]$/\2/p')
bundled=()
IFS=: read -r -a runpath_dirs <<< "$runpath"
while read -r name path; do
  for dir in "${runpath_dirs[@]}"; do
    [ -n "$dir" ] && [ "$dir" != '$ORIGIN' ] && [ "$(dirname "$path")" = "$dir" ] && bundled+=("$path")
  done
done < <(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }')
if [ ${#bundled[@]} -gt 0 ]; then
  install -d "$root/usr/lib/sds-agent"
  for lib in "${bundled[@]}"; do
    strip --strip-unneeded --remove-section=.comment --remove-section=.note \
      -o "$root/usr/lib/sds-agent/$(basename "$lib")" "$lib"
    chmod 0644 "$root/usr/lib/sds-agent/$(basename "$lib")"
  done
  patchelf --set-rpath /usr/lib/sds-agent "$root/usr/bin/sds-agent"
  echo "bundled ${#bundled[@]} Swift runtime libraries in /usr/lib/sds-agent (RUNPATH was $runpath)" >&2
elif [ -n "$runpath" ]; then
  command -v patchelf >/dev/null || { echo "package-deb: $binary has RUNPATH $runpath to remove: apt-get install patchelf" >&2; exit 1; }
  patchelf --remove-rpath "$root/usr/bin/sds-agent"
fi

install -m 0644 systemd/sds-agent.service systemd/sds-agent.socket "$root/lib/systemd/system/"
install -m 0644 systemd/sds-agent.sysusers.conf "$root/usr/lib/sysusers.d/sds-agent.conf"
install -m 0644 systemd/config.minimal.yaml "$root/etc/sds-agent/config.yaml"
install -m 0644 systemd/sds-agent.service.d/exe-rules.conf "$root/usr/share/sds-agent/"
install -m 0644 systemd/config.full.yaml systemd/config.node-agent.yaml examples/envoy-*.yaml \
  "$root/usr/share/doc/sds-agent/examples/"
install -m 0644 packaging/debian/copyright "$root/usr/share/doc/sds-agent/"
install -m 0644 packaging/debian/lintian-overrides "$root/usr/share/lintian/overrides/sds-agent"

date_epoch=$(git log -1 --format=%ct 2>/dev/null || date +%s)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
cat > "$work/changelog" <<EOF
sds-agent ($version) unstable; urgency=medium

  * sds-agent $upstream, packaged by dev/package-deb.sh from commit $commit.

 -- sds-agent maintainers <sds-agent@users.noreply.github.com>  $(date -R -u -d "@$date_epoch")
EOF
gzip -9nc "$work/changelog" > "$root/usr/share/doc/sds-agent/changelog.Debian.gz"
chmod 0644 "$root/usr/share/doc/sds-agent/changelog.Debian.gz"

printf 'Source: sds-agent\n\nPackage: sds-agent\nArchitecture: any\n' > "$work/debian/control"
libraries=()
[ -d "$root/usr/lib/sds-agent" ] && libraries=("$root"/usr/lib/sds-agent/*.so*)
shlibs=$(cd "$work" && dpkg-shlibdeps -O -l"$root/usr/lib/sds-agent" -e"$root/usr/bin/sds-agent" \
  "${libraries[@]/#/-e}" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || { echo "package-deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }
# systemd: the units, systemd-sysusers; init-system-helpers: deb-systemd-helper/-invoke.
depends="$shlibs, systemd, init-system-helpers (>= 1.52)"

installed_size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@INSTALLED_SIZE@/$installed_size/" \
  -e "s/@DEPENDS@/$depends/" packaging/debian/control.in > "$root/DEBIAN/control"
install -m 0644 packaging/debian/conffiles "$root/DEBIAN/"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$root/DEBIAN/"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f ! -path './etc/*' -printf '%P\0' | sort -z \
  | xargs -0 md5sum) > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"

deb=$output/sds-agent_${version}_${arch}.deb
case "$compression" in
xz) level=6 ;;
gzip) level=6 ;;
*) echo "package-deb: --compression is xz or gzip, not $compression" >&2; exit 2 ;;
esac
SOURCE_DATE_EPOCH=$date_epoch dpkg-deb --root-owner-group -Z"$compression" -z"$level" --build "$root" "$deb" >/dev/null
echo "$deb"
echo "package-deb: wrote $deb ($(du -h "$deb" | cut -f1), installed $((installed_size / 1024)) MiB)" >&2
