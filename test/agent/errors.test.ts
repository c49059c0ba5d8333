import test from 'ava';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCatalogue } from '../../agent/errors';
import { REPO_ROOT } from '../harness/keelson';

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

test('every error code the code base raises is in the one catalogue', (t) => {
  const used = new Set<string>();
  for (const folder of ['agent', 'cri', 'dns', 'netproxy']) {
    for (const file of sources(join(REPO_ROOT, folder))) {
      for (const m of readFileSync(file, 'utf8').matchAll(/KEELSON_ERR_[A-Z0-9_]+/g)) used.add(m[0]);
    }
  }
  t.true(used.size > 20);
  const missing = [...used].filter((code) => !ErrorCatalogue.includes(code));
  t.deepEqual(missing, [], `codes missing from agent/errors.ts: ${missing.join(', ')}`);
});
