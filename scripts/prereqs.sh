#!/usr/bin/env bash
# Installs the Debian packages keelson needs at run time (and, with --test, the test tools), then the
# npm dependencies including the pinned Node.js 24 runtime. Idempotent: installs only what is missing.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

runtime_pkgs=(containerd runc containernetworking-plugins iptables nftables conntrack iproute2 util-linux procps ca-certificates busybox-static)
test_pkgs=(dnsutils dnsperf ipset ipvsadm openssl curl debootstrap systemd qemu-user-static libc6-arm64-cross libstdc++6-arm64-cross libgcc-s1-arm64-cross
  docker-registry apache2-utils)
# docker-registry (distribution 2.8) + apache2-utils (htpasswd -B) serve the private registry of the
# imagePullSecrets tests; each test runs its own instance on a free port inside its netns, so the
# package's own service (:5000, started by postinst under systemd) is neither needed nor in the way.

want=("${runtime_pkgs[@]}")
[ "${1:-}" = "--test" ] && want+=("${test_pkgs[@]}")

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
# kubectl: any recent client will do for the test apiserver check; Debian's package is the fallback.
if [ "${1:-}" = "--test" ] && ! command -v kubectl >/dev/null 2>&1; then missing+=(kubernetes-client); fi

if [ "${1:-}" = "--npm-only" ]; then
  :
elif ((${#missing[@]})); then
  echo "keelson: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "keelson: Debian packages already present: ${want[*]}"
fi

cd "$root"
if [ ! -x "$(scripts/node-runtime.sh 2>/dev/null || echo /nonexistent)" ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "keelson: installing npm dependencies and the pinned Node.js runtime (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi
echo "keelson: Node.js runtime $("$(scripts/node-runtime.sh)" --version) at $(scripts/node-runtime.sh)"
