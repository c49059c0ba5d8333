#!/usr/bin/env bash
# netproxy bench, nftables mode, run by hand as root (never by the test suite). Everything runs in
# a network namespace created here and removed on exit; the host's rules are never touched.
# Usage: bench/netproxy/run.sh [SIZES=1000,10000] [ENDPOINTS=10] [KUBEPROXY_TIMEOUT_S=400]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
for cmd in nft ip nsenter; do command -v "$cmd" >/dev/null || { echo "missing $cmd" >&2; exit 1; }; done
node_bin=$(scripts/node-runtime.sh)
"$node_bin" node_modules/typescript/bin/tsc -p tsconfig.json >/dev/null || echo "bench: tsc reported errors; running anyway" >&2
ns="keelson-bench-$$"
ip netns add "$ns"
trap 'ip netns delete "$ns" 2>/dev/null || true' EXIT
nsenter --net="/var/run/netns/$ns" -- ip link set lo up
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, $(uname -r), $(nft --version), node $("$node_bin" --version)" >&2
nsenter --net="/var/run/netns/$ns" -- "$node_bin" dist/bench/netproxy/bench.js "${1:-1000,10000}" "${2:-10}" "${3:-400}"
