import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { mintAdminToken } from '../../src/auth/mint.js';
import { loadConfig } from '../../src/config.js';
import { loadMigrations } from '../../src/db/migrate.js';
import { buildPgliteImage, copyPgliteImage } from '../../src/db/pglite-image.mjs';
import { distEntry } from '../helpers/cli.js';
import { freePort } from '../helpers/pg-cluster.js';
import { capturedLogs } from '../helpers/secrets.js';
import { runServiceToExit, startService } from '../helpers/service-process.js';

/**
 * What a newcomer sees on a terminal (issue 27): the compiled service (dist/main.js) run
 * under a pseudo-terminal (util-linux `script`, so stdout.isTTY is true, as for npm start in
 * a shell), and the refusals that must come before any start-up work.
 */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const dirs: string[] = [];
const children: ChildProcess[] = [];
afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.pid) process.kill(-c.pid, 'SIGKILL');
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'secrets-first-run-'));
  dirs.push(d);
  return d;
}

/** An admin token for the service started on `dataDir`, signed with the JWT secret it generated there. */
async function adminToken(dataDir: string): Promise<string> {
  const secret = (await readFile(join(dataDir, 'keys/jwt.secret'), 'utf8')).trim();
  return mintAdminToken(loadConfig({ JWT_SECRET: secret }), secret, { sub: 'first-run', ttlSeconds: 300 });
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: terminal colour codes
const plain = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '').replace(/\r/g, '');

/** Runs the service on a pseudo-terminal; `output()` is everything it wrote so far. */
function onTerminal(env: Record<string, string>) {
  const child = spawn(
    'script',
    ['-qefc', `${JSON.stringify(process.execPath)} ${distEntry('main')}`, '/dev/null'],
    {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', NODE_ENV: 'development', HOST: '127.0.0.1', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true, // its own process group: the test ends script and the service together
    },
  );
  children.push(child);
  let out = '';
  const waiters: { re: RegExp; resolve: (m: RegExpExecArray) => void }[] = [];
  const check = () => {
    for (const w of [...waiters]) {
      const m = w.re.exec(plain(out));
      if (m) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  };
  for (const s of [child.stdout, child.stderr])
    s?.on('data', (d: Buffer) => {
      out += d.toString();
      check();
    });
  return {
    output: () => plain(out),
    waitFor: (re: RegExp) =>
      new Promise<RegExpExecArray>((resolve) => {
        waiters.push({ re, resolve });
        check();
      }),
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        if (child.pid) process.kill(-child.pid, 'SIGTERM');
      }),
  };
}

it('on a terminal: one ready banner with the URLs and the token command, one line per request, probes quiet', async () => {
  const dataDir = await tempDir();
  await buildPgliteImage(); // npm ci's postinstall made it; a no-op then
  const port = await freePort();
  const svc = onTerminal({ DATA_DIR: join(dataDir, 'data'), PORT: String(port) });
  try {
    await svc.waitFor(/a token: .*\n/);
    const base = `http://127.0.0.1:${port}`;
    for (let i = 0; i < 3; i++) {
      expect((await fetch(`${base}/health`)).status).toBe(200);
      expect((await fetch(`${base}/ready`)).status).toBe(200);
    }
    expect((await fetch(`${base}/api/secrets/NOPE`)).status).toBe(401);
    // Refused requests: a bad query (400) and an unknown route (404), each still one line.
    const auth = { authorization: `Bearer ${await adminToken(join(dataDir, 'data'))}` };
    expect((await fetch(`${base}/api/audit?from=yesterday`, { headers: auth })).status).toBe(400);
    expect((await fetch(`${base}/api/nothing-here`)).status).toBe(404);
    expect((await fetch(`${base}/console/`)).status).toBe(200);
    // The last request's line is the event to wait for: the lines are written in order.
    await svc.waitFor(/GET \/console\/ 200/);
    const out = svc.output();
    // An empty DATA_DIR: created from the install-time image, which is migrated already.
    expect(out).toContain('creating the embedded database from the install-time image...');
    expect(out).not.toContain('database migration');
    expect(out.match(/Secrets service ready at /g)).toHaveLength(1);
    expect(out).toContain(`Secrets service ready at ${base}\n`);
    expect(out).toContain(`console: ${base}/console\n`);
    expect(out).toContain(`a token: DATA_DIR=${join(dataDir, 'data')} npm run -s token -- --sub NAME`);
    const requestLines = out.split('\n').filter((l) => /\b(GET|POST) \//.test(l));
    expect(requestLines).toHaveLength(4);
    // A refused request's one line ends with the error code the body carries.
    expect(requestLines[0]).toMatch(/INFO: GET \/api\/secrets\/NOPE 401 [\d.]+ ms AUTH_INVALID_CREDENTIALS$/);
    expect(requestLines[1]).toMatch(/INFO: GET \/api\/audit\?from=yesterday 400 [\d.]+ ms INVALID_INPUT$/);
    expect(requestLines[2]).toMatch(/INFO: GET \/api\/nothing-here 404 [\d.]+ ms NOT_FOUND$/);
    expect(requestLines[3]).toMatch(/INFO: GET \/console\/ 200 [\d.]+ ms$/);
    // ...and no second line about it: everything after the banner is those four lines.
    const afterBanner = out.slice(out.indexOf('a token: ')).split('\n').slice(1);
    expect(afterBanner.filter((l) => l.trim() !== '')).toEqual(requestLines);
    expect(out).not.toMatch(/\/health|\/ready/);
    // No pretty-printed objects spread over several lines (each request took about a dozen).
    expect(out).not.toMatch(/^\s+(req|res|method|url): /m);
  } finally {
    await svc.stop();
  }
}, 120_000);

const runService = (env: Record<string, string>) => runServiceToExit({ NODE_ENV: 'development', ...env });

it('a port in use stops start-up at once with exit 98, before keys or a database are made', async () => {
  const dataDir = join(await tempDir(), 'data');
  const holder: Server = createServer();
  const port = await new Promise<number>((resolve) =>
    holder.listen({ host: '127.0.0.1', port: 0 }, () => resolve((holder.address() as { port: number }).port)),
  );
  try {
    const { code, out } = await runService({ DATA_DIR: dataDir, PORT: String(port) });
    expect(code).toBe(98);
    expect(out).toBe(
      `port ${port} is in use on 127.0.0.1; set PORT to a free port (or stop the process holding it)\n`,
    );
    expect(existsSync(dataDir)).toBe(false); // no key generated, no initdb, no migration
  } finally {
    holder.close();
  }
}, 60_000);

it('DATA_DIR set but empty is a configuration error (exit 78) naming the variable', async () => {
  const { code, out } = await runService({ DATA_DIR: '' });
  expect(code).toBe(78);
  expect(out).toContain('DATA_DIR: is set but empty');
  expect(out).not.toMatch(/^\s+at /m);
}, 60_000);

it('DATA_DIRs made from the install-time image each store their own key canary and serve', async () => {
  await buildPgliteImage(); // npm ci's postinstall made it; a no-op then
  // Keys live in DATA_DIR/keys, outside the database, generated on first start; the canary
  // is stored under them. Were a canary in the image, the second directory's key (another
  // one) would fail the key check and /ready would not answer 200.
  const keys: string[] = [];
  // The image was made before this point (npm ci, or the line above); the default
  // environment's row in it carries that time, which is not when this database came to be.
  const started = Date.now();
  for (const name of ['one', 'two']) {
    const dataDir = join(await tempDir(), name);
    const from = capturedLogs.length;
    const svc = await startService({ DATA_DIR: dataDir, NODE_ENV: 'development' });
    try {
      expect((await fetch(`${svc.url}/ready`)).status).toBe(200);
      const res = await fetch(`${svc.url}/api/environments/default`, {
        headers: { authorization: `Bearer ${await adminToken(dataDir)}` },
      });
      const env = (await res.json()) as { createdAt: string; updatedAt: string };
      expect(Date.parse(env.createdAt)).toBeGreaterThanOrEqual(started);
      expect(env.updatedAt).toBe(env.createdAt);
    } finally {
      await svc.kill();
    }
    const logs = capturedLogs.slice(from).join('\n');
    expect(logs).toContain('creating the embedded database from the install-time image');
    expect(logs).toContain('generated encryption.key');
    expect(logs).not.toContain('database migration');
    keys.push(await readFile(join(dataDir, 'keys/encryption.key'), 'utf8'));
  }
  expect(keys[0]).not.toBe(keys[1]);
}, 180_000);

it('a database made before the newest migration: one progress line names what is applied', async () => {
  // An embedded database as an older release left it: migrated up to the one before last.
  const work = await tempDir();
  const migrations = await loadMigrations();
  const older = await buildPgliteImage({ cache: join(work, 'cache'), migrations: migrations.slice(0, -1) });
  const dataDir = join(work, 'data');
  await copyPgliteImage(older, join(dataDir, 'pglite'));
  const from = capturedLogs.length;
  const svc = await startService({ DATA_DIR: dataDir, NODE_ENV: 'development' });
  try {
    expect((await fetch(`${svc.url}/ready`)).status).toBe(200);
  } finally {
    await svc.kill();
  }
  const logs = capturedLogs.slice(from).join('\n');
  expect(logs).not.toContain('creating the embedded database');
  expect(logs.match(/applying 1 database migration\.\.\./g)).toHaveLength(1);
  expect(logs).toContain(`"applied":["${migrations.at(-1)?.name}"]`);
}, 180_000);
