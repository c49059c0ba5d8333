#!/usr/bin/env bash
# Installs keelson on a Debian or Ubuntu host (amd64 or arm64), as root:
#   1. the prerequisites from the distribution: containerd, runc, containernetworking-plugins,
#      iptables, nftables, conntrack (skipped when present; an installed CRI-O stands in for containerd);
#   2. keelson itself, from --tarball FILE, from the release tarball this script came in (or one
#      lying next to it), or built from the git checkout it sits in (scripts/package.sh);
#   3. /etc/keelson/config.yaml and /etc/default/keelson (only when absent: yours are kept),
#      the systemd unit, systemctl daemon-reload;
#   4. given --server/--token/--ca-cert-hash (or KEELSON_URL/KEELSON_TOKEN/KEELSON_CA_CERT_HASH):
#      keelson join, then systemctl enable --now keelson. Already joined: restarts it on the new version.
# Re-running upgrades in place. --dry-run prints every action without doing any.
#
#   install.sh [--tarball FILE] [--server URL --token TOKEN --ca-cert-hash sha256:HEX]
#              [--node-name NAME] [--skip-prereqs] [--no-start] [--dry-run]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

tarball=""
new_version=""
server=${KEELSON_URL:-}
token=${KEELSON_TOKEN:-}
ca_hash=${KEELSON_CA_CERT_HASH:-}
node_name=""
dry_run=0
skip_prereqs=0
no_start=0
usage() { sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --tarball) tarball=${2:?--tarball needs a file}; shift 2 ;;
    --server) server=${2:?--server needs a URL}; shift 2 ;;
    --token) token=${2:?--token needs a value}; shift 2 ;;
    --ca-cert-hash|--discovery-token-ca-cert-hash) ca_hash=${2:?--ca-cert-hash needs sha256:HEX}; shift 2 ;;
    --node-name) node_name=${2:?--node-name needs a name}; shift 2 ;;
    --skip-prereqs) skip_prereqs=1; shift ;;
    --no-start) no_start=1; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done

say() { echo "keelson install: $*"; }
die() { echo "keelson install: $*" >&2; exit 1; }
# Every change to the host goes through `act`, so --dry-run shows it instead.
act() {
  if [ "$dry_run" = 1 ]; then
    echo "[dry-run] $*"
  else
    echo "+ $*"
    "$@"
  fi
}
# write_file PATH MODE: writes stdin to PATH (shown, not written, under --dry-run).
write_file() {
  local path=$1 mode=$2 content
  content=$(cat)
  if [ "$dry_run" = 1 ]; then
    echo "[dry-run] write $path (mode $mode):"
    printf '%s\n' "$content" | sed 's/^/[dry-run]   | /'
  else
    echo "+ write $path"
    install -D -m "$mode" /dev/null "$path"
    printf '%s\n' "$content" > "$path"
  fi
}

if [ -n "$server$token$ca_hash" ] && { [ -z "$server" ] || [ -z "$token" ] || [ -z "$ca_hash" ]; }; then
  die "joining needs all three of --server, --token and --ca-cert-hash (or KEELSON_URL, KEELSON_TOKEN, KEELSON_CA_CERT_HASH)"
fi
[ -z "$server" ] || [[ "$server" == https://* ]] || server="https://$server"
if [ "$(id -u)" != 0 ] && [ "$dry_run" = 0 ]; then die "run as root (it installs packages, files under /usr and /etc, and a systemd unit)"; fi

case "$(uname -m)" in
  x86_64|amd64) arch=amd64 ;;
  aarch64|arm64) arch=arm64 ;;
  *) die "unsupported architecture $(uname -m): keelson ships for amd64 and arm64" ;;
esac
[ -r /etc/os-release ] && . /etc/os-release
say "host: ${PRETTY_NAME:-unknown distribution}, $arch$([ "$dry_run" = 1 ] && echo ', dry run: nothing is changed')"
command -v dpkg >/dev/null 2>&1 || die "this installer is for Debian and Ubuntu (dpkg and apt-get); use the release tarball's root/ tree by hand elsewhere"
if dpkg-query -W -f='${Status}' keelson 2>/dev/null | grep -q 'ok installed'; then
  die "keelson is installed as a Debian package here: upgrade it with apt/dpkg (dpkg -i keelson_<version>_$arch.deb), or dpkg -r keelson first"
fi

# --- 1. prerequisites
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }
wanted=(containerd runc containernetworking-plugins iptables nftables conntrack)
missing=()
for p in "${wanted[@]}"; do
  # A runtime that is already there (CRI-O, or Docker's containerd.io) stands in for Debian's containerd.
  if [ "$p" = containerd ] && { installed cri-o || installed containerd.io; }; then continue; fi
  installed "$p" || missing+=("$p")
done
if [ "$skip_prereqs" = 1 ]; then
  say "prerequisites: skipped (--skip-prereqs)${missing[*]:+; missing: ${missing[*]}}"
elif ((${#missing[@]})); then
  say "prerequisites: installing ${missing[*]}"
  act env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  act env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  say "prerequisites: all present (${wanted[*]})"
fi

# --- 2. the keelson files: find or build the payload (a root/ tree as in the release tarball)
work=$(mktemp -d "${TMPDIR:-/tmp}/keelson-install.XXXXXX")
trap 'rm -rf "$work"' EXIT
payload=""
if [ -n "$tarball" ]; then
  [ -f "$tarball" ] || die "--tarball $tarball: no such file"
  source_text="tarball $tarball"
elif [ -d "$here/root/usr/lib/keelson" ]; then
  payload="$here/root"
  source_text="the unpacked release in $here"
elif tarball=$(ls -1 "$here"/keelson-*-linux-"$arch".tar.gz 2>/dev/null | sort -V | tail -n 1) && [ -n "$tarball" ]; then
  source_text="tarball $tarball (next to install.sh)"
elif [ -f "$here/package.sh" ] && [ -f "$here/../package.json" ]; then
  source_text="a build of the checkout $(cd "$here/.." && pwd)"
  new_version=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$here/../package.json" | head -n 1)
  if [ "$dry_run" = 1 ]; then
    echo "[dry-run] bash $here/package.sh --arch $arch --no-deb --out $work (needs the checkout's npm dependencies: scripts/prereqs.sh)"
  else
    bash "$here/package.sh" --arch "$arch" --no-deb --out "$work" >&2
    tarball=$(ls -1 "$work"/keelson-*-linux-"$arch".tar.gz | tail -n 1)
  fi
else
  die "no keelson to install: pass --tarball keelson-<version>-linux-$arch.tar.gz, or run the install.sh inside an unpacked release"
fi
if [ -z "$payload" ] && [ -n "$tarball" ]; then
  tar -C "$work" -xzf "$tarball"
  payload=$(ls -d "$work"/keelson-*-linux-*/root 2>/dev/null | head -n 1)
  [ -n "$payload" ] && [ -d "$payload/usr/lib/keelson" ] || die "$tarball is not a keelson release tarball (no keelson-*/root/usr/lib/keelson inside)"
  # ELF e_machine (byte 18): 3e = x86-64, b7 = aarch64.
  machine=$(od -An -tx1 -j18 -N1 "$payload/usr/lib/keelson/node/bin/node" | tr -d ' ')
  case "$arch:$machine" in
    amd64:3e|arm64:b7) ;;
    *) die "$tarball does not carry a Node.js runtime for $arch (ELF machine 0x$machine): use keelson-<version>-linux-$arch.tar.gz" ;;
  esac
fi
new_version=${new_version:-unknown}
if [ -n "$payload" ]; then
  new_version=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$payload/usr/lib/keelson/package.json" | head -n 1)
fi
old_version=""
[ -x /usr/lib/keelson/node/bin/node ] && old_version=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' /usr/lib/keelson/package.json 2>/dev/null | head -n 1)
say "keelson ${new_version} from $source_text${old_version:+ (replacing $old_version)}"

# /usr/lib/keelson is swapped in whole, so a running keelson never sees half of each version.
p=${payload:-<payload>}
act mkdir -p /usr/lib
act rm -rf /usr/lib/keelson.new /usr/lib/keelson.old
act cp -a "$p/usr/lib/keelson" /usr/lib/keelson.new
if [ -e /usr/lib/keelson ]; then act mv /usr/lib/keelson /usr/lib/keelson.old; fi
act mv /usr/lib/keelson.new /usr/lib/keelson
act rm -rf /usr/lib/keelson.old
act install -D -m 0755 "$p/usr/bin/keelson" /usr/bin/keelson
act install -D -m 0644 "$p/usr/share/keelson/config.yaml" /usr/share/keelson/config.yaml
act install -D -m 0644 "$p/usr/share/keelson/keelson.default" /usr/share/keelson/keelson.default
if [ -n "$payload" ] && [ ! -f "$payload/lib/systemd/system/keelson.service" ]; then
  say "this keelson build has no systemd unit: skipping the service"
  unit=0
else
  act install -D -m 0644 "$p/lib/systemd/system/keelson.service" /lib/systemd/system/keelson.service
  unit=1
fi

# --- 3. configuration (never overwritten) and folders
act mkdir -p /etc/keelson/manifests /var/lib/keelson
if [ -f /etc/keelson/config.yaml ]; then
  say "/etc/keelson/config.yaml exists: kept (the new default is /usr/share/keelson/config.yaml)"
else
  act install -m 0644 "$p/usr/share/keelson/config.yaml" /etc/keelson/config.yaml
fi
if [ -f /etc/default/keelson ]; then
  say "/etc/default/keelson exists: kept"
elif [ -n "$node_name" ]; then
  write_file /etc/default/keelson 0644 <<EOF
# Extra flags for \`keelson run\` under systemd (see \`keelson --help\`).
KEELSON_ARGS="--hostname-override $node_name"
EOF
else
  act install -m 0644 "$p/usr/share/keelson/keelson.default" /etc/default/keelson
fi

systemd=0
[ -d /run/systemd/system ] && systemd=1
if [ "$unit" = 1 ] && [ "$systemd" = 1 ]; then
  act systemctl daemon-reload
elif [ "$unit" = 1 ]; then
  say "systemd is not running here: unit installed, not enabled"
fi

# --- 4. join and start
joined=0
[ -f /etc/keelson/kubelet.conf ] && joined=1
if [ -n "$server" ]; then
  if [ "$joined" = 1 ]; then
    say "/etc/keelson/kubelet.conf exists: already joined, not joining again (remove it to re-join)"
  else
    token_file="$work/token"
    if [ "$dry_run" = 1 ]; then
      echo "[dry-run] write $token_file (mode 0600): the bootstrap token"
    else
      (umask 077 && printf '%s\n' "$token" > "$token_file")
    fi
    act /usr/bin/keelson join --server "$server" --token-file "$token_file" --discovery-token-ca-cert-hash "$ca_hash" ${node_name:+--hostname-override "$node_name"}
    joined=1
  fi
fi
if [ "$unit" = 1 ] && [ "$systemd" = 1 ]; then
  if [ "$no_start" = 1 ]; then
    act systemctl enable keelson.service
  elif [ "$joined" = 1 ] || [ -n "$server" ]; then
    act systemctl enable keelson.service
    # restart, not start: an upgrade must replace a running keelson (pods keep running).
    act systemctl restart keelson.service
  else
    act systemctl enable keelson.service
    if [ -n "$old_version" ]; then act systemctl try-restart keelson.service; fi
  fi
fi

if [ "$dry_run" = 1 ]; then
  say "dry run done: nothing was changed"
  exit 0
fi
echo
say "installed: $(/usr/bin/keelson version 2>/dev/null || echo "keelson $new_version (does not run: check /usr/lib/keelson)")"
if [ "$joined" = 0 ]; then
  cat <<EOF
Next steps:
  join a cluster:   on the control plane: kubeadm token create --print-join-command
                    here: keelson join --server https://HOST:6443 --token TOKEN --discovery-token-ca-cert-hash sha256:HASH
                          systemctl start keelson
  or run standalone (static pods from /etc/keelson/manifests): systemctl start keelson
  check the host:   keelson doctor        logs: journalctl -u keelson -f
EOF
else
  echo "Check it with: keelson status; keelson doctor; journalctl -u keelson -f"
fi
