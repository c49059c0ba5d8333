#!/usr/bin/env bash
# keelson RSS idle in standalone mode with one static pod, beside a bare Node.js process. Root.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bash scripts/build.sh >/dev/null
exec "$(scripts/node-runtime.sh)" dist/bench/standalone/rss.js
