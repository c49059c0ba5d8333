#!/usr/bin/env bash
# Compiles keelson (TypeScript strict) to dist/ on the pinned Node.js runtime.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
node_bin=$(scripts/node-runtime.sh)
rm -rf dist
"$node_bin" node_modules/typescript/bin/tsc -p tsconfig.json
echo "keelson: built dist/"
