import test from 'ava';
import { renderStatus } from '../../agent/status-command';
import type { DaemonState } from '../../agent/state-file';

const now = Date.parse('2026-01-01T12:00:00Z');
const state: DaemonState = {
  pid: 1,
  version: '0.1.0',
  nodeName: 'edge-1',
  mode: 'standalone',
  startedAt: '2026-01-01T11:59:00Z',
  updatedAt: '2026-01-01T11:59:58Z',
  components: [{ name: 'kubelet', healthy: true, lastSyncTime: '2026-01-01T11:59:59Z', message: '2 pods' }],
  pods: [
    { namespace: 'default', name: 'web-edge-1', phase: 'Running', podIP: '10.88.0.5', containers: [
      { name: 'app', state: 'running', ready: true, restartCount: 0 },
      { name: 'log', state: 'waiting', reason: 'CrashLoopBackOff', ready: false, restartCount: 4 },
    ] },
    { namespace: 'default', name: 'new-edge-1', phase: 'Pending', containers: [] },
  ],
  problems: ['/etc/keelson/manifests/bad.yaml: spec.containers[0].image: Required value'],
};

test('keelson status shows each container with state, readiness, restarts and the pod IP', (t) => {
  const text = renderStatus(state, true, now);
  t.regex(text, /^keelson 0\.1\.0 {3}node edge-1 {3}mode standalone {3}daemon running \(pid 1, up 60s\)$/m);
  t.regex(text, /^POD +PHASE +CONTAINER +STATE +READY +RESTARTS +POD IP$/m);
  t.regex(text, /^default\/web-edge-1 +Running +app +running +yes +0 +10\.88\.0\.5$/m);
  t.regex(text, /^ +log +waiting \(CrashLoopBackOff\) +no +4 *$/m);
  t.regex(text, /^default\/new-edge-1 +Pending +- +- +- +- +-$/m);
  t.regex(text, /^ {2}- \/etc\/keelson\/manifests\/bad\.yaml: spec\.containers\[0\]\.image: Required value$/m);
});

test('a daemon that is gone is shown as not running with when it was last seen', (t) => {
  t.regex(renderStatus(state, false, now), /daemon not running \(last seen 2s ago\)/);
});
