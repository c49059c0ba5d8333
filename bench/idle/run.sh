#!/usr/bin/env bash
# keelson RSS idle in cluster mode, all components, N services (default 100). Root.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bash scripts/build.sh --if-stale >/dev/null
exec "$(scripts/node-runtime.sh)" dist/bench/idle/cluster.js "$@"
