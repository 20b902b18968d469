// Plain JavaScript: `npm start` (scripts/start.mjs) asks these before anything is compiled
// and without loading a TypeScript loader; the test setup and the benchmark ask them too.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** The newest modification time of a file, or of anything below a directory. */
export function newestMtime(path) {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = st.mtimeMs;
  for (const name of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, name)));
  return newest;
}

/**
 * dist/ is missing or older than a source: the test run's global setup then builds it, and
 * the benchmark smoke run starts the service under tsx instead. Whoever ran `npm run build`
 * last (CI does, before both) leaves a dist/ that is not stale.
 */
export function distIsStale(root) {
  const built = join(root, 'dist/main.js');
  if (!existsSync(built)) return true;
  const builtAt = statSync(built).mtimeMs;
  return ['src', 'tsconfig.build.json', 'tsconfig.json', 'package-lock.json'].some(
    (p) => newestMtime(join(root, p)) > builtAt,
  );
}

/** The web console's build (dist/console) is missing or older than its sources. */
export function consoleBuildIsStale(root) {
  const built = join(root, 'dist/console/index.html');
  if (!existsSync(built)) return true;
  const builtAt = statSync(built).mtimeMs;
  return [join(root, 'console'), join(root, 'package-lock.json')].some(
    (s) => existsSync(s) && newestMtime(s) > builtAt,
  );
}
