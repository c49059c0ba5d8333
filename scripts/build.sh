#!/usr/bin/env bash
# Compiles keelson (TypeScript strict) to dist/ on the pinned Node.js runtime.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
node_bin=$(scripts/node-runtime.sh)
# --clean: start from an empty dist/ (so no stale compiled test or module survives a rename)
[ "${1:-}" = "--clean" ] && rm -rf dist
"$node_bin" node_modules/typescript/bin/tsc -p tsconfig.json
echo "keelson: built dist/"
