#!/usr/bin/env bash
# netproxy iptables mode (nft and legacy variants) vs the bare iptables-restore of kube-proxy's
# structure. Root; works only inside network namespaces it creates. One process per variant, so
# each RSS figure is keelson's alone. Args go to the bench, e.g.
#   bench/netproxy/run-iptables.sh --services 1000 --endpoints 10 --changes 5
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
node_bin=$(scripts/node-runtime.sh)
"$node_bin" node_modules/typescript/bin/tsc -p tsconfig.json >/dev/null || echo "run-iptables: tsc reported errors elsewhere; running anyway" >&2
read -r -a node_flags < scripts/node-flags # the flags keelson runs with (--expose-gc among them)
for variant in ${IPT_VARIANTS:-nft legacy}; do
  "$node_bin" "${node_flags[@]}" dist/bench/netproxy/iptables.js "$@" --variants "$variant"
done
