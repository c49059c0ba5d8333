#!/usr/bin/env bash
# Builds keelson's demo/test images from Debian's busybox-static (busybox and a minimal pause image,
# as an OCI archive: no registry needed) and imports them into containerd's k8s.io namespace.
# Usage: scripts/import-images.sh [CONTAINERD_SOCKET]   (default /run/containerd/containerd.sock)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
socket=${1:-/run/containerd/containerd.sock}
node_bin=$("$root/scripts/node-runtime.sh")
"$node_bin" -e '
const images = require(process.argv[1]);
images.importImages({ socket: process.argv[2] }).then(
  () => console.log(`keelson: imported ${images.BUSYBOX_IMAGE} and ${images.PAUSE_IMAGE} into ${process.argv[2]}`),
  (err) => { console.error(`keelson: ${err.message}`); process.exit(1); });
' "$root/dist/test/harness/images.js" "$socket"
