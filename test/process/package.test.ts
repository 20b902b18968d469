import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestServer, type TestServer } from '../helpers/server.js';

/**
 * The package as a user installs it: `npm pack` (its prepack builds dist/), then
 * `npm install <tarball>` into an empty directory (production dependencies from the
 * registry), then the bin and the typed client from there. The pack runs in a copy of the
 * sources so that its build does not rewrite the dist/ other test files are running.
 */
const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const { version } = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };

let t: TestServer;
let work: string;
beforeAll(async () => {
  t = await createTestServer();
  work = await mkdtemp(join(tmpdir(), 'secrets-pack-'));
});
afterAll(async () => {
  await t?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

it('npm pack ships dist/; the installed bin and client work from an empty directory', async () => {
  const copy = join(work, 'project');
  await mkdir(join(copy, 'scripts'), { recursive: true });
  for (const p of [
    'package.json',
    'package-lock.json',
    'tsconfig.json',
    'tsconfig.build.json',
    'README.md',
    'scripts/pglite-image.mjs',
  ]) {
    await cp(join(ROOT, p), join(copy, p));
  }
  // The light CLI package, packed below (its prepack runs scripts/build-cli.ts).
  await mkdir(join(copy, 'packages/cli'), { recursive: true });
  await cp(join(ROOT, 'packages/cli/package.json'), join(copy, 'packages/cli/package.json'));
  await cp(join(ROOT, 'packages/cli/README.md'), join(copy, 'packages/cli/README.md'));
  for (const d of ['src', 'migrations', 'openapi', 'docs', 'scripts']) {
    await cp(join(ROOT, d), join(copy, d), { recursive: true });
  }
  await symlink(join(ROOT, 'node_modules'), join(copy, 'node_modules'), 'dir');

  const packed = await run('npm', ['pack', '--json', '--pack-destination', work], { cwd: copy });
  const [info] = JSON.parse(packed.stdout) as [{ filename: string; files: { path: string }[] }];
  const files = info.files.map((f) => f.path);
  expect(files).toEqual(
    expect.arrayContaining([
      'dist/cli/secrets.js',
      'dist/client/index.js',
      'dist/client/index.d.ts',
      'dist/client/schema.d.ts',
      'dist/client/types.d.ts',
      'dist/main.js',
      'migrations/001_secrets.sql',
      // The package's postinstall runs it; it loads dist/db/pglite-image.mjs.
      'scripts/pglite-image.mjs',
      // dist/runtime.js imports it, and so does the postinstall.
      'dist/db/pglite-image.mjs',
      // dist/db/migrate.js imports it, and so does the image.
      'dist/db/migrator.mjs',
    ]),
  );
  expect(files.filter((f) => f.startsWith('src/') || f.startsWith('test/'))).toEqual([]);

  const app = join(work, 'app');
  await mkdir(app);
  await writeFile(
    join(app, 'package.json'),
    JSON.stringify({ name: 'consumer', private: true, type: 'module' }),
  );
  await run('npm', ['install', '--no-audit', '--no-fund', join(work, info.filename)], {
    cwd: app,
    timeout: 300_000,
  });
  // tsx is a development dependency: it is not installed with the package.
  expect(existsSync(join(app, 'node_modules', 'tsx'))).toBe(false);

  const v = await run('npx', ['--no-install', 'secrets', '--version'], { cwd: app });
  expect(v.stdout.trim()).toBe(version);

  const env = { ...process.env, SECRETS_URL: t.url, SECRETS_TOKEN: t.token('pack-test') };
  await t.client.setSecret('PACKED_KEY', 'x');
  const listed = await run('npx', ['--no-install', 'secrets', 'list'], { cwd: app, env });
  expect(listed.stdout).toBe('PACKED_KEY\n');

  const script = `import { createSecretsClient } from 'secrets-service/client';
const c = createSecretsClient({ baseUrl: process.env.SECRETS_URL, token: process.env.SECRETS_TOKEN });
const list = await c.listSecrets();
process.stdout.write(list.map((s) => s.key).join(','));`;
  const imported = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: app, env });
  expect(imported.stdout).toBe('PACKED_KEY');

  // The light CLI package: packed from packages/cli (its prepack builds the bundle), it
  // installs as one package with no dependencies, holds no server, and works the same.
  const lightPacked = await run('npm', ['pack', '--json', '--pack-destination', work], {
    cwd: join(copy, 'packages/cli'),
  });
  const [light] = JSON.parse(lightPacked.stdout) as [{ filename: string; files: { path: string }[] }];
  expect(light.files.map((f) => f.path).sort()).toEqual([
    'README.md',
    'dist/THIRD_PARTY_LICENSES.txt',
    'dist/cli/secrets.cjs',
    'package.json',
  ]);
  const ci = join(work, 'ci');
  await mkdir(ci);
  await writeFile(join(ci, 'package.json'), JSON.stringify({ name: 'ci', private: true }));
  await run('npm', ['install', '--no-audit', '--no-fund', '--offline', join(work, light.filename)], {
    cwd: ci,
    timeout: 120_000,
  });
  const installed = JSON.parse(await readFile(join(ci, 'node_modules/.package-lock.json'), 'utf8')) as {
    packages: Record<string, unknown>;
  };
  expect(Object.keys(installed.packages)).toEqual(['node_modules/secrets-service-cli']);
  const lv = await run('npx', ['--no-install', 'secrets', '--version'], { cwd: ci });
  expect(lv.stdout.trim()).toBe(version);
  const ran = await run('npx', ['--no-install', 'secrets', 'run', '--', 'printenv', 'PACKED_KEY'], {
    cwd: ci,
    env,
  });
  expect(ran.stdout).toBe('x\n');
  const serve = await run('npx', ['--no-install', 'secrets', 'serve'], { cwd: ci }).catch(
    (e: { code: number; stderr: string }) => e,
  );
  expect(serve).toMatchObject({ code: 2 });
  expect((serve as { stderr: string }).stderr).toContain('comes with the server package');
}, 400_000);
