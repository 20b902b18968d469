import { randomBytes } from 'node:crypto';
import autocannon from 'autocannon';
import { nextRequest, type RequestContext, type Scenario } from './scenarios.js';

/**
 * The load generator, run as its own process so it does not share an event loop with the
 * server it measures. Input: one JSON argument; output: one JSON line on stdout.
 */
export interface LoadSpec {
  url: string;
  token: string;
  scenario: Scenario;
  seeded: number;
  connections: number;
  warmupSeconds: number;
  seconds: number;
  /**
   * A fixed number of requests instead of `seconds` (the smoke run): it proves the harness
   * answers, whatever the machine's load, where a time window on a busy machine may close
   * before the first answer.
   */
  requests?: number;
  /** A fixed path instead of the scenario's requests (scale: first/last list page). */
  fixedPath?: string;
  /** Requests per second over all connections (autocannon's overallRate) instead of as many as answered. */
  rate?: number;
}

export interface LoadResult {
  requests: number;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
  timeouts: number;
  /** CPU time (user + system) this load generator used in its measured window, ms. */
  cpuMs?: number;
}

function run(spec: LoadSpec, seconds: number): Promise<autocannon.Result> {
  const ctx: RequestContext = {
    seeded: spec.seeded,
    tag: randomBytes(4).toString('hex').toUpperCase(),
    counter: 0,
  };
  return autocannon({
    url: spec.url,
    connections: spec.requests ? Math.min(spec.connections, spec.requests) : spec.connections,
    ...(spec.requests ? { amount: spec.requests } : { duration: seconds }),
    ...(spec.rate ? { overallRate: spec.rate } : {}),
    // A smoke run on a loaded machine may wait long for an answer; it counts answers, not speed.
    timeout: spec.requests ? 60 : 10,
    requests: [
      {
        setupRequest: (req) => {
          const r = spec.fixedPath
            ? { method: 'GET' as const, path: spec.fixedPath }
            : nextRequest(spec.scenario, ctx);
          // A fresh headers object per request: autocannon writes content-length into the one
          // it is given, and a GET carrying the previous PUT's length would stall the socket.
          const headers: Record<string, string> = { authorization: `Bearer ${spec.token}` };
          if (r.body !== undefined) headers['content-type'] = 'application/json';
          return { ...req, method: r.method, path: r.path, headers, body: r.body ?? '' };
        },
      },
    ],
  });
}

const spec = JSON.parse(process.argv[2] ?? '{}') as LoadSpec;
const warm = spec.warmupSeconds > 0 ? await run(spec, spec.warmupSeconds) : undefined;
const cpu0 = process.cpuUsage();
const r = await run(spec, spec.seconds);
const cpu = process.cpuUsage(cpu0);
const result: LoadResult & { served: number } = {
  // Everything the server answered, warm-up included: the denominator of its CPU per request.
  served: r.requests.total + (warm?.requests.total ?? 0),
  requests: r.requests.total,
  rps: Math.round(r.requests.total / r.duration),
  p50: r.latency.p50,
  p99: r.latency.p99,
  errors: r.errors,
  non2xx: r.non2xx,
  timeouts: r.timeouts,
  cpuMs: Math.round((cpu.user + cpu.system) / 1000),
};
process.stdout.write(`${JSON.stringify(result)}\n`);
