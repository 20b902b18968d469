import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chownSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { mintAdminToken } from '../src/auth/mint.js';
import { loadConfig } from '../src/config.js';
import { freePort, type PgCluster, startCluster, startStandby } from '../test/helpers/pg-cluster.js';

/**
 * A whole deployment on one machine, with PostgreSQL's own tools: a primary, a synchronous
 * standby (synchronous_standby_names) and an asynchronous replica (both pg_basebackup -R,
 * streaming replication), PgBouncer in transaction mode in front of the primary, Redis, and
 * N service instances (src/main.ts through tsx). Loopback only, everything under one
 * directory, every wait bounded; stop() (also on failure, SIGINT and SIGTERM) stops what it
 * started, in reverse order.
 *
 *   npm run topology -- up [--dir D] [--base-port P] [--instances N] [--no-pgbouncer] ...
 *   npm run topology -- status [--dir D]
 *   npm run topology -- down [--dir D]
 *
 * `up` stays in the foreground (Ctrl-C stops everything) and writes topology.json in the
 * directory, which `status` and `down` (from another shell) read. Tests import
 * startTopology() and ask for the parts they need.
 */

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const PGBOUNCER = ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer'].find((p) => existsSync(p));
const REDIS_SERVER = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((p) => existsSync(p));
/** The database the service uses (created on the primary; replicated to the standbys). */
export const DB_NAME = 'secrets';

export interface TopologyOptions {
  /** Everything goes under this directory (created); default a new temp dir. Removed by stop() unless keepDir. */
  dir?: string;
  keepDir?: boolean;
  /** Ports are basePort, basePort+1, ... in a fixed order; default: free ports. */
  basePort?: number;
  /** Default true. */
  syncStandby?: boolean;
  /** Default true. */
  asyncReplica?: boolean;
  /** Default true (needs pgbouncer installed). */
  pgbouncer?: boolean;
  /**
   * 'own' (default when redis-server is installed): start a redis-server here;
   * a redis:// URL: use that one; false: no Redis.
   */
  redis?: 'own' | false | string;
  /** Service instances (default 3; 0 for none). */
  instances?: number;
  /**
   * What the instances get as DATABASE_URL: 'multi' (primary and synchronous standby,
   * target_session_attrs=read-write: the default with a synchronous standby), 'primary'
   * (the default without), 'pgbouncer', or a URL.
   */
  instanceDatabase?: 'primary' | 'multi' | 'pgbouncer' | string;
  /** Extra environment for the instances (overrides the defaults). */
  env?: Record<string, string>;
  /** Every line an instance writes (stdout and stderr); they also go to instance-N.log. */
  onLog?: (instance: number, line: string) => void;
  /** Progress messages (default: none). */
  log?: (msg: string) => void;
}

export interface ServiceInstance {
  index: number;
  port: number;
  url: string;
  pid: number | undefined;
  child: ChildProcess;
  exited: Promise<number | string | null>;
  kill(signal?: NodeJS.Signals): Promise<number | string | null>;
}

export interface Topology {
  dir: string;
  primary: PgCluster;
  syncStandby: PgCluster | undefined;
  asyncReplica: PgCluster | undefined;
  pgbouncer: { port: number; pid: number | undefined; reload(primaryPort: number): void } | undefined;
  redis: { url: string; pid: number | undefined } | undefined;
  instances: ServiceInstance[];
  urls: {
    primary: string;
    syncStandby: string | undefined;
    asyncReplica: string | undefined;
    /** Primary and synchronous standby, libpq multi-host syntax, target_session_attrs=read-write. */
    multiHost: string;
    pgbouncer: string | undefined;
    redis: string | undefined;
    instances: string[];
  };
  /** The environment every instance got (keys included: treat as secret). */
  env: Record<string, string>;
  /** An admin JWT the instances accept. */
  adminToken(ttlSeconds?: number): string;
  /** Starts one more instance with the same environment (and `extra`). */
  startInstance(extra?: Record<string, string>): Promise<ServiceInstance>;
  /**
   * Promotes `node` (default: the synchronous standby) with pg_ctl promote, then points
   * PgBouncer and the remaining standbys at it. The old primary must be stopped first.
   */
  promote(node?: PgCluster): Promise<void>;
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function waitForPort(port: number, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`${what} did not listen on ${port} within ${ms} ms`);
    await sleep(100);
  }
}

/** One statement on its own short-lived connection (tests use it too). */
export async function sql<R extends pg.QueryResultRow>(url: string, text: string, params: unknown[] = []) {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  await c.connect();
  try {
    return (await c.query<R>(text, params)).rows;
  } finally {
    await c.end();
  }
}

/** Waits (bounded) until the primary reports `name` streaming, with the given sync_state. */
async function waitForReplication(primaryUrl: string, name: string, syncState: string, ms = 30_000) {
  const until = Date.now() + ms;
  for (;;) {
    const rows = await sql<{ state: string; sync_state: string }>(
      primaryUrl,
      'SELECT state, sync_state FROM pg_stat_replication WHERE application_name = $1',
      [name],
    );
    if (rows.some((r) => r.state === 'streaming' && r.sync_state === syncState)) return;
    if (Date.now() > until)
      throw new Error(
        `standby ${name} is not streaming (${syncState}) after ${ms} ms: ${JSON.stringify(rows)}`,
      );
    await sleep(100);
  }
}

function postgresOwner(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  return {
    uid: Number(execFileSync('id', ['-u', 'postgres']).toString().trim()),
    gid: Number(execFileSync('id', ['-g', 'postgres']).toString().trim()),
  };
}

/** Synchronous, for process 'exit': stop what is left without waiting (immediate shutdown). */
function killLeftovers(pids: Set<number>, dataDirs: string[]) {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM'); // runuser passes it on to PgBouncer; SIGKILL it could not
    } catch {}
  }
  for (const d of dataDirs) {
    try {
      const pid = Number(readFileSync(join(d, 'postmaster.pid'), 'utf8').split('\n')[0]);
      if (pid > 0) process.kill(pid, 'SIGQUIT'); // PostgreSQL's immediate shutdown
    } catch {}
  }
}

export async function startTopology(opts: TopologyOptions = {}): Promise<Topology> {
  const log = opts.log ?? (() => {});
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'topology-'));
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const owner = postgresOwner();
  // PostgreSQL and PgBouncer run as the postgres OS user when we are root: they must reach it.
  if (owner) chownSync(dir, owner.uid, owner.gid);
  let nextPort = opts.basePort;
  const port = async () => (nextPort === undefined ? freePort() : nextPort++);

  // What to undo, newest first; plus a synchronous last resort for an exiting process.
  const undo: (() => Promise<void>)[] = [];
  const pids = new Set<number>();
  const dataDirs: string[] = [];
  const stopFirst: (() => Promise<unknown>)[] = [];
  const onExit = () => killLeftovers(pids, dataDirs);
  process.on('exit', onExit);
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    // Instances first and together (each drains its requests), then the rest in reverse.
    await Promise.all(stopFirst.map((k) => k().catch(() => {})));
    for (const u of undo.reverse()) await u().catch((err) => log(`stop: ${(err as Error).message}`));
    process.off('exit', onExit);
    if (!opts.keepDir) rmSync(dir, { recursive: true, force: true });
  };

  const track = (child: ChildProcess, name: string) => {
    if (child.pid) pids.add(child.pid);
    const exited = new Promise<number | string | null>((resolve) =>
      child.once('exit', (code, signal) => {
        if (child.pid) pids.delete(child.pid);
        resolve(signal ?? code);
      }),
    );
    const kill = async (signal: NodeJS.Signals = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const r = await exited;
      clearTimeout(timer);
      return r;
    };
    undo.push(async () => {
      log(`stopping ${name}`);
      await kill('SIGTERM');
    });
    return { exited, kill };
  };

  try {
    const ports = {
      primary: await port(),
      syncStandby: await port(),
      asyncReplica: await port(),
      pgbouncer: await port(),
      redis: await port(),
    };
    const withSync = opts.syncStandby ?? true;
    const withAsync = opts.asyncReplica ?? true;

    log(`primary on ${ports.primary}`);
    const primary = await startCluster({
      parent: dir,
      name: 'primary',
      port: ports.primary,
    });
    dataDirs.push(primary.dataDir);
    undo.push(async () => {
      log('stopping primary');
      await primary.stop('immediate').catch(() => {});
    });
    await sql(primary.url(), `CREATE DATABASE ${DB_NAME}`);

    const standby = async (what: string, name: string, port: number, applicationName: string) => {
      log(`${what} on ${port}`);
      const node = await startStandby(primary, { parent: dir, name, port, applicationName });
      dataDirs.push(node.dataDir);
      undo.push(async () => {
        log(`stopping ${what}`);
        await node.stop('immediate').catch(() => {});
      });
      return node;
    };
    const syncStandby = withSync
      ? await standby('synchronous standby', 'sync-standby', ports.syncStandby, 'sync1')
      : undefined;
    const asyncReplica = withAsync
      ? await standby('asynchronous replica', 'async-replica', ports.asyncReplica, 'async1')
      : undefined;
    if (asyncReplica) await waitForReplication(primary.url(), 'async1', 'async');
    if (syncStandby) {
      // Only now: with no standby connected, every commit would wait. From here on commits
      // wait for the synchronous standby's flush, so an acknowledged write survives losing
      // the primary. ALTER SYSTEM after the clones: the standbys do not inherit it.
      await sql(primary.url(), `ALTER SYSTEM SET synchronous_standby_names = 'sync1'`);
      await sql(primary.url(), 'SELECT pg_reload_conf()');
      await waitForReplication(primary.url(), 'sync1', 'sync');
    }

    const hostUrl = (ports_: number[]) =>
      `postgres://postgres@${ports_.map((p) => `127.0.0.1:${p}`).join(',')}/${DB_NAME}`;
    const multiHost = `${hostUrl([primary.port, ...(syncStandby ? [syncStandby.port] : [])])}?target_session_attrs=read-write`;

    let pgbouncer: Topology['pgbouncer'];
    if (opts.pgbouncer ?? true) {
      if (!PGBOUNCER) throw new Error('pgbouncer is not installed (Debian: apt-get install -y pgbouncer)');
      const bdir = join(dir, 'pgbouncer');
      mkdirSync(bdir, { recursive: true, mode: 0o700 });
      const ini = join(bdir, 'pgbouncer.ini');
      const users = join(bdir, 'users.txt');
      const writeIni = (target: number) =>
        writeFileSync(
          ini,
          `[databases]
* = host=127.0.0.1 port=${target}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${ports.pgbouncer}
unix_socket_dir =
auth_type = trust
auth_file = ${users}
pool_mode = transaction
default_pool_size = 20
max_client_conn = 500
server_check_delay = 1
logfile = ${join(bdir, 'pgbouncer.log')}
pidfile = ${join(bdir, 'pgbouncer.pid')}
ignore_startup_parameters = extra_float_digits,options
`,
        );
      writeIni(primary.port);
      writeFileSync(users, '"postgres" ""\n');
      if (owner) for (const f of [bdir, ini, users]) chownSync(f, owner.uid, owner.gid);
      // PgBouncer refuses to run as root.
      const child = owner
        ? spawn('runuser', ['-u', 'postgres', '--', PGBOUNCER, ini], { stdio: 'ignore' })
        : spawn(PGBOUNCER, [ini], { stdio: 'ignore' });
      track(child, 'pgbouncer');
      await waitForPort(ports.pgbouncer, 15_000, 'PgBouncer');
      pgbouncer = {
        port: ports.pgbouncer,
        pid: child.pid,
        // New server connections go to `primaryPort`; RELOAD (SIGHUP) keeps client connections.
        reload(primaryPort: number) {
          writeIni(primaryPort);
          const pid = Number(readFileSync(join(bdir, 'pgbouncer.pid'), 'utf8').trim());
          process.kill(pid, 'SIGHUP');
        },
      };
      log(`pgbouncer on ${ports.pgbouncer}`);
    }

    let redis: Topology['redis'];
    const redisOpt = opts.redis ?? (REDIS_SERVER ? 'own' : false);
    if (redisOpt === 'own') {
      if (!REDIS_SERVER)
        throw new Error('redis-server is not installed (Debian: apt-get install -y redis-server)');
      const rdir = join(dir, 'redis');
      mkdirSync(rdir, { recursive: true, mode: 0o700 });
      const child = spawn(
        REDIS_SERVER,
        [
          '--port',
          String(ports.redis),
          '--bind',
          '127.0.0.1',
          '--save',
          '',
          '--appendonly',
          'no',
          '--dir',
          rdir,
          '--logfile',
          join(rdir, 'redis.log'),
        ],
        { stdio: 'ignore' },
      );
      track(child, 'redis');
      await waitForPort(ports.redis, 15_000, 'redis-server');
      redis = { url: `redis://127.0.0.1:${ports.redis}`, pid: child.pid };
      log(`redis on ${ports.redis}`);
    } else if (redisOpt) {
      redis = { url: redisOpt, pid: undefined };
    }

    const pgbouncerUrl = pgbouncer ? `postgres://postgres@127.0.0.1:${pgbouncer.port}/${DB_NAME}` : undefined;
    const choice = opts.instanceDatabase ?? (syncStandby ? 'multi' : 'primary');
    const databaseUrl =
      choice === 'primary'
        ? primary.url(DB_NAME)
        : choice === 'multi'
          ? multiHost
          : choice === 'pgbouncer'
            ? (pgbouncerUrl ?? '')
            : choice;
    if (!databaseUrl) throw new Error('instanceDatabase is pgbouncer but pgbouncer is off');
    const env: Record<string, string> = {
      NODE_ENV: 'production',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      DATABASE_URL: databaseUrl,
      DATABASE_POOL_MAX: '10',
      ENCRYPTION_KEY: randomBytes(32).toString('base64'),
      JWT_SECRET: randomBytes(48).toString('base64'),
      READ_RATE_LIMIT: '1000000',
      AUTH_FAILURE_RATE_LIMIT: '1000000',
      ...(choice === 'pgbouncer' ? { DATABASE_PREPARED_STATEMENTS: 'false' } : {}),
      ...(redis ? { REDIS_URL: redis.url } : {}),
      ...opts.env,
    };

    const instances: ServiceInstance[] = [];
    let instancePort = nextPort === undefined ? undefined : nextPort + 10;
    let started = 0;
    const startInstance = async (extra: Record<string, string> = {}): Promise<ServiceInstance> => {
      const index = started++;
      const p = instancePort === undefined ? await freePort() : instancePort++;
      const out = createWriteStream(join(dir, `instance-${index}.log`));
      const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? '', ...env, ...extra, PORT: String(p) },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const { exited, kill } = track(child, `instance ${index}`);
      stopFirst.push(() => kill('SIGTERM'));
      let buf = '';
      // The last lines it printed, for the error if it exits before it is ready (the log file
      // goes with the topology's directory when the caller stops it).
      const tail: string[] = [];
      for (const stream of [child.stdout, child.stderr]) {
        stream?.on('data', (d: Buffer) => {
          out.write(d);
          buf += d.toString();
          const lines = buf.split('\n');
          buf = lines.pop() ?? '';
          for (const l of lines) {
            opts.onLog?.(index, l);
            tail.push(l);
            if (tail.length > 12) tail.shift();
          }
        });
      }
      child.once('exit', () => out.end());
      const url = `http://127.0.0.1:${p}`;
      const until = Date.now() + 60_000;
      for (;;) {
        if (child.exitCode !== null || child.signalCode !== null) {
          await new Promise((r) => setImmediate(r));
          throw new Error(
            `instance ${index} (port ${p}) exited with ${child.exitCode ?? child.signalCode} before it was ready; its last lines:\n${[...tail, buf].join('\n')}`,
          );
        }
        const ok = await fetch(`${url}/ready`, { signal: AbortSignal.timeout(1000) })
          .then((r) => r.ok)
          .catch(() => false);
        if (ok) break;
        if (Date.now() > until) throw new Error(`instance ${index} not ready within 60 s`);
        await sleep(200);
      }
      const inst: ServiceInstance = { index, port: p, url, pid: child.pid, child, exited, kill };
      instances.push(inst);
      log(`instance ${index} at ${url}`);
      return inst;
    };
    // The first one applies the migrations; the others boot together.
    const n = opts.instances ?? 3;
    if (n > 0) await startInstance();
    await Promise.all(Array.from({ length: Math.max(0, n - 1) }, () => startInstance()));

    const config = loadConfig({ ...env, NODE_ENV: 'test' });
    const topology: Topology = {
      dir,
      primary,
      syncStandby,
      asyncReplica,
      pgbouncer,
      redis,
      instances,
      urls: {
        primary: primary.url(DB_NAME),
        syncStandby: syncStandby?.url(DB_NAME),
        asyncReplica: asyncReplica?.url(DB_NAME),
        multiHost,
        pgbouncer: pgbouncerUrl,
        redis: redis?.url,
        instances: instances.map((i) => i.url),
      },
      env,
      adminToken: (ttlSeconds = 3600) =>
        mintAdminToken(config, env.JWT_SECRET ?? '', { sub: 'topology', ttlSeconds }),
      startInstance,
      async promote(node = syncStandby) {
        if (!node) throw new Error('no standby to promote');
        await node.promote();
        // Wait (bounded) until it accepts writes.
        const until = Date.now() + 30_000;
        for (;;) {
          const rows = await sql<{ transaction_read_only: string }>(
            node.url(),
            'SHOW transaction_read_only',
          ).catch(() => []);
          if (rows[0]?.transaction_read_only === 'off') break;
          if (Date.now() > until) throw new Error('the promoted standby still refuses writes after 30 s');
          await sleep(100);
        }
        pgbouncer?.reload(node.port);
        // The other standbys follow the new primary's timeline (recovery_target_timeline=latest).
        for (const other of [syncStandby, asyncReplica]) {
          if (!other || other === node) continue;
          await sql(
            other.url(),
            `ALTER SYSTEM SET primary_conninfo = 'host=127.0.0.1 port=${node.port} user=postgres application_name=${other === syncStandby ? 'sync1' : 'async1'}'`,
          ).catch((err) => log(`repointing a standby failed: ${(err as Error).message}`));
          await sql(other.url(), 'SELECT pg_reload_conf()').catch(() => {});
        }
      },
      stop,
    };
    return topology;
  } catch (err) {
    await stop();
    throw err;
  }
}

// ---------------------------------------------------------------------------------------
// CLI: up | down | status

interface State {
  pid: number;
  dir: string;
  urls: Topology['urls'];
  ports: Record<string, number>;
  dataDirs: string[];
  token: string;
}

function parseArgs(argv: string[]) {
  const [cmd = 'status', ...rest] = argv;
  const flags = new Map<string, string | true>();
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i] ?? '';
    if (!a.startsWith('--')) throw new Error(`unexpected argument "${a}"`);
    const next = rest[i + 1];
    if (next !== undefined && !next.startsWith('--')) {
      flags.set(a.slice(2), next);
      i++;
    } else flags.set(a.slice(2), true);
  }
  return { cmd, flags };
}

function usage(): string {
  return `usage: npm run topology -- up|down|status [options]
  --dir D               where everything lives (default ${join(tmpdir(), 'secrets-topology')})
  --base-port P         ports P.. (P: primary, P+1 sync standby, P+2 async replica, P+3 pgbouncer,
                        P+4 redis, P+10.. instances); default: free ports
  --instances N         service instances (default 3)
  --database primary|multi|pgbouncer   the instances' DATABASE_URL (default multi; primary without a sync standby)
  --no-sync-standby --no-async-replica --no-pgbouncer --no-redis`;
}

async function cli(argv: string[]) {
  const { cmd, flags } = parseArgs(argv);
  const dir = String(flags.get('dir') ?? join(tmpdir(), 'secrets-topology'));
  const stateFile = join(dir, 'topology.json');
  const readState = (): State | undefined =>
    existsSync(stateFile) ? (JSON.parse(readFileSync(stateFile, 'utf8')) as State) : undefined;

  if (cmd === 'up') {
    const prev = readState();
    if (prev && isAlive(prev.pid))
      throw new Error(`a topology is already up in ${dir} (pid ${prev.pid}): npm run topology -- down`);
    rmSync(dir, { recursive: true, force: true });
    // A signal while starting: exit, and the 'exit' handler stops what was started so far.
    const early = () => process.exit(130);
    process.on('SIGINT', early);
    process.on('SIGTERM', early);
    const num = (name: string) => {
      const v = flags.get(name);
      if (v === undefined) return undefined;
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} needs a whole number`);
      return n;
    };
    const topo = await startTopology({
      dir,
      basePort: num('base-port'),
      instances: num('instances') ?? 3,
      syncStandby: !flags.has('no-sync-standby'),
      asyncReplica: !flags.has('no-async-replica'),
      pgbouncer: !flags.has('no-pgbouncer'),
      redis: flags.has('no-redis') ? false : undefined,
      ...(flags.has('database') ? { instanceDatabase: String(flags.get('database')) } : {}),
      log: (m) => process.stdout.write(`topology: ${m}\n`),
    });
    const token = topo.adminToken(12 * 3600);
    const state: State = {
      pid: process.pid,
      dir,
      urls: topo.urls,
      ports: {
        primary: topo.primary.port,
        ...(topo.syncStandby ? { syncStandby: topo.syncStandby.port } : {}),
        ...(topo.asyncReplica ? { asyncReplica: topo.asyncReplica.port } : {}),
        ...(topo.pgbouncer ? { pgbouncer: topo.pgbouncer.port } : {}),
      },
      dataDirs: [topo.primary, topo.syncStandby, topo.asyncReplica].flatMap((c) => (c ? [c.dataDir] : [])),
      token,
    };
    writeFileSync(stateFile, JSON.stringify(state, null, 2), { mode: 0o600 });
    process.stdout.write(
      `topology: up (Ctrl-C or "npm run topology -- down" stops it)\n${JSON.stringify(topo.urls, null, 2)}\n` +
        `admin token (12 h) in ${stateFile}\n`,
    );
    let stopping = false;
    const shutdown = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      process.stdout.write(`topology: ${signal}, stopping everything\n`);
      await topo.stop();
      process.exit(0);
    };
    process.off('SIGINT', early);
    process.off('SIGTERM', early);
    process.on('SIGINT', () => void shutdown('SIGINT'));
    process.on('SIGTERM', () => void shutdown('SIGTERM'));
    // Stay up until a signal.
    await new Promise(() => {});
  } else if (cmd === 'down') {
    const state = readState();
    if (!state) {
      process.stdout.write(`topology: nothing up in ${dir}\n`);
      return;
    }
    if (isAlive(state.pid)) {
      process.kill(state.pid, 'SIGTERM');
      const until = Date.now() + 60_000;
      while (isAlive(state.pid) && Date.now() < until) await sleep(200);
    }
    // Whatever survived (the up process was killed hard): immediate shutdown.
    killLeftovers(new Set(), state.dataDirs);
    rmSync(dir, { recursive: true, force: true });
    process.stdout.write('topology: down\n');
  } else if (cmd === 'status') {
    const state = readState();
    if (!state || !isAlive(state.pid)) {
      process.stdout.write(`topology: not running (${dir})\n`);
      process.exitCode = 1;
      return;
    }
    const lines: string[] = [`topology: up, pid ${state.pid}, dir ${dir}`];
    for (const [name, url] of Object.entries({
      primary: state.urls.primary,
      syncStandby: state.urls.syncStandby,
      asyncReplica: state.urls.asyncReplica,
    })) {
      if (!url) continue;
      const r = await sql<{ rec: boolean }>(url, 'SELECT pg_is_in_recovery() AS rec').catch(() => undefined);
      lines.push(`  ${name.padEnd(13)} ${url}  ${r ? (r[0]?.rec ? 'standby' : 'primary') : 'DOWN'}`);
    }
    for (const url of state.urls.instances) {
      const ok = await fetch(`${url}/ready`, { signal: AbortSignal.timeout(2000) })
        .then((r) => r.ok)
        .catch(() => false);
      lines.push(`  instance      ${url}  ${ok ? 'ready' : 'NOT READY'}`);
    }
    if (state.urls.pgbouncer) lines.push(`  pgbouncer     ${state.urls.pgbouncer}`);
    if (state.urls.redis) lines.push(`  redis         ${state.urls.redis}`);
    process.stdout.write(`${lines.join('\n')}\n`);
  } else {
    throw new Error(usage());
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  cli(process.argv.slice(2)).catch((err) => {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(1);
  });
}
