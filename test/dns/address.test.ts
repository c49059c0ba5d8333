/** The node-local address is created on `lo` — only ever inside a test network namespace. */
import { execFileSync } from 'node:child_process';
import { integrationTest } from '../harness/requirements';
import { ensureLocalAddress, removeLocalAddress, runCommand, type RunCommand } from '../../dns/address';

const itest = integrationTest({ root: true, commands: ['ip', 'nsenter'] });
const NS = `keelson-dns-${process.pid}`;
const inNs: RunCommand = (file, args) => runCommand('nsenter', [`--net=/var/run/netns/${NS}`, file, ...args]);

itest.before(() => {
  execFileSync('ip', ['netns', 'add', NS]);
  execFileSync('nsenter', [`--net=/var/run/netns/${NS}`, 'ip', 'link', 'set', 'lo', 'up']);
});
itest.after.always(() => {
  try { execFileSync('ip', ['netns', 'del', NS]); } catch { /* already gone */ }
});

itest.serial('adds 169.254.20.10/32 to lo once, and removes it', async (t) => {
  t.true(await ensureLocalAddress('169.254.20.10', 'lo', inNs));
  t.false(await ensureLocalAddress('169.254.20.10', 'lo', inNs), 'second call is a no-op');
  t.regex(await inNs('ip', ['-o', '-4', 'addr', 'show', 'dev', 'lo']), / 169\.254\.20\.10\/32 /);
  await removeLocalAddress('169.254.20.10', 'lo', inNs);
  t.notRegex(await inNs('ip', ['-o', '-4', 'addr', 'show', 'dev', 'lo']), /169\.254\.20\.10/);
});

itest.serial('a missing interface is reported with a stable code', async (t) => {
  const err = await t.throwsAsync(ensureLocalAddress('169.254.20.10', 'nosuchif0', inNs));
  t.is((err as unknown as { code: string }).code, 'KEELSON_ERR_DNS_ADDRESS_SETUP');
});
