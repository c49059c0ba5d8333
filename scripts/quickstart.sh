#!/usr/bin/env bash
# keelson quick start on a fresh Debian 12 host, as root: installs the prerequisites, builds keelson,
# prepares a demo image, writes a demo static pod and starts `keelson run` in standalone mode (no
# control plane needed) in the background, then shows `keelson status` with the demo pod Running.
# Idempotent: a second run reuses what is there and does not start a second daemon.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
[ "$(id -u)" = 0 ] || { echo "keelson quickstart: run as root (it installs packages and starts containerd)" >&2; exit 1; }

SOCKET=/run/containerd/containerd.sock
MANIFESTS=/etc/keelson/manifests
ROOT_DIR=/var/lib/keelson
LOG=/var/log/keelson.log
PAUSE_IMAGE=registry.k8s.io/pause:keelson-test
CONTAINERD_CONFIG=/etc/containerd/config.toml
CNI_CONF_DIR=/etc/cni/net.d

echo "== 1/6 prerequisites (Debian packages, npm dependencies, pinned Node.js 24)"
bash scripts/prereqs.sh

echo "== 2/6 build"
bash scripts/build.sh --if-stale
ln -sf "$root/scripts/keelson" /usr/local/bin/keelson
echo "keelson: linked /usr/local/bin/keelson -> $root/scripts/keelson"

echo "== 3/6 containerd"
# The demo runs offline: the pod sandbox ("pause") image is built locally, so containerd must use it.
if [ -f "$CONTAINERD_CONFIG" ] && ! grep -q 'sandbox_image' "$CONTAINERD_CONFIG"; then
  cp -n "$CONTAINERD_CONFIG" "$CONTAINERD_CONFIG.before-keelson"
  sed -i "s|^\(\s*\)\[plugins.\"io.containerd.grpc.v1.cri\"\]\s*$|&\n\1  sandbox_image = \"$PAUSE_IMAGE\"|" "$CONTAINERD_CONFIG"
  echo "keelson: set sandbox_image = $PAUSE_IMAGE in $CONTAINERD_CONFIG (original kept as $CONTAINERD_CONFIG.before-keelson)"
elif grep -q "sandbox_image = \"$PAUSE_IMAGE\"" "$CONTAINERD_CONFIG" 2>/dev/null; then
  echo "keelson: $CONTAINERD_CONFIG already uses $PAUSE_IMAGE"
else
  echo "keelson: $CONTAINERD_CONFIG sets its own sandbox_image; left unchanged (it must be pullable)"
fi
mkdir -p "$CNI_CONF_DIR"
if [ -z "$(ls -A "$CNI_CONF_DIR" 2>/dev/null)" ]; then
  cat > "$CNI_CONF_DIR/10-keelson.conflist" <<'JSON'
{
  "cniVersion": "1.0.0",
  "name": "keelson",
  "plugins": [
    { "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
      "ipam": { "type": "host-local", "ranges": [[{ "subnet": "10.88.0.0/16" }]], "routes": [{ "dst": "0.0.0.0/0" }] } },
    { "type": "portmap", "capabilities": { "portMappings": true } },
    { "type": "loopback" }
  ]
}
JSON
  echo "keelson: wrote the pod network config $CNI_CONF_DIR/10-keelson.conflist (bridge cni0, 10.88.0.0/16)"
else
  echo "keelson: $CNI_CONF_DIR already has a CNI config; left unchanged"
fi
containerd_up() { ctr --address "$SOCKET" version >/dev/null 2>&1; }
if [ -d /run/systemd/system ]; then
  systemctl enable containerd >/dev/null 2>&1 || true
  systemctl restart containerd
  echo "keelson: (re)started containerd with systemctl"
elif containerd_up && [ ! -f /run/keelson-quickstart-containerd.pid ]; then
  echo "keelson: containerd already running at $SOCKET"
else
  if [ -f /run/keelson-quickstart-containerd.pid ]; then kill "$(cat /run/keelson-quickstart-containerd.pid)" 2>/dev/null || true; sleep 1; fi
  nohup containerd >/var/log/containerd.log 2>&1 &
  echo $! > /run/keelson-quickstart-containerd.pid
  echo "keelson: no systemd here: started containerd in the background (pid $!, log /var/log/containerd.log)"
fi
for _ in $(seq 1 50); do containerd_up && break; sleep 0.2; done
containerd_up || { echo "keelson: containerd did not come up at $SOCKET; see its log" >&2; exit 1; }

# Where root lacks CAP_SYS_RESOURCE (some VMs and containers), runc cannot give the sandbox the
# negative oom_score_adj containerd asks for; restrict_oom_score_adj makes containerd ask for less.
cap_eff=$(awk '/^CapEff/ {print $2}' /proc/self/status)
if (( (16#$cap_eff >> 24 & 1) == 0 )) && ! grep -q 'restrict_oom_score_adj' "$CONTAINERD_CONFIG"; then
  sed -i "s|^\(\s*\)sandbox_image = .*$|&\n\1restrict_oom_score_adj = true|" "$CONTAINERD_CONFIG"
  echo "keelson: this host's root lacks CAP_SYS_RESOURCE: set restrict_oom_score_adj = true in $CONTAINERD_CONFIG"
  if [ -f /run/keelson-quickstart-containerd.pid ]; then
    kill "$(cat /run/keelson-quickstart-containerd.pid)" 2>/dev/null || true; sleep 1
    nohup containerd >>/var/log/containerd.log 2>&1 &
    echo $! > /run/keelson-quickstart-containerd.pid
  elif [ -d /run/systemd/system ]; then
    systemctl restart containerd
  fi
  for _ in $(seq 1 50); do containerd_up && break; sleep 0.2; done
fi

echo "== 4/6 demo image"
bash scripts/import-images.sh "$SOCKET"

echo "== 5/6 demo static pod"
mkdir -p "$MANIFESTS"
cat > "$MANIFESTS/demo.yaml" <<'YAML'
apiVersion: v1
kind: Pod
metadata:
  name: demo
  namespace: default
  labels:
    app: demo
spec:
  containers:
    - name: web
      image: docker.io/library/busybox:keelson-test
      command: ["sh", "-c", "echo 'hello from keelson' > /tmp/index.html && echo serving on :8080 && exec httpd -f -p 8080 -h /tmp"]
      ports:
        - containerPort: 8080
YAML
echo "keelson: wrote $MANIFESTS/demo.yaml"

echo "== 6/6 keelson run (standalone)"
pid=""
[ -f "$ROOT_DIR/run/keelson.pid" ] && pid=$(cat "$ROOT_DIR/run/keelson.pid")
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
  echo "keelson: already running (pid $pid)"
else
  mkdir -p "$ROOT_DIR/run"
  nohup "$root/scripts/keelson" run --root-dir "$ROOT_DIR" --pod-manifest-path "$MANIFESTS" \
    --container-runtime-endpoint "unix://$SOCKET" >>"$LOG" 2>&1 &
  pid=$!
  echo "$pid" > "$ROOT_DIR/run/keelson.pid"
  echo "keelson: started keelson run in the background (pid $pid, log $LOG)"
fi

running=""
for _ in $(seq 1 120); do
  if keelson status --root-dir "$ROOT_DIR" --json 2>/dev/null | grep -q '"phase": "Running"'; then running=yes; break; fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.5
done
echo
keelson status --root-dir "$ROOT_DIR" || true
echo
if [ -z "$running" ]; then
  echo "keelson: the demo pod is not Running yet; see $LOG" >&2
  exit 1
fi
cat <<TXT
The demo pod runs in containerd too:   ctr -n k8s.io containers ls
keelson's log:                         $LOG
Stop keelson (the pod keeps running):  kill \$(cat $ROOT_DIR/run/keelson.pid)
Stop the demo pod:                     rm $MANIFESTS/demo.yaml   (keelson stops it within its grace period)
TXT
