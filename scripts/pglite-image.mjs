// npm's postinstall (and the last step of `npm run build`): builds the embedded database's
// migrated start-up image. The code is src/db/pglite-image.mjs, which the service uses too;
// in a checkout it runs from src/ (nothing is compiled yet at `npm ci`), in the installed
// package, which ships dist/ and no src/, from the copy the build put in dist/db/.
// Plain JavaScript: it runs with node alone, before anything is compiled.
import { existsSync } from 'node:fs';

const source = new URL('../src/db/pglite-image.mjs', import.meta.url);
const lib = existsSync(source) ? source : new URL('../dist/db/pglite-image.mjs', import.meta.url);

try {
  const { buildPgliteImage } = await import(lib.href);
  const dir = await buildPgliteImage();
  // On stderr: `npm run build` runs this too, and `npm pack --json` (its prepack builds)
  // reads the JSON from stdout.
  process.stderr.write(`embedded database image: ${dir}\n`);
} catch (err) {
  // Never fail an install for it: without the image the first start runs initdb instead.
  process.stderr.write(
    `embedded database image not built (${err?.message ?? err}); the first start will run initdb\n`,
  );
}
