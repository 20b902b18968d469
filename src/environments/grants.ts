import type { Queryable } from '../db/database.js';
import { ALL_ENVIRONMENTS, DEFAULT_ENVIRONMENT } from '../environment-names.js';
import { errors } from '../errors.js';
import { EnvironmentsRepository } from './repository.js';

/**
 * The environments a new grant (an access key, a workload trust) covers, as stored: the
 * names given (deduplicated), ['*'] when they include it, ['default'] when omitted, which is
 * what every credential covered before environments existed.
 */
export function grantedEnvironments(given: readonly string[] | undefined): string[] {
  if (given === undefined) return [DEFAULT_ENVIRONMENT];
  if (given.includes(ALL_ENVIRONMENTS)) return [ALL_ENVIRONMENTS];
  return [...new Set(given)];
}

const repo = new EnvironmentsRepository();

/** 400 naming the environments of a grant that do not exist (a typo would silently grant nothing). */
export async function requireEnvironments(q: Queryable, envs: readonly string[]): Promise<void> {
  const named = envs.filter((e) => e !== ALL_ENVIRONMENTS);
  if (named.length === 0) return;
  const found = new Set(await repo.existing(q, named));
  const missing = named.filter((e) => !found.has(e));
  if (missing.length > 0) {
    throw errors.invalidInput(
      `Unknown environment(s): ${missing.join(', ')}`,
      'Create the environment first with POST /api/environments, or list them with GET /api/environments',
    );
  }
}
