/**
 * Where the secret routes are mounted. The same plugins serve the InsForge API at
 * /api/secrets (the default environment) and every other environment at
 * /api/environments/:env/secrets (src/app.ts registers them twice; the guard reads the
 * environment from the route, src/auth/guard.ts): one set of handlers, the environment a
 * parameter of the route scope.
 */
export interface Mount {
  /** The path the routes hang under (default /api/secrets). */
  base?: string | undefined;
}

export const DEFAULT_BASE = '/api/secrets';
export const ENVIRONMENT_BASE = '/api/environments/:env/secrets';
