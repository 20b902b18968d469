import Fastify, { type FastifyInstance } from 'fastify';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Database } from '../db/database.js';
import { AppError } from '../errors.js';

/**
 * Prometheus metrics (prom-client) on GET /metrics. Each app gets its own Registry (tests
 * build several apps in one process). Labels are the route pattern (/api/secrets/:key,
 * never the key), the method and the status code: no secret name or value reaches a label.
 */
declare module 'fastify' {
  interface FastifyInstance {
    /** The Prometheus exposition of this app's registry (for a separate metrics listener). */
    metrics: { contentType: string; text(): Promise<string> };
  }
}

export async function metricsPlugin(app: FastifyInstance, opts: { db: Database; serveRoute?: boolean }) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const labelNames = ['method', 'route', 'status_code'] as const;
  const requests = new Counter({
    name: 'http_requests_total',
    help: 'HTTP requests by method, route pattern and status code',
    labelNames,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request latency by method, route pattern and status code',
    labelNames,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const decryptFailures = new Counter({
    name: 'secrets_decrypt_failures_total',
    help: 'Stored values that failed their integrity check when read',
    registers: [registry],
  });
  const pool = (name: string, help: string, pick: (s: ReturnType<Database['stats']>) => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(pick(opts.db.stats()));
      },
    });
  pool('db_pool_connections_total', 'Database connections open (PGlite: 1)', (s) => s.total);
  pool('db_pool_connections_idle', 'Database connections idle', (s) => s.idle);
  pool('db_pool_requests_waiting', 'Queries waiting for a connection', (s) => s.waiting);

  // Runs before the error handler; the error handler itself renders the response.
  app.addHook('onError', async (_req, _reply, err) => {
    if (err instanceof AppError && err.code === 'DECRYPTION_FAILED') decryptFailures.inc();
  });
  app.addHook('onResponse', async (req, reply) => {
    const labels = {
      method: req.method,
      // Unmatched URLs share one label, so probing random paths cannot grow the series.
      route: req.routeOptions.url ?? 'unmatched',
      status_code: String(reply.statusCode),
    };
    requests.inc(labels);
    duration.observe(labels, reply.elapsedTime / 1000);
  });

  app.decorate('metrics', { contentType: registry.contentType, text: () => registry.metrics() });
  if (opts.serveRoute !== false) {
    app.get('/metrics', { schema: { hide: true } }, async (_req, reply) =>
      reply.type(registry.contentType).send(await registry.metrics()),
    );
  }
}

/**
 * METRICS_PORT: a second, minimal listener serving only GET /metrics from the main app's
 * registry, so the scraper's port can stay private while PORT is public.
 */
export function buildMetricsApp(main: FastifyInstance): FastifyInstance {
  const m = Fastify({ logger: false });
  m.get('/metrics', async (_req, reply) =>
    reply.type(main.metrics.contentType).send(await main.metrics.text()),
  );
  return m;
}
