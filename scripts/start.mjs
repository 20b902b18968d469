// npm start. The compiled service (dist/main.js) when dist/ is current, in this very
// process: no TypeScript loader in memory or on the start-up path. When the sources are
// newer than dist/ (a fresh clone, an edit), the sources run through tsx instead, as
// `npm start` always did; `npm run build` makes the next start the compiled one.
// The web console is built first when its build is missing or stale (Vite, a child process).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { consoleBuildIsStale, distIsStale } from './dist-stale.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

if (consoleBuildIsStale(ROOT)) {
  const tsx = fileURLToPath(import.meta.resolve('tsx/cli'));
  const built = spawnSync(process.execPath, [tsx, 'scripts/console-build.ts'], {
    cwd: ROOT,
    stdio: 'inherit',
  });
  if (built.status !== 0) process.exit(built.status ?? 1);
}

if (distIsStale(ROOT)) {
  process.stderr.write(
    'dist/ is missing or older than src/: running the sources with tsx (npm run build to start compiled)\n',
  );
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/main.ts');
} else {
  await import('../dist/main.js');
}
