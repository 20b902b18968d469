// The embedded database's start-up image: a PGlite data directory right after initdb,
// dumped once (npm ci runs this as postinstall) and loaded by the service into an empty
// DATA_DIR instead of running initdb there, which costs several seconds of WebAssembly and
// leaves PGlite's memory at initdb's high-water mark (WebAssembly memory never shrinks).
// It holds no table of the service, so no key, canary or row: every DATA_DIR generates its
// own keys, and the migrations run on top of it at start-up as on any database.
// Plain JavaScript: it runs at install time, before anything is compiled, and in
// production installs without the TypeScript tools. src/runtime.ts uses the same file.
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** The image for the installed PGlite (its data directory format follows PGlite's PostgreSQL). */
export async function pgliteImageFile() {
  const main = fileURLToPath(import.meta.resolve('@electric-sql/pglite'));
  const { version } = JSON.parse(await readFile(join(dirname(main), '..', 'package.json'), 'utf8'));
  return join(ROOT, 'node_modules', '.cache', 'secrets-service', `pglite-image-${version}.tar.gz`);
}

/** Builds the image unless it exists; returns its path. */
export async function buildPgliteImage() {
  const file = await pgliteImageFile();
  if (
    await stat(file).then(
      () => true,
      () => false,
    )
  )
    return file;
  const { PGlite } = await import('@electric-sql/pglite');
  const pg = new PGlite();
  try {
    await pg.waitReady;
    const dump = await pg.dumpDataDir('gzip');
    await mkdir(dirname(file), { recursive: true });
    // Written beside its final name and renamed: a concurrent install never reads half a file.
    const partial = `${file}.${process.pid}`;
    await writeFile(partial, Buffer.from(await dump.arrayBuffer()));
    await rename(partial, file);
  } finally {
    await pg.close();
  }
  return file;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    const file = await buildPgliteImage();
    process.stdout.write(`embedded database image: ${file}\n`);
  } catch (err) {
    // Never fail an install for it: without the image the first start runs initdb instead.
    await rm(`${await pgliteImageFile().catch(() => '')}.${process.pid}`, { force: true }).catch(() => {});
    process.stderr.write(
      `embedded database image not built (${err?.message ?? err}); the first start will run initdb\n`,
    );
  }
}
