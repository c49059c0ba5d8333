/** `keelson cleanup` removes the proxy's own tables and nothing else, inside a test namespace. */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createNetns, deleteNetns, execIn, nsenterArgs } from '../harness/netns';
import { CLI, NODE } from '../harness/keelson';
import { integrationTest } from '../harness/requirements';

const execFileAsync = promisify(execFile);
const itest = integrationTest({ root: true, commands: ['nft', 'nsenter', 'ip'] });

itest('keelson cleanup --mode nftables removes keelson-proxy tables and leaves foreign ones', async (t) => {
  const ns = await createNetns();
  t.teardown(() => deleteNetns(ns));
  const setup = 'add table ip keelson-proxy\nadd chain ip keelson-proxy services\nadd table ip6 keelson-proxy\nadd table inet someone-else\nadd chain inet someone-else input { type filter hook input priority 0; }\n';
  const file = join(mkdtempSync(join(tmpdir(), 'keelson-cleanup-')), 'setup.nft');
  writeFileSync(file, setup);
  await execIn(ns, 'nft', ['-f', file]);

  const { stdout, stderr } = await execFileAsync('nsenter', [...nsenterArgs(ns), NODE, CLI, 'cleanup', '--mode', 'nftables'], { env: { ...process.env, JOURNAL_STREAM: '' } });
  t.regex(stdout + stderr, /proxy rules removed/);
  const tables = await execIn(ns, 'nft', ['list', 'tables']);
  t.notRegex(tables.stdout, /keelson-proxy/);
  t.regex(tables.stdout, /table inet someone-else/);

  const again = await execFileAsync('nsenter', [...nsenterArgs(ns), NODE, CLI, 'cleanup', '--mode', 'nftables']);
  t.regex(again.stdout + again.stderr, /proxy rules removed/, 'cleanup is idempotent');
});

itest('keelson cleanup rejects an unknown mode', async (t) => {
  const err = await t.throwsAsync(execFileAsync(NODE, [CLI, 'cleanup', '--mode', 'bpf']));
  t.regex((err as unknown as { stderr: string }).stderr, /invalid --mode "bpf"/);
});
