/**
 * Large generated rulesets applied for real with `nft` in a namespace the test creates.
 * Regression for "nft: conflicting protocols specified: tcp vs. th": nft 1.0.x failed every
 * transaction after the first that added a rule referencing the endpoint maps (periodic full syncs,
 * a new endpoint count), because the maps' typeof value used `th dport`.
 */
import { execFileSync } from 'node:child_process';
import { generate, sliceFor, GEN_NODE, GEN_NODE_IP, GEN_POD_CIDR } from '../../bench/netproxy/generate';
import { createProxyState } from '../../netproxy/desiredstate';
import { createNftPlanner } from '../../netproxy/nftables/backend';
import { createNetns, deleteNetns } from '../harness/netns';
import { integrationTest } from '../harness/requirements';
import { recordingLogger, testConfig } from './helpers';

const itest = integrationTest({ root: true, commands: ['nft', 'ip', 'nsenter'] });

function nft(ns: string, args: string[], input = ''): string {
  return execFileSync('nsenter', [`--net=/var/run/netns/${ns}`, '--', 'nft', ...args], { input, encoding: 'utf8', maxBuffer: 64 << 20 });
}

function setup(count: number) {
  const { logger } = recordingLogger();
  const gen = generate(count, 10, 'mixed');
  const state = createProxyState({ nodeName: GEN_NODE, logger });
  for (const s of gen.services) state.recordService(undefined, s);
  for (const s of gen.slices) state.recordEndpointSlice(undefined, s);
  const planner = createNftPlanner({ config: testConfig({ clusterCIDR: [GEN_POD_CIDR] }), nodeIPs: [GEN_NODE_IP] });
  return { gen, state, planner };
}

itest('nftables ruleset: 200 mixed services check, load, resync fully and change incrementally in the kernel', async (t) => {
  const ns = await createNetns();
  t.teardown(() => deleteNetns(ns));
  const { gen, state, planner } = setup(200);
  const first = state.build(true);
  const p1 = planner.plan({ state: first.state, changed: first.changed, full: true });
  t.notThrows(() => nft(ns, ['-c', '-f', '-'], p1.transaction.text), 'nft -c accepts the first full sync');
  t.notThrows(() => nft(ns, ['-f', '-'], p1.transaction.text), 'nft -f loads the first full sync');
  p1.commit();

  // The periodic full sync re-declares every chain over the loaded table: this is what failed.
  const again = state.build(true);
  const p2 = planner.plan({ state: again.state, changed: again.changed, full: true });
  t.false(p2.transaction.text.includes('delete table'));
  t.notThrows(() => nft(ns, ['-f', '-'], p2.transaction.text), 'periodic full sync');
  p2.commit();

  // An endpoint count never seen before needs a new shared chain that references the maps.
  const before = gen.slices[1]!;
  const grown = sliceFor(1, 13, 'UDP');
  state.recordEndpointSlice(before, grown);
  const r3 = state.build();
  t.deepEqual([...r3.changed], ['bench/svc-1']);
  const p3 = planner.plan({ state: r3.state, changed: r3.changed, full: false });
  t.regex(p3.transaction.text, /add rule ip keelson-proxy \S+-13 /);
  t.notThrows(() => nft(ns, ['-f', '-'], p3.transaction.text), 'incremental sync with a new chain');
  p3.commit();

  // The kernel holds what was planned: svc-1 (UDP NodePort) has 13 endpoints behind its ClusterIP.
  const ep = grown.endpoints![12]!.addresses[0]!;
  const got = nft(ns, ['get', 'element', 'ip', 'keelson-proxy', 'endpoints-udp', '{ 10.96.0.2 . udp . 80 . 12 }']);
  t.true(got.includes(`${ep} . 8080`), got);
  const listed = nft(ns, ['list', 'table', 'ip', 'keelson-proxy']);
  // The listing itself loads back (nothing in the table that nft cannot parse again).
  t.notThrows(() => nft(ns, ['-c', '-f', '-'], listed));
});
