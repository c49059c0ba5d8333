#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this), on a fresh Debian 12 host as root:
# installs the prerequisites and test tools, builds, and runs every ava test on the pinned Node.js 24.
# Integration tests start their own containerd, test apiserver and network namespaces.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ "$(id -u)" = 0 ]; then
  bash scripts/prereqs.sh --test
else
  echo "keelson: not root: skipping package installation (root-only tests will skip outside CI)"
  bash scripts/prereqs.sh --npm-only
fi
bash scripts/build.sh --clean
node_bin=$(scripts/node-runtime.sh)
if [ "$(id -u)" = 0 ]; then
  # The systemd end-to-end tests boot a Debian rootfs made with debootstrap; build (or reuse) it once
  # here, outside any test's timeout. Cached in /var/cache/keelson-test.
  echo "keelson: preparing the Debian rootfs for the systemd tests (debootstrap, cached)"
  "$node_bin" dist/test/harness/systemd-container.js --prepare
fi
mkdir -p .test-logs
log=.test-logs/ava.tap
set +e
"$node_bin" node_modules/ava/entrypoints/cli.mjs --tap "$@" | tee "$log"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -cE '^ok ' "$log" || true)
failed=$(grep -cE '^not ok ' "$log" || true)
skipped=$(grep -cE '^ok .*# SKIP' "$log" || true)
echo "$((passed - skipped)) passed, ${failed} failed, ${skipped} skipped"
exit "$status"
