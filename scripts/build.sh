#!/usr/bin/env bash
# Compiles keelson (TypeScript strict) to dist/ on the pinned Node.js runtime.
#   --clean     start from an empty dist/ (no stale compiled test or module survives a rename)
#   --if-stale  do nothing when dist/ is newer than every source file
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
node_bin=$(scripts/node-runtime.sh)
stamp=dist/.build-stamp
if [ "${1:-}" = "--if-stale" ] && [ -f "$stamp" ] && \
   [ -z "$(find agent cri dns netproxy systemd test bench tsconfig.json package.json -newer "$stamp" \( -name '*.ts' -o -name '*.json' -o -name '*.proto' \) -print -quit 2>/dev/null)" ]; then
  echo "keelson: dist/ is up to date"
  exit 0
fi
[ "${1:-}" = "--clean" ] && rm -rf dist
"$node_bin" node_modules/typescript/bin/tsc -p tsconfig.json
touch "$stamp"
echo "keelson: built dist/"
