/**
 * Integration tests need root and real tools. Outside CI they skip with a message naming what is
 * missing; under CI=true they never skip: they run, and a missing requirement fails them loudly.
 */
import { execFileSync } from 'node:child_process';
import test from 'ava';

export interface Requirements {
  root?: boolean;
  commands?: string[];
}

function hasCommand(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export function missingRequirements(req: Requirements): string[] {
  const missing: string[] = [];
  if (req.root && process.getuid?.() !== 0) missing.push('root');
  for (const cmd of req.commands ?? []) if (!hasCommand(cmd)) missing.push(`command ${cmd}`);
  return missing;
}

export const inCI = process.env.CI === 'true' || process.env.CI === '1';

/**
 * Returns ava's `test` when the requirements are met or we are in CI, otherwise a skipping `test`
 * after printing what is missing. Use: `const itest = integrationTest({ root: true, commands: ['nft'] });`
 */
export function integrationTest(req: Requirements): typeof test {
  const missing = missingRequirements(req);
  if (missing.length === 0) return test;
  if (inCI) {
    test.serial.before('integration requirements', (t) => {
      t.fail(`CI=true but integration requirements are missing: ${missing.join(', ')}`);
    });
    return test;
  }
  console.warn(`skipping integration tests: missing ${missing.join(', ')}`);
  const noop = () => {};
  const skip = (title: string) => test.skip(title, noop);
  const hooks = { before: noop, after: noop, beforeEach: noop, afterEach: noop };
  const serial = Object.assign(skip, hooks, { always: hooks });
  const skipping = Object.assign((title: string) => skip(title), hooks, { serial, skip, only: skip });
  (hooks.after as unknown as { always: () => void }).always = noop;
  return skipping as unknown as typeof test;
}
