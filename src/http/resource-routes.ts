import type { FastifyInstance, FastifySchema, RouteOptions } from 'fastify';
import { z } from 'zod';
import { type Access, type ParsedRequest, routeOptions } from './route-options.js';
import { errorResponse } from './schemas.js';

type Action = NonNullable<Access['action']>;
type Verb = 'create' | 'list' | 'update' | 'delete' | 'revoke';

/**
 * What each route of a resource is, written once for every resource: its method, whether it
 * names one item (`<path>/:<param>`, 404 when there is none), the verb it is audited under
 * (`<noun>.<verb>`; reading one counts as listing) and the status of its success.
 */
const OPERATIONS = {
  create: { method: 'POST', one: false, verb: 'create', status: 201 },
  list: { method: 'GET', one: false, verb: 'list', status: 200 },
  get: { method: 'GET', one: true, verb: 'list', status: 200 },
  replace: { method: 'PUT', one: true, verb: 'update', status: 200 },
  update: { method: 'PATCH', one: true, verb: 'update', status: 200 },
  delete: { method: 'DELETE', one: true, verb: 'delete', status: 200 },
  revoke: { method: 'DELETE', one: true, verb: 'revoke', status: 200 },
} as const satisfies Record<string, { method: string; one: boolean; verb: Verb; status: number }>;
type Operation = keyof typeof OPERATIONS;

/** A route's own documentation and input schemas (the resource adds its params, tags and errors). */
interface Doc {
  summary: string;
  description?: string;
  body?: z.ZodType;
  querystring?: z.ZodType;
}
/** The request a route's handler gets: body and query as its schemas parse them, and the path parameter. */
export type ResourceRequest<D, P extends z.ZodType> = ParsedRequest<D> & { params: z.output<P> };

/**
 * The routes of a resource that admins manage (access keys, trust policies, webhooks,
 * environments): POST `path` creates (201), GET `path` lists, and GET, PUT, PATCH or DELETE
 * `path/:param` reads, replaces, changes or deletes one (404 when there is none). Each is
 * admin only unless `readable` opens listing and reading to every credential (the guard
 * narrows what an access key sees), and audited as `<noun>.<verb>`. A feature then states
 * per route only what is its own: its documentation, its input schemas, its answer and the
 * service call. Its routes outside this pattern use the `route` and `admin` it returns.
 */
export function resourceRoutes<P extends z.ZodObject, V extends z.ZodType>(
  app: FastifyInstance,
  resource: {
    tags: string[];
    path: string;
    /** The first part of every audited action: `access_key` for `access_key.create`. */
    noun: string;
    /** The path parameter naming one item: an object of exactly one field. */
    params: P;
    /** What the service answers about one item. */
    view: V;
    /** Listing and reading open to every credential (else admin only, as every change is). */
    readable?: boolean;
    /** Added to the access rule of the routes that name one item. */
    oneAccess?: Omit<Access, 'action'>;
  },
) {
  const { route, admin } = routeOptions(resource.tags);
  const param = Object.keys(resource.params.shape)[0];
  const add = <D extends Doc>(
    op: Operation,
    doc: D,
    response: Record<number, unknown>,
    run: (req: ResourceRequest<D, P>) => Promise<unknown>,
  ) => {
    const { method, one, verb, status } = OPERATIONS[op];
    const readOnly = method === 'GET' && resource.readable;
    const access: Access = {
      action: `${resource.noun}.${verb}` as Action,
      ...(readOnly ? {} : { adminOnly: true }),
      ...(one ? resource.oneAccess : {}),
    };
    const schema = one
      ? { ...doc, params: resource.params, response: { ...response, 404: errorResponse } }
      : { ...doc, response };
    // The handler's types come from `run`'s signature, checked where each feature calls it.
    const options: RouteOptions = {
      method,
      url: one ? `${resource.path}/:${param}` : resource.path,
      ...(route(access, schema) as { config: { access: Access }; schema: FastifySchema }),
      handler: async (req, reply) => reply.code(status).send(await run(req as ResourceRequest<D, P>)),
    };
    app.route(options);
  };
  /**
   * A route answering one thing: `answer` where it says something other than the view (a
   * token shown once, a confirmation); `conflict` where it can answer 409.
   */
  const answering =
    (op: Operation) =>
    <D extends Doc, S extends z.ZodType = V>(
      doc: D & { answer?: S; conflict?: true },
      run: (req: ResourceRequest<D, P>) => Promise<z.input<S>>,
    ) => {
      const { answer, conflict, ...own } = doc;
      const ok = { [OPERATIONS[op].status]: answer ?? resource.view };
      add(op, own as D, conflict ? { ...ok, 409: errorResponse } : ok, run);
    };
  return {
    /** The resource's routeOptions, for its routes outside the pattern (same tags and errors). */
    route,
    admin,
    create: answering('create'),
    /** GET `path`: `{ [field]: view[] }`, with `nextCursor` when the listing is paged. */
    list: <D extends Doc, F extends string>(
      doc: D & { field: F; paged?: true },
      run: (req: ResourceRequest<D, P>) => Promise<Record<F, z.input<V>[]> & { nextCursor?: string | null }>,
    ) => {
      const { field, paged, ...rest } = doc;
      const items = { [field]: z.array(resource.view) };
      const answer = z.object(paged ? { ...items, nextCursor: z.string().nullable() } : items);
      add('list', rest as unknown as D, { 200: answer }, run);
    },
    get: answering('get'),
    replace: answering('replace'),
    update: answering('update'),
    delete: answering('delete'),
    revoke: answering('revoke'),
  };
}
