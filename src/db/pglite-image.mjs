// The embedded database's start-up image: a PGlite data directory right after initdb and
// every migration, made once (npm ci runs this as postinstall, `npm run build` again when a
// migration changed) and copied by the service into an empty DATA_DIR instead of running
// initdb and the migrations there: initdb costs several seconds of WebAssembly and leaves
// PGlite's memory at its high-water mark (WebAssembly memory never shrinks), the migrations
// most of a second more. It is kept as the plain directory PGlite closed cleanly, not as a
// dump: copying its files and opening them is a later start plus the copy, while loading a
// dump (PGlite's loadDataDir) unpacks it through the WebAssembly file system, seconds more.
//
// The image is stored under a key of the migrations it holds (src/db/migrator.mjs
// migrationPrefixKeys: names and texts), so a changed migration never starts from an image
// of its old text. A database started from it runs the normal migrator at start-up, which
// finds nothing to do, or applies what the image lacks (a migration added since the image
// was made); with a migration edited since, there is no image for it and initdb runs.
//
// An image holds the schema and the migrator's bookkeeping only: no key, no key canary, no
// secret or audit row. Every DATA_DIR generates its own keys and canaries at first start.
// Plain JavaScript: it runs at install time (scripts/pglite-image.mjs), before anything is
// compiled, and in production installs without the TypeScript tools. src/runtime.ts uses
// the same file; the build copies it into dist/db/ beside the compiled code.
import { constants, existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadMigrations, migrate, migrationPrefixKeys } from './migrator.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CACHE = join(ROOT, 'node_modules', '.cache', 'secrets-service');

async function pgliteVersion() {
  const main = fileURLToPath(import.meta.resolve('@electric-sql/pglite'));
  return JSON.parse(await readFile(join(dirname(main), '..', 'package.json'), 'utf8')).version;
}

/**
 * Where the image of a database migrated through the first k of `migrations` lives, for
 * k = migrations.length down to 0 (the installed PGlite's version is in the name too: its
 * data directory format follows its PostgreSQL).
 */
export async function pgliteImageDirs(migrations, cache = CACHE) {
  const version = await pgliteVersion();
  return migrationPrefixKeys(migrations)
    .map((key, k) => ({ dir: join(cache, `pglite-image-${version}-${key}`), migrations: k }))
    .reverse();
}

/**
 * The image that holds the most of `migrations` (as they are now), or undefined when there
 * is none (installed with --ignore-scripts, another PGlite version or an edited migration
 * since): the caller then runs initdb as PGlite does without one.
 */
export async function findPgliteImage(migrations, cache = CACHE) {
  return (await pgliteImageDirs(migrations, cache)).find((i) => existsSync(join(i.dir, 'PG_VERSION')));
}

/**
 * Copies an image into `target` (an empty data directory), owner-only as initdb makes them.
 * Node's fs.cp walks the tree several times slower than this; the files are independent, so
 * they are copied side by side (libuv's thread pool bounds how many at once), as
 * copy-on-write clones where the file system can.
 */
export async function copyPgliteImage(image, target) {
  await mkdir(target, { recursive: true, mode: 0o700 });
  await chmod(target, 0o700);
  const entries = await readdir(image, { withFileTypes: true });
  await Promise.all(
    entries.map(async (e) => {
      const from = join(image, e.name);
      const to = join(target, e.name);
      if (e.isDirectory()) return copyPgliteImage(from, to);
      await copyFile(from, to, constants.COPYFILE_FICLONE);
      await chmod(to, 0o600);
    }),
  );
}

/** Readable by every user (the service may run as another user than the install). */
async function makeReadable(dir) {
  await chmod(dir, 0o755);
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.isDirectory()) await makeReadable(join(dir, e.name));
    else await chmod(join(dir, e.name), 0o644);
  }
}

/**
 * Builds the image for `migrations` unless it exists, and removes the images of other
 * migrations or PGlite versions (and dumps of earlier versions of this script) from
 * `cache`. Returns the image's directory.
 */
export async function buildPgliteImage(opts = {}) {
  const cache = opts.cache ?? CACHE;
  const migrations = opts.migrations ?? (await loadMigrations());
  const [full] = await pgliteImageDirs(migrations, cache);
  if (!existsSync(join(full.dir, 'PG_VERSION'))) {
    // Made beside its final name and renamed: a concurrent install never sees half of it.
    const partial = `${full.dir}.${process.pid}.partial`;
    await rm(partial, { recursive: true, force: true });
    try {
      await mkdir(partial, { recursive: true });
      const { PGlite } = await import('@electric-sql/pglite');
      const pg = new PGlite({ dataDir: partial });
      try {
        await pg.waitReady;
        // The service's own migrator, on the same transaction interface it gets at start-up.
        await migrate(
          {
            transaction: (fn) =>
              pg.transaction((tx) =>
                fn({
                  query: async (sql, params) => (await tx.query(sql, params)).rows,
                  exec: async (sql) => void (await tx.exec(sql)),
                }),
              ),
          },
          migrations,
        );
      } finally {
        await pg.close();
      }
      await makeReadable(partial);
      await rename(partial, full.dir).catch(async (err) => {
        // Another build finished first: keep theirs.
        if (!existsSync(join(full.dir, 'PG_VERSION'))) throw err;
      });
    } finally {
      await rm(partial, { recursive: true, force: true });
    }
  }
  for (const name of await readdir(cache)) {
    const path = join(cache, name);
    if (name.startsWith('pglite-image-') && path !== full.dir && !name.endsWith('.partial'))
      await rm(path, { recursive: true, force: true });
  }
  return full.dir;
}
