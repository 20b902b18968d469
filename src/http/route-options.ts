import type { FastifyContextConfig, FastifyReply, FastifyRequest, FastifySchema } from 'fastify';
import type { z } from 'zod';
import { errorResponses } from './schemas.js';

export type Access = NonNullable<FastifyContextConfig['access']>;
/** A route's schema without what the feature's routes share (its tags and error responses). */
export type Spec = Omit<FastifySchema, 'tags' | 'response'> & { response: Record<number, unknown> };

/** The error responses of a route that authenticates, validates and is rate limited. */
const standardErrors = errorResponses(400, 401, 403, 429, 503);

/**
 * The options of one feature's routes, written once per feature: its OpenAPI tags and the
 * error responses every route of it can give are added to each route's own schema, and the
 * access rule goes where the guard reads it (config.access). Each route then states only
 * what is its own: `r.get(url, route({ action, scope }, { summary, params, response }), handler)`.
 */
export function routeOptions<E extends Record<string, unknown> = typeof standardErrors>(
  tags: string[],
  errs: E = standardErrors as unknown as E,
) {
  const route = <S extends Spec>(access: Access, schema: S) => ({
    config: { access },
    schema: { tags, ...schema, response: { ...schema.response, ...errs } },
  });
  /** An admin-only route (access keys get 403), audited as `action`. */
  const admin = <S extends Spec>(action: Access['action'], schema: S) =>
    route({ action, adminOnly: true }, schema);
  return { route, admin };
}

/** What a schema field parses to (undefined where the route has none). */
type Parsed<S, K extends string> = S extends Record<K, infer T extends z.ZodType> ? z.output<T> : undefined;
/**
 * The request of a route a helper registers for a feature: its body and query as the route's
 * schema `S` parses them (the helper's `run` is typed with it, where fastify cannot infer it).
 */
export type ParsedRequest<S> = FastifyRequest & { body: Parsed<S, 'body'>; query: Parsed<S, 'querystring'> };

/** The answer of a change that names the new state in the ETag header (none when it is gone). */
export function changed(reply: FastifyReply, etag: string | undefined, message: string) {
  if (etag) reply.header('etag', etag);
  return { success: true as const, message };
}
