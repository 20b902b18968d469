import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * Compiles src/ to dist/ once per test run: the CLI tests run the compiled CLI (node
 * dist/cli/secrets.js starts in a fraction of the time tsx needs to compile it per process).
 */
export default function setup(): void {
  execFileSync('npm', ['run', '-s', 'build'], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    stdio: 'inherit',
  });
}
