import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import semver from 'semver';
import { expect, it } from 'vitest';

/**
 * `engines.node` in package.json is a promise to whoever installs the package: every
 * installed dependency must accept the oldest Node it names, or `npm ci` prints EBADENGINE
 * warnings and the package may not work there (content-disposition@3 and cookie@2, pulled in
 * by @fastify/static and light-my-request, want Node >= 22; package.json overrides them to
 * the previous majors, same API, Node >= 18).
 */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const pkg = JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { engines: { node: string } };
const lock = JSON.parse(readFileSync(`${ROOT}package-lock.json`, 'utf8')) as {
  packages: Record<string, { engines?: { node?: string } | string[]; dev?: boolean }>;
};

it('every locked dependency accepts the oldest Node that package.json engines allows', () => {
  const oldest = semver.minVersion(pkg.engines.node)?.version;
  expect(oldest).toBeDefined();
  const refusing = Object.entries(lock.packages)
    .filter(([path]) => path !== '')
    .flatMap(([path, entry]) => {
      const range = Array.isArray(entry.engines) ? undefined : entry.engines?.node;
      return range && !semver.satisfies(oldest as string, range) ? [`${path} wants node ${range}`] : [];
    });
  expect(refusing).toEqual([]);
});
