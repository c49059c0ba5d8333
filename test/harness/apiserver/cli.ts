/**
 * Runs the test apiserver by hand:
 *
 *   node dist/test/harness/apiserver/cli.js [--port 6443] [--host 127.0.0.1] [--fixtures FILE.yaml]...
 *       [--kubeconfig-out PATH] [--bookmark-interval-ms N] [--auto-approve-csrs]
 *
 * Fixtures are multi-document YAML (or JSON) files; `kind: List` documents are flattened. The admin
 * kubeconfig path is printed as the first line on stdout; point keelson or kubectl at it. Stops on
 * SIGINT/SIGTERM.
 */
import { copyFileSync, readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { startTestApiserver } from './index';
import type { Obj } from './index';

interface CliOptions {
  port: number;
  host: string;
  fixtures: string[];
  kubeconfigOut?: string;
  bookmarkIntervalMs?: number;
  autoApproveCsrs: boolean;
}

function usage(message?: string): never {
  if (message) process.stderr.write(`test-apiserver: ${message}\n`);
  process.stderr.write('usage: cli.js [--port N] [--host ADDR] [--fixtures FILE]... [--kubeconfig-out PATH] [--bookmark-interval-ms N] [--auto-approve-csrs]\n');
  process.exit(2);
}

export function parseArgs(argv: string[]): CliOptions {
  const options: CliOptions = { port: 6443, host: '127.0.0.1', fixtures: [], autoApproveCsrs: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined) usage(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--port':
        options.port = Number(value());
        if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) usage('invalid --port');
        break;
      case '--host':
        options.host = value();
        break;
      case '--fixtures':
        options.fixtures.push(value());
        break;
      case '--kubeconfig-out':
        options.kubeconfigOut = value();
        break;
      case '--bookmark-interval-ms':
        options.bookmarkIntervalMs = Number(value());
        break;
      case '--auto-approve-csrs':
        options.autoApproveCsrs = true;
        break;
      case '-h':
      case '--help':
        usage();
        break;
      default:
        usage(`unknown argument ${arg}`);
    }
  }
  return options;
}

/** Objects of a multi-document YAML file; `List` documents contribute their items. */
export function loadFixtures(path: string): Obj[] {
  const text = readFileSync(path, 'utf8');
  const out: Obj[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length) throw new Error(`${path}: ${doc.errors[0]!.message}`);
    const value = doc.toJS() as Obj | null;
    if (!value) continue;
    if (typeof value !== 'object' || typeof value.kind !== 'string') throw new Error(`${path}: a document without kind`);
    if (value.kind === 'List' || (value.kind.endsWith('List') && Array.isArray(value.items))) out.push(...(value.items as Obj[]));
    else out.push(value);
  }
  return out;
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const fixtures = options.fixtures.flatMap(loadFixtures);
  const api = await startTestApiserver({
    port: options.port,
    host: options.host,
    fixtures,
    bookmarkIntervalMs: options.bookmarkIntervalMs,
    autoApproveCsrs: options.autoApproveCsrs,
  });
  let kubeconfig = api.kubeconfigPath;
  if (options.kubeconfigOut) {
    copyFileSync(api.kubeconfigPath, options.kubeconfigOut);
    kubeconfig = options.kubeconfigOut;
  }
  process.stdout.write(`${kubeconfig}\n`);
  process.stderr.write(`test apiserver listening on ${api.url} with ${fixtures.length} fixture objects; CA ${api.caPath}\n`);
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    void api.stop().then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`test-apiserver: ${(err as Error).message ?? String(err)}\n`);
    process.exit(1);
  });
}
