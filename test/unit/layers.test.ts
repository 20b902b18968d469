import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, posix, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The layering rule of docs/architecture.md: the domain layers (services, repositories,
 * audit, key rotation, change events, database, crypto) never import the HTTP layer (src/http/). A
 * feature's HTTP edge (its route and schema files) may. Reads the import lines of every
 * file, so a new file is checked without being listed here.
 */

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DOMAIN_FOLDERS = [
  'secrets',
  'access-keys',
  'oidc',
  'environments',
  'audit',
  'kek',
  'events',
  'db',
  'crypto',
];
/** A feature's HTTP edge: routes.ts, *-routes.ts, schemas.ts, *-schemas.ts. */
const HTTP_EDGE = /(^|-)(routes|schemas)\.ts$/;
/** Imports allowed as exceptions, each with its reason (none today). */
const ALLOWED = new Set<string>();

/** The module specifiers of a file's static imports, re-exports and dynamic imports. */
function importedSpecifiers(source: string): string[] {
  const found: string[] = [];
  const patterns = [
    /^\s*(?:import|export)\b[^;'"]*?\bfrom\s*['"]([^'"]+)['"]/gm,
    /^\s*import\s*['"]([^'"]+)['"]/gm,
    /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
  ];
  for (const re of patterns) for (const m of source.matchAll(re)) found.push(m[1]!);
  return found;
}

/** The repository-relative .ts path a relative specifier points to (null for packages). */
function resolveSpecifier(fromFile: string, spec: string): string | null {
  if (!spec.startsWith('.')) return null;
  return posix.normalize(posix.join(posix.dirname(fromFile), spec)).replace(/\.js$/, '.ts');
}

async function tsFiles(dir: string): Promise<string[]> {
  const entries = await readdir(join(ROOT, dir), { withFileTypes: true, recursive: true });
  return entries
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts'))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)).split('\\').join('/'));
}

/** `file -> target` for each of a file's imports that resolves under `prefix`. */
async function importsUnder(file: string, prefix: string): Promise<string[]> {
  const source = await readFile(join(ROOT, file), 'utf8');
  return importedSpecifiers(source)
    .map((spec) => resolveSpecifier(file, spec))
    .filter((target): target is string => target?.startsWith(prefix) ?? false)
    .map((target) => `${file} -> ${target}`);
}
const httpImports = (file: string) => importsUnder(file, 'src/http/');

describe('layers', () => {
  it('reads multi-line, type-only, re-export, side-effect and dynamic imports', () => {
    const source = [
      "import { a,\n  b } from '../http/errors.js';",
      "import type { Limits } from '../http/rate-limits.js';",
      "export { x } from '../http/schemas.js';",
      "import '../http/metrics.js';",
      "const m = await import('../http/etag.js');",
      "import { z } from 'zod';",
    ].join('\n');
    expect(importedSpecifiers(source).sort()).toEqual(
      [
        '../http/errors.js',
        '../http/etag.js',
        '../http/metrics.js',
        '../http/rate-limits.js',
        '../http/schemas.js',
        'zod',
      ].sort(),
    );
    expect(resolveSpecifier('src/secrets/service.ts', '../http/errors.js')).toBe('src/http/errors.ts');
    expect(resolveSpecifier('src/secrets/service.ts', './etag.js')).toBe('src/secrets/etag.ts');
  });

  it('no file of secrets, access-keys, oidc, audit, kek, events, db or crypto outside the route/schema files imports src/http/', async () => {
    const checked: string[] = [];
    const offending: string[] = [];
    for (const folder of DOMAIN_FOLDERS) {
      const files = await tsFiles(`src/${folder}`);
      expect(files.length, `src/${folder} has files`).toBeGreaterThan(0);
      for (const file of files) {
        if (HTTP_EDGE.test(posix.basename(file))) continue;
        checked.push(file);
        for (const edge of await httpImports(file)) if (!ALLOWED.has(edge)) offending.push(edge);
      }
    }
    // The services and repositories are among the files checked (the rule is not vacuous).
    expect(checked).toEqual(
      expect.arrayContaining([
        'src/secrets/service.ts',
        'src/secrets/repository.ts',
        'src/access-keys/service.ts',
        'src/oidc/service.ts',
        'src/environments/service.ts',
        'src/kek/service.ts',
        'src/audit/trail.ts',
      ]),
    );
    expect(offending).toEqual([]);
  });

  it('crypto is pure: no file of src/crypto imports anything of the project outside src/crypto, nor a database driver', async () => {
    const files = await tsFiles('src/crypto');
    expect(files).toEqual(expect.arrayContaining(['src/crypto/canary.ts', 'src/crypto/envelope.ts']));
    const offending: string[] = [];
    for (const file of files) {
      for (const edge of await importsUnder(file, 'src/')) {
        if (!edge.split(' -> ')[1]!.startsWith('src/crypto/')) offending.push(edge);
      }
      const source = await readFile(join(ROOT, file), 'utf8');
      for (const spec of importedSpecifiers(source)) {
        if (/^(pg|@electric-sql\/pglite)(\/|$)/.test(spec)) offending.push(`${file} -> ${spec}`);
      }
    }
    expect(offending).toEqual([]);
  });

  it('key-encryption-key rotation (src/kek) reaches stored values through its own repository, not the secrets one', async () => {
    const offending: string[] = [];
    for (const file of await tsFiles('src/kek'))
      offending.push(...(await importsUnder(file, 'src/secrets/')));
    expect(offending).toEqual([]);
  });
});

/** Every project file `file` reaches through any chain of imports (itself excluded), with one path to each. */
async function reachable(file: string): Promise<Map<string, string[]>> {
  const paths = new Map<string, string[]>([[file, [file]]]);
  const queue = [file];
  while (queue.length) {
    const at = queue.shift()!;
    let source: string;
    try {
      source = await readFile(join(ROOT, at), 'utf8');
    } catch {
      continue; // not a .ts file of the project (a .mjs script, a generated declaration)
    }
    for (const spec of importedSpecifiers(source)) {
      const target = resolveSpecifier(at, spec);
      if (target === null || paths.has(target)) continue;
      paths.set(target, [...paths.get(at)!, target]);
      queue.push(target);
    }
  }
  paths.delete(file);
  return paths;
}

describe('layers, indirectly', () => {
  it('no domain file outside the route/schema files reaches src/http/ or src/auth/ through any chain of imports', async () => {
    const offending: string[] = [];
    let checked = 0;
    for (const folder of DOMAIN_FOLDERS) {
      for (const file of await tsFiles(`src/${folder}`)) {
        if (HTTP_EDGE.test(posix.basename(file))) continue;
        checked++;
        for (const [target, path] of await reachable(file)) {
          if (target.startsWith('src/http/') || target.startsWith('src/auth/'))
            offending.push(path.join(' -> '));
        }
      }
    }
    expect(checked).toBeGreaterThan(30);
    expect(offending).toEqual([]);
  });

  it('identity (actor, caller, visibility) is at the bottom: it reaches nothing of the project outside src/identity/', async () => {
    const SHARED_LEAVES = new Set(['src/environment-names.ts']);
    const files = await tsFiles('src/identity');
    expect(files).toEqual(
      expect.arrayContaining([
        'src/identity/actor.ts',
        'src/identity/caller.ts',
        'src/identity/visibility.ts',
      ]),
    );
    const offending: string[] = [];
    for (const file of files) {
      for (const [target, path] of await reachable(file)) {
        // Layer-neutral leaves (they import nothing of the project, which this walk would
        // report as further targets): the environment names a caller's environment is in.
        if (!target.startsWith('src/identity/') && !SHARED_LEAVES.has(target))
          offending.push(path.join(' -> '));
      }
    }
    expect(offending).toEqual([]);
  });

  it('nothing under src/ imports scripts/ or bench/ (code both need lives in src/, e.g. src/db/migrator.mjs)', async () => {
    const offending: string[] = [];
    for (const file of await tsFiles('src')) {
      const source = await readFile(join(ROOT, file), 'utf8');
      for (const spec of importedSpecifiers(source)) {
        const target = resolveSpecifier(file, spec);
        if (target?.startsWith('scripts/') || target?.startsWith('bench/'))
          offending.push(`${file} -> ${target}`);
      }
    }
    expect(offending).toEqual([]);
  });

  it('secrets does not reach environments (environments builds on secrets, not the other way)', async () => {
    const offending: string[] = [];
    for (const file of await tsFiles('src/secrets')) {
      for (const [target, path] of await reachable(file)) {
        if (target.startsWith('src/environments/')) offending.push(path.join(' -> '));
      }
    }
    expect(offending).toEqual([]);
  });

  it('the modules of src/ (each folder, each file directly under src/) import one another in no loop', async () => {
    // A loop of modules is an arrow that runs back up, even when no file imports itself
    // back: src/audit/routes.ts importing src/http/ while src/http/ imported src/audit/
    // put audit both below and above the HTTP layer. Every feature's routes import
    // src/http/, so src/http/ may import no feature.
    const moduleOf = (file: string) => file.split('/').slice(0, 2).join('/');
    /** module -> module it imports -> one file import that makes the arrow. */
    const arrows = new Map<string, Map<string, string>>();
    for (const file of await tsFiles('src')) {
      for (const edge of await importsUnder(file, 'src/')) {
        const [from, to] = edge.split(' -> ').map(moduleOf) as [string, string];
        if (from === to) continue;
        if (!arrows.has(from)) arrows.set(from, new Map());
        if (!arrows.get(from)!.has(to)) arrows.get(from)!.set(to, edge);
      }
    }
    expect(arrows.get('src/secrets')?.has('src/audit')).toBe(true); // the graph is not empty
    /** The file imports that lead from module `from` back to module `to`, or null. */
    const pathBack = (from: string, to: string): string[] | null => {
      const via = new Map<string, string[]>([[from, []]]);
      const queue = [from];
      while (queue.length) {
        const at = queue.shift()!;
        for (const [next, edge] of arrows.get(at) ?? []) {
          if (via.has(next)) continue;
          via.set(next, [...via.get(at)!, edge]);
          if (next === to) return via.get(next)!;
          queue.push(next);
        }
      }
      return null;
    };
    const loops: string[] = [];
    for (const [from, targets] of arrows) {
      for (const [to, edge] of targets) {
        const back = pathBack(to, from);
        if (back) loops.push([edge, ...back].join(', '));
      }
    }
    expect(loops).toEqual([]);
  });

  it('the walk follows chains: a file reaches what its imports import', async () => {
    // batch-routes.ts imports batch-schemas.ts, which imports schemas.ts, which imports src/zod-fields.ts.
    const from = await reachable('src/secrets/batch-routes.ts');
    expect(from.get('src/zod-fields.ts')).toEqual([
      'src/secrets/batch-routes.ts',
      'src/secrets/batch-schemas.ts',
      'src/secrets/schemas.ts',
      'src/zod-fields.ts',
    ]);
  });
});
