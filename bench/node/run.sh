#!/usr/bin/env bash
# Requests per minute of the node component at steady state against the test apiserver.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bash scripts/build.sh >/dev/null
exec "$(scripts/node-runtime.sh)" dist/bench/node/requests.js "$@"
