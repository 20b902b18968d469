import type { FastifyInstance, FastifySchema, RouteOptions } from 'fastify';
import type { z } from 'zod';
import { type Access, changed, type ParsedRequest, type routeOptions } from '../http/route-options.js';
import { errorResponse } from '../http/schemas.js';
import { keyedChange, successResponse } from './schemas.js';

type Request<B, Q> = ParsedRequest<{ body: B; querystring: Q }>;

/** The secret a change names: its key (from the path) and the If-Match it was sent with. */
export interface Target {
  key: string;
  ifMatch: string | undefined;
}

/**
 * The routes that change the secret named in the path (update, delete, rollback, restore),
 * under `base`: the access key's patterns are checked against that key, If-Match makes the
 * change compare-and-set (412 when the secret moved on), and the answer says what was done
 * with the new state's ETag in the header. `change` is the service call; whatever it returns
 * beside the ETag (a new version number) is added to the answer.
 */
export function keyedChanges(
  app: FastifyInstance,
  route: ReturnType<typeof routeOptions>['route'],
  base: string,
) {
  return <More extends object, B extends z.ZodType = z.ZodUndefined, Q extends z.ZodType = z.ZodUndefined>(
    method: 'PUT' | 'POST' | 'DELETE',
    path: `/:key${string}`,
    access: Omit<Access, 'keyFrom'>,
    spec: {
      summary: string;
      description: string;
      body?: B;
      querystring?: Q;
      /** Answers beside the success message and 412. */
      response?: Record<number, unknown>;
      change: (target: Target, req: Request<B, Q>) => Promise<{ etag: string | undefined } & More>;
      /** What happened, for the answer's message `Secret <key> has been <done>`. */
      done: string | ((req: Request<B, Q>, more: More) => string);
    },
  ) => {
    const { response, done, change, ...doc } = spec;
    const answers = { 200: successResponse, 412: errorResponse, ...response };
    const schema = { ...doc, ...keyedChange, response: answers };
    // The handler's types come from `change`'s signature, checked where each route declares it.
    const options: RouteOptions = {
      method,
      url: `${base}${path}`,
      ...(route({ ...access, keyFrom: 'params' }, schema) as {
        config: { access: Access };
        schema: FastifySchema;
      }),
      handler: async (req, reply) => {
        const parsed = req as Request<B, Q>;
        const key = (req.params as { key: string }).key;
        const { etag, ...more } = await change({ key, ifMatch: req.headers['if-match'] }, parsed);
        const what = typeof done === 'string' ? done : done(parsed, more as unknown as More);
        return { ...changed(reply, etag, `Secret ${key} has been ${what}`), ...more };
      },
    };
    app.route(options);
  };
}
