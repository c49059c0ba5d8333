#!/usr/bin/env bash
# Developer loop: build with tsc, then run ava on the pinned Node.js 24 for the given files or folders
# (paths under dist/, e.g. dist/test/dns/). Type errors are printed but do not stop the run.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
node_bin=$(scripts/node-runtime.sh) || exit 1
"$node_bin" node_modules/typescript/bin/tsc -p tsconfig.json || echo "dev-test: tsc reported errors (see above); running tests anyway" >&2
exec "$node_bin" node_modules/ava/entrypoints/cli.mjs "$@"
