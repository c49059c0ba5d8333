/**
 * Test images, built at test time because no registry is reachable: Debian's `busybox-static`
 * (/bin/busybox) becomes one layer (busybox + a symlink per applet in /bin, /etc/passwd, /tmp),
 * used by two images written into one OCI image-layout tarball:
 * - BUSYBOX_IMAGE (`docker.io/library/busybox:keelson-test`), Cmd `sh`;
 * - PAUSE_IMAGE (`registry.k8s.io/pause:keelson-test`), sleeps until SIGTERM/SIGINT, then exits 0.
 * The tarball is written in pure Node (a small ustar writer), deterministic, and cached under
 * $TMPDIR/keelson-test-images/<content key>/.
 *
 * Usage:
 *   const archive = await buildTestImages();                 // path of the OCI tarball
 *   await importImages({ socket: node.socket, snapshotter: node.snapshotter }); // ctr -n k8s.io import
 *   // then CRI sees BUSYBOX_IMAGE and PAUSE_IMAGE (no pull needed).
 */
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export const BUSYBOX_IMAGE = 'docker.io/library/busybox:keelson-test';
export const PAUSE_IMAGE = 'registry.k8s.io/pause:keelson-test';
export const BUSYBOX_BINARY = '/bin/busybox';
/** Bump when the image layout or configs change, so cached archives are rebuilt. */
const BUILDER_VERSION = '1';
const MTIME = 1_700_000_000; // fixed, so the archive is byte-for-byte reproducible

const PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** The pause process: wakes on TERM/INT (the trap interrupts `wait`) and exits 0. */
const PAUSE_SCRIPT = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done";

// ---- a minimal ustar writer ------------------------------------------------------------------

type TarEntry =
  | { type: 'dir'; name: string; mode: number }
  | { type: 'file'; name: string; mode: number; data: Buffer }
  | { type: 'symlink'; name: string; target: string };

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

function tarHeader(entry: TarEntry): Buffer {
  const h = Buffer.alloc(512, 0);
  const name = entry.type === 'dir' && !entry.name.endsWith('/') ? `${entry.name}/` : entry.name;
  if (Buffer.byteLength(name) > 100) throw new Error(`tar: name too long: ${name}`);
  const mode = entry.type === 'symlink' ? 0o777 : entry.mode;
  const size = entry.type === 'file' ? entry.data.length : 0;
  h.write(name, 0, 100, 'utf8');
  h.write(octal(mode, 8), 100, 8, 'ascii');
  h.write(octal(0, 8), 108, 8, 'ascii'); // uid
  h.write(octal(0, 8), 116, 8, 'ascii'); // gid
  h.write(octal(size, 12), 124, 12, 'ascii');
  h.write(octal(MTIME, 12), 136, 12, 'ascii');
  h.write('        ', 148, 8, 'ascii'); // checksum placeholder
  h.write(entry.type === 'dir' ? '5' : entry.type === 'symlink' ? '2' : '0', 156, 1, 'ascii');
  if (entry.type === 'symlink') h.write(entry.target, 157, 100, 'utf8');
  h.write('ustar\0', 257, 6, 'ascii');
  h.write('00', 263, 2, 'ascii');
  h.write('root', 265, 32, 'ascii');
  h.write('root', 297, 32, 'ascii');
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(octal(sum, 7) + ' ', 148, 8, 'ascii');
  return h;
}

export function writeTar(entries: TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    parts.push(tarHeader(entry));
    if (entry.type === 'file') {
      parts.push(entry.data);
      const pad = (512 - (entry.data.length % 512)) % 512;
      if (pad) parts.push(Buffer.alloc(pad, 0));
    }
  }
  parts.push(Buffer.alloc(1024, 0));
  return Buffer.concat(parts);
}

// ---- OCI image layout ----------------------------------------------------------------------------

function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

function ociArch(): string {
  return process.arch === 'x64' ? 'amd64' : process.arch;
}

function busyboxApplets(): string[] {
  const out = execFileSync(BUSYBOX_BINARY, ['--list'], { encoding: 'utf8' });
  return out
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s && s !== 'busybox' && !s.includes('/'))
    .sort();
}

function rootfsLayer(busybox: Buffer, applets: string[]): Buffer {
  const entries: TarEntry[] = [
    { type: 'dir', name: 'bin', mode: 0o755 },
    { type: 'file', name: 'bin/busybox', mode: 0o755, data: busybox },
    ...applets.map((a): TarEntry => ({ type: 'symlink', name: `bin/${a}`, target: 'busybox' })),
    { type: 'dir', name: 'etc', mode: 0o755 },
    { type: 'file', name: 'etc/passwd', mode: 0o644, data: Buffer.from('root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n') },
    { type: 'file', name: 'etc/group', mode: 0o644, data: Buffer.from('root:x:0:\nnogroup:x:65534:\n') },
    { type: 'dir', name: 'root', mode: 0o700 },
    { type: 'dir', name: 'tmp', mode: 0o1777 },
    { type: 'dir', name: 'var', mode: 0o755 },
    { type: 'dir', name: 'var/www', mode: 0o755 },
  ];
  return writeTar(entries);
}

interface Blob {
  digest: string;
  data: Buffer;
}

function blob(data: Buffer | string): Blob {
  const buf = typeof data === 'string' ? Buffer.from(data) : data;
  return { digest: `sha256:${sha256(buf)}`, data: buf };
}

interface ImageSpecInput {
  ref: string;
  entrypoint?: string[];
  cmd?: string[];
}

/** Builds the OCI layout tarball bytes holding every image of `images` on one shared layer. */
export function buildOciArchive(busybox: Buffer, applets: string[], images: ImageSpecInput[]): Buffer {
  const layer = blob(rootfsLayer(busybox, applets));
  const blobs = new Map<string, Blob>([[layer.digest, layer]]);
  const manifests: unknown[] = [];
  for (const image of images) {
    const config = blob(
      JSON.stringify({
        architecture: ociArch(),
        os: 'linux',
        created: new Date(MTIME * 1000).toISOString(),
        config: { Env: [PATH_ENV], Entrypoint: image.entrypoint, Cmd: image.cmd, WorkingDir: '/' },
        rootfs: { type: 'layers', diff_ids: [layer.digest] },
        history: [{ created: new Date(MTIME * 1000).toISOString(), created_by: 'keelson test image builder' }],
      }),
    );
    const manifest = blob(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.data.length },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layer.digest, size: layer.data.length }],
      }),
    );
    blobs.set(config.digest, config);
    blobs.set(manifest.digest, manifest);
    manifests.push({
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: manifest.digest,
      size: manifest.data.length,
      platform: { architecture: ociArch(), os: 'linux' },
      annotations: {
        'io.containerd.image.name': image.ref,
        'org.opencontainers.image.ref.name': image.ref.slice(image.ref.lastIndexOf(':') + 1),
      },
    });
  }
  const index = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests });
  const entries: TarEntry[] = [
    { type: 'file', name: 'oci-layout', mode: 0o644, data: Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })) },
    { type: 'file', name: 'index.json', mode: 0o644, data: Buffer.from(index) },
    { type: 'dir', name: 'blobs', mode: 0o755 },
    { type: 'dir', name: 'blobs/sha256', mode: 0o755 },
    ...[...blobs.values()].map((b): TarEntry => ({ type: 'file', name: `blobs/sha256/${b.digest.slice(7)}`, mode: 0o644, data: b.data })),
  ];
  return writeTar(entries);
}

export const TEST_IMAGES: ImageSpecInput[] = [
  { ref: BUSYBOX_IMAGE, cmd: ['sh'] },
  { ref: PAUSE_IMAGE, entrypoint: ['/bin/sh', '-c', PAUSE_SCRIPT] },
];

export function imageCacheDir(): string {
  return path.join(os.tmpdir(), 'keelson-test-images');
}

/** Builds (or reuses from the cache) the OCI tarball with BUSYBOX_IMAGE and PAUSE_IMAGE. */
export async function buildTestImages(): Promise<string> {
  const busybox = readFileSync(BUSYBOX_BINARY);
  const applets = busyboxApplets();
  const key = sha256(`${BUILDER_VERSION}\n${sha256(busybox)}\n${applets.join(',')}\n${JSON.stringify(TEST_IMAGES)}\n${ociArch()}`).slice(0, 16);
  const dir = path.join(imageCacheDir(), key);
  const archive = path.join(dir, 'keelson-test-images.oci.tar');
  if (existsSync(archive)) return archive;
  mkdirSync(dir, { recursive: true });
  const tmp = `${archive}.${process.pid}.tmp`;
  writeFileSync(tmp, buildOciArchive(busybox, applets, TEST_IMAGES));
  renameSync(tmp, archive); // atomic, so parallel test workers never read a half-written file
  return archive;
}

export interface ImportTarget {
  /** containerd's socket path. */
  socket: string;
  /** Snapshotter the CRI plugin uses (overlayfs or native); images must be unpacked into it. */
  snapshotter?: string;
}

/** Imports the test images into containerd's `k8s.io` namespace, where the CRI plugin sees them. */
export async function importImages(target: ImportTarget): Promise<void> {
  const archive = await buildTestImages();
  const args = ['-n', 'k8s.io', '--address', target.socket, 'images', 'import'];
  if (target.snapshotter) args.push('--snapshotter', target.snapshotter);
  args.push(archive);
  try {
    await execFileAsync('ctr', args, { timeout: 60_000 });
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`ctr images import into ${target.socket} failed: ${e.message}${e.stderr ? `\n${e.stderr}` : ''}`, { cause: err });
  }
}
