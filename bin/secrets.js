#!/usr/bin/env node
// The package's `secrets` bin. It runs the compiled CLI (npm run build -> dist/) when it
// exists: node starts it in about 0.1 s over its own start-up, where compiling TypeScript
// on the fly with tsx costs up to a second or more. Without a build it falls back to tsx
// (always current, slower). After changing src/, rebuild or delete dist/.
import { existsSync } from 'node:fs';

const compiled = new URL('../dist/cli/secrets.js', import.meta.url);
if (existsSync(compiled)) {
  await import(compiled.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('../src/cli/secrets.ts', import.meta.url).href);
}
