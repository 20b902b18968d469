import { readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * No Docker engine runs here, so the image is never built in CI. What can be checked without
 * one: every script the build stage copies in finds the local files it imports, and every
 * npm script it runs exists.
 */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const buildStage =
  dockerfile.split(/^FROM /m).find((stage) => / AS build\b/.test(stage.split('\n')[0] ?? '')) ?? '';

/** The repository paths the build stage copies, as written (files or directories). */
const copied = [...buildStage.matchAll(/^COPY (?!--from)(.+)$/gm)].flatMap((m) => {
  const parts = (m[1] ?? '').trim().split(/\s+/);
  return parts.slice(0, -1).map((p) => normalize(p.replace(/\/$/, '')));
});
const isCopied = (file: string) => copied.some((c) => file === c || file.startsWith(`${c}/`));

describe('Dockerfile build stage', () => {
  it('copies the local imports of every script it copies', () => {
    const scripts = copied.filter((c) => c.startsWith('scripts/') && c.endsWith('.ts'));
    expect(scripts.length).toBeGreaterThan(0);
    for (const script of scripts) {
      const text = readFileSync(join(ROOT, script), 'utf8');
      for (const m of text.matchAll(/from '(\.{1,2}\/[^']+)'/g)) {
        const target = normalize(join(dirname(script), (m[1] ?? '').replace(/\.js$/, '.ts')));
        expect(isCopied(target), `${script} imports ${target}, which the build stage does not copy`).toBe(
          true,
        );
      }
    }
  });

  it('runs only npm scripts that package.json defines', () => {
    const { scripts } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    const run = [...dockerfile.matchAll(/npm run ([\w:-]+)/g)].map((m) => m[1] ?? '');
    expect(run.length).toBeGreaterThan(0);
    for (const name of run) expect(scripts, `npm run ${name}`).toHaveProperty([name]);
  });
});

describe('Dockerfile, every stage', () => {
  // The plain-JavaScript modules (the install-time database image and the migrator it runs,
  // src/db/*.mjs, and the postinstall entry scripts/pglite-image.mjs that loads them) run at
  // npm ci, before anything is compiled: a stage that copies one without what it imports
  // fails its npm ci.
  const stages = dockerfile.split(/^FROM /m).slice(1);
  it('copies the local imports of every .mjs script it copies, and the migrations with the image script', () => {
    let checked = 0;
    for (const stage of stages) {
      const paths = [...stage.matchAll(/^COPY (?!--from)(?:--\S+ )*(.+)$/gm)].flatMap((m) =>
        (m[1] ?? '')
          .trim()
          .split(/\s+/)
          .slice(0, -1)
          .map((p) => normalize(p.replace(/\/$/, ''))),
      );
      for (const script of paths.filter((p) => p.endsWith('.mjs'))) {
        checked++;
        const text = readFileSync(join(ROOT, script), 'utf8');
        // Static imports, and the source file the postinstall entry loads by URL.
        const imports = [...text.matchAll(/(?:from |new URL\()'(\.{1,2}\/[^']+\.mjs)'/g)].filter(
          (m) => !(m[1] ?? '').startsWith('../dist/'),
        );
        for (const m of imports) {
          const target = normalize(join(dirname(script), m[1] ?? ''));
          expect(paths, `${script} imports ${target}, which the stage does not copy`).toContain(target);
        }
        if (script.endsWith('pglite-image.mjs'))
          expect(paths, 'the image needs the migrations').toContain('migrations');
      }
    }
    expect(checked).toBeGreaterThanOrEqual(3);
  });
});
