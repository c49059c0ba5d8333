/**
 * ipvs mode against the real kernel, as far as this kernel allows.
 *
 * This kernel has no IPVS and no dummy interfaces. So:
 *  - start-up detection runs for real (read-only probes inside a test namespace): proxy mode ipvs
 *    fails with an error naming the mode to use instead;
 *  - the backend runs end to end with a split runner: `ipvsadm` and `sysctl net.ipv4.vs.*` go to the
 *    simulated kernel (tracer/ipvs.ts), while `ipset`, `iptables-restore`, `iptables-save` and
 *    `ip addr` run for real in a test namespace, where a veth named kube-ipvs0 stands in for the
 *    dummy device. This checks that the real tools accept every line the planner writes, and that
 *    what they print back parses into the state the planner expects (a restart changes nothing).
 */
import { existsSync } from 'node:fs';
import test from 'ava';
import { createMemoryFeed } from '../harness/feed';
import { createNetns, deleteNetns, execIn } from '../harness/netns';
import { integrationTest } from '../harness/requirements';
import { createCommandRunner, type CommandRunner } from '../../netproxy/exec';
import { createProxyComponent } from '../../netproxy/index';
import { chooseMode } from '../../netproxy/mode';
import { createIpvsBackend, cleanupIpvs, parseBoundAddresses } from '../../netproxy/ipvs/backend';
import { ownedSets, parseIpsetSave } from '../../netproxy/ipvs/ipset';
import { JUMPS, jumpId, presentJumps } from '../../netproxy/ipvs/rules';
import { NODE, NODE_IP, NODE_IP6, services, slice, slices } from './fixtures';
import { buildState, recordingLogger, testConfig } from './helpers';
import { createIpvsKernel } from './tracer/ipvs';

const itest = integrationTest({ root: true, commands: ['ip', 'nsenter', 'nft', 'ipset', 'iptables-nft-restore', 'ip6tables-nft-restore'] });
const nodeIPs = [NODE_IP, NODE_IP6];
const hasIpvs = existsSync('/proc/net/ip_vs');

function netnsRunner(ns: string): CommandRunner {
  return createCommandRunner(['nsenter', `--net=/var/run/netns/${ns}`, '--']);
}

test('ipvs start-up detection: without IPVS the error names the fallback (probe injected)', async (t) => {
  const calls: string[] = [];
  const exec: CommandRunner = async (argv) => {
    calls.push(argv.join(' '));
    return { code: 1, stdout: '', stderr: argv[0] === 'nft' ? 'Error: Could not process rule: No such file or directory' : 'No such file or directory' };
  };
  const err = await t.throwsAsync(chooseMode('ipvs', exec, recordingLogger().logger));
  t.is((err as { code?: string }).code, 'KEELSON_ERR_PROXY_MODE_UNSUPPORTED');
  t.regex(err!.message, /proxy mode ipvs is not available: \/proc\/net\/ip_vs is missing.*set proxy\.mode to iptables/);
  t.regex(err!.message, /modprobe ip_vs failed: No such file or directory/);
  t.deepEqual(calls, ['cat /proc/net/ip_vs', 'modprobe -- ip_vs', 'nft --check -f -']);
});

test('ipvs start-up detection: a module that is only not loaded yet is loaded, and ipvs is chosen', async (t) => {
  let loaded = false;
  const calls: string[] = [];
  const exec: CommandRunner = async (argv) => {
    calls.push(argv.join(' '));
    if (argv[0] === 'modprobe') loaded = true;
    return argv[0] === 'cat' && !loaded ? { code: 1, stdout: '', stderr: 'No such file or directory' } : { code: 0, stdout: '', stderr: '' };
  };
  t.is(await chooseMode('ipvs', exec, recordingLogger().logger), 'ipvs');
  t.deepEqual(calls, ['cat /proc/net/ip_vs', 'modprobe -- ip_vs', 'cat /proc/net/ip_vs']);
});

itest('ipvs start-up detection on this kernel: the proxy component in ipvs mode fails naming the fallback', async (t) => {
  const ns = await createNetns();
  t.teardown(() => deleteNetns(ns));
  const exec = netnsRunner(ns);
  const { logger } = recordingLogger();
  if (hasIpvs) {
    t.is(await chooseMode('ipvs', exec, logger), 'ipvs');
    return;
  }
  const proxy = createProxyComponent({
    input: { services: createMemoryFeed(services), endpointSlices: createMemoryFeed(slices) },
    config: testConfig({ mode: 'ipvs', healthzBindAddress: '', metricsBindAddress: '' }),
    logger,
    nodeName: NODE,
    nodeIPs,
    exec,
  });
  const err = await t.throwsAsync(proxy.start());
  t.is((err as { code?: string }).code, 'KEELSON_ERR_PROXY_MODE_UNSUPPORTED');
  // nft works on this kernel, so nftables is the mode to name.
  t.regex(err!.message, /proxy mode ipvs is not available: \/proc\/net\/ip_vs is missing.*set proxy\.mode to nftables/);
  // modprobe is absent or finds no ip_vs module on this host; the reason says which.
  t.regex(err!.message, /modprobe ip_vs failed/);
  t.is(proxy.mode(), undefined);
  // And the backend itself, if started anyway, stops at its first read with the tool's own reason.
  const backend = createIpvsBackend({ exec, logger, config: testConfig(), nodeIPs });
  const { result } = buildState(services, slices);
  const syncErr = await t.throwsAsync(backend.sync({ state: result.state, changed: result.changed, full: true }));
  t.regex(syncErr!.message, /ipvsadm -Ln exited .*Protocol not available/s);
});

itest('ipvs backend on a real kernel: ipset, iptables and kube-ipvs0 commands apply, read back, and clean up', async (t) => {
  const ns = await createNetns();
  t.teardown(() => deleteNetns(ns));
  // No dummy devices here: a veth named kube-ipvs0 carries the service addresses.
  await execIn(ns, 'ip', ['link', 'add', 'kube-ipvs0', 'type', 'veth', 'peer', 'name', 'kipvs-peer']);
  const real = netnsRunner(ns);
  const sim = createIpvsKernel({ nodeIPs });
  const realCalls: string[] = [];
  const exec: CommandRunner = (argv, o) => {
    if (argv[0] === 'ipvsadm' || argv[0] === 'sysctl') return sim.exec(argv, o);
    realCalls.push(argv.join(' '));
    return real(argv, o);
  };
  const { logger } = recordingLogger();
  // Without the source-range Services of the shared fixtures: their KUBE-IPVS-OUT-FILTER rules
  // need the xt_ipvs match, which a kernel without IPVS (this one) lacks.
  const { state, result } = buildState(services.filter((svc) => !svc.spec?.loadBalancerSourceRanges), slices);
  const backend = createIpvsBackend({ exec, logger, config: testConfig(), nodeIPs });
  await backend.sync({ state: result.state, changed: result.changed, full: true });
  t.true(realCalls.includes('ipset -exist restore'));
  t.true(realCalls.includes('iptables-nft-restore -w 5 --noflush'));
  t.true(realCalls.includes('ip6tables-nft-restore -w 5 --noflush'));

  // What the real tools print back is what the planner wanted.
  const sets = parseIpsetSave((await execIn(ns, 'ipset', ['save'])).stdout);
  const desired = backend.lastPlan();
  t.truthy(desired);
  t.is(sets.get('KUBE-CLUSTER-IP')!.size, 22);
  t.true(sets.get('KUBE-6-CLUSTER-IP')!.has('fd00::12,tcp:80'));
  t.true(sets.get('KUBE-NODE-PORT-TCP')!.has('30080'));
  t.true(sets.get('KUBE-LOOP-BACK')!.has('10.244.1.2,sctp:9999,10.244.1.2'));
  t.is(sets.size, ownedSets().length, 'every set of both families exists');
  const bound = parseBoundAddresses((await execIn(ns, 'ip', ['-o', 'addr', 'show', 'dev', 'kube-ipvs0'])).stdout);
  t.true(bound.has('10.96.0.1') && bound.has('fd00::12') && bound.has('192.168.1.200'));
  for (const bin of ['iptables-nft-save', 'ip6tables-nft-save']) {
    const jumps = presentJumps((await execIn(ns, bin)).stdout);
    t.deepEqual([...jumps].sort(), JUMPS.map(jumpId).sort(), bin);
  }

  // A restart reads the real state back and finds nothing to change but its own chains.
  const restarted = createIpvsBackend({ exec, logger, config: testConfig(), nodeIPs });
  let mark = realCalls.length;
  const full = state.build(true);
  await restarted.sync({ state: full.state, changed: full.changed, full: true });
  t.deepEqual(realCalls.slice(mark).filter((c) => !/save$|addr show/.test(c)), ['iptables-nft-restore -w 5 --noflush', 'ip6tables-nft-restore -w 5 --noflush']);
  const again = presentJumps((await execIn(ns, 'iptables-nft-save')).stdout);
  t.is(again.size, JUMPS.length, 'no duplicated jumps');
  t.is((await execIn(ns, 'iptables-nft-save', ['-t', 'nat'])).stdout.split('\n').filter((l) => l.startsWith('-A PREROUTING')).length, 1);

  // An endpoint change is one real ipset line.
  mark = realCalls.length;
  state.recordEndpointSlice(slices[0], slice('web', [{ ip: '10.244.2.2', node: 'node-b' }, { ip: '10.244.2.3', node: 'node-b' }], [{ port: 8080 }]));
  const r = state.build();
  await restarted.sync({ state: r.state, changed: r.changed, full: false });
  t.deepEqual(realCalls.slice(mark).filter((c) => !/save$|addr show/.test(c)), ['ipset -exist restore']);
  t.true(parseIpsetSave((await execIn(ns, 'ipset', ['save'])).stdout).get('KUBE-LOOP-BACK')!.has('10.244.2.3,tcp:8080,10.244.2.3'));

  // Cleanup removes it all from the real kernel (IPVS part in the simulation).
  await cleanupIpvs(exec, { nodeIPs });
  t.is(parseIpsetSave((await execIn(ns, 'ipset', ['save'])).stdout).size, 0);
  for (const bin of ['iptables-nft-save', 'ip6tables-nft-save']) {
    t.false(/KUBE-|keelson/.test((await execIn(ns, bin)).stdout), bin);
  }
  t.is(sim.services.size, 0);
  await t.throwsAsync(execIn(ns, 'ip', ['link', 'show', 'kube-ipvs0']));
});
