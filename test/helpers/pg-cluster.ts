import { execFile } from 'node:child_process';
import { appendFileSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

/**
 * A throwaway PostgreSQL cluster for fault tests: initdb in a temp dir, its own port and
 * socket dir, started and stopped with pg_ctl. PostgreSQL refuses to run as root, so when
 * the tests run as root every command runs as the `postgres` OS user (runuser).
 * `startStandby` clones a running cluster with pg_basebackup -R (streaming replication),
 * for the topology script (scripts/topology.ts) and the fail-over and replica suites.
 */
const run = promisify(execFile);

export function binDir(): string {
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base) ? readdirSync(base).sort((a, b) => Number(b) - Number(a)) : [];
  for (const v of versions) if (existsSync(join(base, v, 'bin', 'pg_ctl'))) return join(base, v, 'bin');
  throw new Error(`no PostgreSQL binaries under ${base}/*/bin (install postgresql to run the fault suites)`);
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export interface PgCluster {
  port: number;
  /** The cluster's own directory (data dir, socket, log). */
  dir: string;
  dataDir: string;
  url(db?: string): string;
  /** fast: clean shutdown (clients disconnected); immediate: like a crash. */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  start(): Promise<void>;
  /** pg_ctl promote: a standby becomes a primary (waits until it accepts writes). */
  promote(): Promise<void>;
  destroy(): Promise<void>;
}

export interface ClusterOptions {
  /** Create the cluster's directory under this one (default: a new temp dir). */
  parent?: string;
  /** Directory name under `parent` (default: pgfault-XXXXXX). */
  name?: string;
  /** Default: a free port. */
  port?: number;
  /** Extra server settings (-c name=value), e.g. synchronous_standby_names. */
  settings?: Record<string, string>;
}

/** Whether commands must run as the `postgres` OS user, and its uid/gid. */
async function osUser(): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const uid = Number((await run('id', ['-u', 'postgres'])).stdout.trim());
  const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
  return { uid, gid };
}

/** A directory for one PostgreSQL cluster, owned by the user PostgreSQL will run as. */
export async function clusterDir(opts: Pick<ClusterOptions, 'parent' | 'name'>): Promise<string> {
  let dir: string;
  if (opts.parent && opts.name) {
    dir = join(opts.parent, opts.name);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } else {
    dir = mkdtempSync(join(opts.parent ?? tmpdir(), opts.name ?? 'pgfault-'));
  }
  const user = await osUser();
  if (user) chownSync(dir, user.uid, user.gid);
  return dir;
}

/** Runs a PostgreSQL binary, as the postgres OS user when we are root. */
export async function pgCommand(cmd: string, args: string[]): Promise<{ stdout: string }> {
  const bin = binDir();
  const user = await osUser();
  return user ? run('runuser', ['-u', 'postgres', '--', join(bin, cmd), ...args]) : run(join(bin, cmd), args);
}

async function attach(dir: string, port: number, settings: Record<string, string>): Promise<PgCluster> {
  const data = join(dir, 'data');
  const extra = Object.entries(settings)
    .map(([k, v]) => ` -c ${k}=${v}`)
    .join('');
  const opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200${extra}`;
  const cluster: PgCluster = {
    port,
    dir,
    dataDir: data,
    url: (db = 'postgres') => `postgres://postgres@127.0.0.1:${port}/${db}`,
    async start() {
      await pgCommand('pg_ctl', ['-D', data, '-o', opts, '-l', join(dir, 'log'), '-w', '-t', '30', 'start']);
    },
    async stop(mode = 'fast') {
      await pgCommand('pg_ctl', ['-D', data, '-m', mode, '-w', '-t', '30', 'stop']);
    },
    async promote() {
      await pgCommand('pg_ctl', ['-D', data, '-w', '-t', '30', 'promote']);
    },
    async destroy() {
      await cluster.stop('immediate').catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return cluster;
}

export async function startCluster(opts: ClusterOptions = {}): Promise<PgCluster> {
  const dir = await clusterDir(opts);
  await pgCommand('initdb', [
    '-D',
    join(dir, 'data'),
    '-U',
    'postgres',
    '--auth=trust',
    '-E',
    'UTF8',
    '--no-sync',
    '--no-instructions',
  ]);
  const cluster = await attach(dir, opts.port ?? (await freePort()), opts.settings ?? {});
  await cluster.start();
  return cluster;
}

/**
 * A streaming-replication standby of `primary`: pg_basebackup -R (which writes
 * standby.signal and primary_conninfo), then primary_conninfo again with an
 * application_name, the name synchronous_standby_names refers to. Started as a hot standby.
 */
export async function startStandby(
  primary: PgCluster,
  opts: ClusterOptions & { applicationName: string },
): Promise<PgCluster> {
  const dir = await clusterDir(opts);
  const data = join(dir, 'data');
  await pgCommand('pg_basebackup', [
    '-h',
    '127.0.0.1',
    '-p',
    String(primary.port),
    '-U',
    'postgres',
    '-D',
    data,
    '-R',
    '-X',
    'stream',
    '--no-sync',
    '-c',
    'fast',
  ]);
  // Appended last, so it wins over the line pg_basebackup -R wrote.
  appendFileSync(
    join(data, 'postgresql.auto.conf'),
    `primary_conninfo = 'host=127.0.0.1 port=${primary.port} user=postgres application_name=${opts.applicationName}'\n`,
  );
  const cluster = await attach(dir, opts.port ?? (await freePort()), opts.settings ?? {});
  await cluster.start();
  return cluster;
}
