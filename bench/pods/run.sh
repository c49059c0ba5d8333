#!/usr/bin/env bash
# Pod startup latency (keelson vs direct CRI) and keelson RSS with 100 running pods. Root.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bash scripts/build.sh >/dev/null
exec "$(scripts/node-runtime.sh)" dist/bench/pods/startup.js
