/**
 * The status manager's snapshot (what `keelson status` shows): container readiness is carried over
 * from the pod status when the kubelet reported it, and left out when it did not.
 */
import test from 'ava';
import type { Pod } from 'kubernetes-types/core/v1';
import { createStatusManager } from '../../agent/pods/status-manager';

const pod: Pod = { metadata: { name: 'web', namespace: 'default', uid: 'u1' }, spec: { containers: [{ name: 'a', image: 'i' }, { name: 'b', image: 'i' }, { name: 'c', image: 'i' }] } };

test('snapshot: each container carries ready when the status has it', (t) => {
  const manager = createStatusManager();
  manager.setPodStatus(pod, {
    phase: 'Running',
    containerStatuses: [
      { name: 'a', image: 'i', imageID: '', restartCount: 0, ready: true, state: { running: { startedAt: '2026-01-01T00:00:00Z' } } },
      { name: 'b', image: 'i', imageID: '', restartCount: 2, ready: false, state: { waiting: { reason: 'CrashLoopBackOff' } } },
      { name: 'c', image: 'i', imageID: '', restartCount: 0, state: { waiting: { reason: 'ContainerCreating' } } } as never,
    ],
  });
  const [snap] = manager.snapshot();
  t.deepEqual(snap.containers.map((c) => [c.name, c.state, c.ready]), [['a', 'running', true], ['b', 'waiting', false], ['c', 'waiting', undefined]]);
  t.false('ready' in snap.containers[2]);
});
