import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

/**
 * Builds the light CLI package (packages/cli): src/cli/secrets.ts and what it imports
 * (commander, dotenv, openapi-fetch, the typed client) bundled into one file with no runtime
 * dependencies, and without the server: operator.ts (serve, migrate, token, rewrap, which
 * import the server lazily) is replaced by operator-light.ts. The bundle sits at
 * dist/cli/secrets.cjs so that the CLI's `../../package.json` is the light package's own.
 * CommonJS, not ESM: Node runs a CommonJS entry without its ESM loader (which also loads
 * node:fs/promises, readline and the fs watchers to read the one file), a few ms of CPU of
 * every start (docs/benchmarks.md).
 */
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DIST = `${ROOT}packages/cli/dist`;
const OUT = `${DIST}/cli/secrets.cjs`;
// A stale file (an older build's name) would ship in the package too.
await rm(DIST, { recursive: true, force: true });

const result = await build({
  entryPoints: [`${ROOT}src/cli/secrets.ts`],
  outfile: OUT,
  absWorkingDir: ROOT,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  minify: true,
  legalComments: 'none',
  metafile: true,
  logLevel: 'warning',
  // The one import.meta in the CLI (its package.json, by URL), as CommonJS has it.
  define: { 'import.meta.url': '__import_meta_url' },
  banner: {
    js: "'use strict'; const __import_meta_url = require('node:url').pathToFileURL(__filename).href;",
  },
  plugins: [
    {
      name: 'no-server',
      setup(b) {
        b.onResolve({ filter: /\/operator\.js$/ }, () => ({ path: `${ROOT}src/cli/operator-light.ts` }));
      },
    },
  ],
});

// The server must not be in the bundle: no module of src/ outside the CLI, the client and
// the pure helpers it shares with the server.
const allowed =
  /^(src\/cli\/|src\/client\/|src\/secret-names\.ts$|src\/environment-names\.ts$|src\/secrets\/export-format\.ts$)|(^|\/)node_modules\//;
const inputs = Object.keys(result.metafile.inputs).filter((p) => !allowed.test(p));
if (inputs.length) throw new Error(`the light CLI bundle pulled in server modules: ${inputs.join(', ')}`);
const pkg = JSON.parse(await readFile(`${ROOT}package.json`, 'utf8')) as { version: string };
const light = JSON.parse(await readFile(`${ROOT}packages/cli/package.json`, 'utf8')) as { version: string };
if (light.version !== pkg.version) {
  throw new Error(
    `packages/cli/package.json has version ${light.version}, the server ${pkg.version}: keep them equal`,
  );
}

// The bundled packages' licences travel with the bundle (they ask for their notices to).
const bundled = new Set(
  Object.keys(result.metafile.inputs)
    .map((p) => /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(p)?.[1])
    .filter((n): n is string => n !== undefined),
);
let notices = 'Third-party software bundled in dist/cli/secrets.cjs\n';
for (const name of [...bundled].sort()) {
  const dir = `${ROOT}node_modules/${name}`;
  const { version, license } = JSON.parse(await readFile(`${dir}/package.json`, 'utf8')) as {
    version: string;
    license: string;
  };
  const file = (await readdir(dir)).find((f) => /^licen[cs]e/i.test(f));
  const text = file ? await readFile(`${dir}/${file}`, 'utf8') : `(${license})`;
  notices += `\n=== ${name}@${version} (${license}) ===\n\n${text.trim()}\n`;
}
await writeFile(`${ROOT}packages/cli/dist/THIRD_PARTY_LICENSES.txt`, notices);
