import Fastify, { type FastifyInstance } from 'fastify';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Database } from '../db/database.js';
import type { ReadRouting } from '../db/read-replicas.js';
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

export async function metricsPlugin(
  app: FastifyInstance,
  opts: { db: Database; reads?: ReadRouting | undefined; serveRoute?: boolean },
) {
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

  const reads = opts.reads;
  if (reads?.enabled) replicaMetrics(registry, reads);

  // Runs before the error handler; the error handler itself renders the response.
  app.addHook('onError', async (_req, _reply, err) => {
    if (err instanceof AppError && err.code === 'DECRYPTION_FAILED') decryptFailures.inc();
  });
  // The labelled series of each (method, route, status) are looked up once and kept:
  // prom-client otherwise hashes the label object on every inc/observe. Bounded by the
  // app's routes and status codes, not by the requests: no key or value is ever a label.
  const series = new Map<string, { count: () => void; observe: (seconds: number) => void }>();
  app.addHook('onResponse', (req, reply, done) => {
    const method = req.method;
    // Unmatched URLs share one label, so probing random paths cannot grow the series.
    const route = req.routeOptions.url ?? 'unmatched';
    const status = reply.statusCode;
    const id = `${method} ${status} ${route}`;
    let s = series.get(id);
    if (!s) {
      const labels = { method, route, status_code: String(status) };
      const counter = requests.labels(labels);
      const histogram = duration.labels(labels);
      s = { count: () => counter.inc(), observe: (v) => histogram.observe(v) };
      series.set(id, s);
    }
    s.count();
    s.observe(reply.elapsedTime / 1000);
    done();
  });

  app.decorate('metrics', { contentType: registry.contentType, text: () => registry.metrics() });
  if (opts.serveRoute !== false) {
    app.get('/metrics', { schema: { hide: true } }, async (_req, reply) =>
      reply.type(registry.contentType).send(await registry.metrics()),
    );
  }
}

/** Read replicas: lag, whether each serves, and which pool served the reads (host:port labels). */
function replicaMetrics(registry: Registry, reads: ReadRouting) {
  new Gauge({
    name: 'db_replica_lag_seconds',
    help: 'How far each read replica was behind the primary at its last check (absent: unknown)',
    labelNames: ['replica'],
    registers: [registry],
    collect() {
      this.reset();
      for (const r of reads.state().replicas)
        if (r.lagMs !== null) this.set({ replica: r.name }, r.lagMs / 1000);
    },
  });
  new Gauge({
    name: 'db_replica_lag_bytes',
    help: 'WAL bytes each read replica had not replayed at its last check',
    labelNames: ['replica'],
    registers: [registry],
    collect() {
      this.reset();
      for (const r of reads.state().replicas)
        if (r.lagBytes !== null) this.set({ replica: r.name }, r.lagBytes);
    },
  });
  new Gauge({
    name: 'db_replica_serving',
    help: '1 when the replica serves reads, 0 when down, paused, promoted or over the lag bound',
    labelNames: ['replica'],
    registers: [registry],
    collect() {
      for (const r of reads.state().replicas) this.set({ replica: r.name }, r.status === 'serving' ? 1 : 0);
    },
  });
  new Counter({
    name: 'db_reads_total',
    help: 'Value reads and lists by the pool that answered them (primary or a replica host:port)',
    labelNames: ['pool'],
    registers: [registry],
    collect() {
      const s = reads.state();
      this.reset();
      this.inc({ pool: 'primary' }, s.primaryReads);
      for (const r of s.replicas) this.inc({ pool: r.name }, r.reads);
    },
  });
  new Counter({
    name: 'db_replica_reads_overruled_total',
    help: 'Replica reads the primary contradicted as their audit row was committed (changed, deleted or expired since): answered again by the primary',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(reads.state().overruled);
    },
  });
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
