import { Agent, request } from 'node:http';
import { createSigner } from 'fast-jwt';

/**
 * Read-throughput comparison for the audit note: drives GET /api/secrets/:key on several
 * listening servers in alternating rounds (so machine noise hits all of them alike) and
 * prints requests per second for each.
 *
 *   JWT_SECRET=... npx tsx scripts/bench-read.ts name=http://127.0.0.1:47131 name2=http://...
 * Env: BENCH_SECONDS (per round, default 8), BENCH_ROUNDS (3), BENCH_CONCURRENCY (16).
 */
const targets = process.argv.slice(2).map((a) => {
  const [name, url] = a.split('=');
  if (!name || !url) throw new Error(`expected name=url, got ${a}`);
  return { name, url: new URL(url) };
});
const seconds = Number(process.env.BENCH_SECONDS ?? 8);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 16);
const secret = process.env.JWT_SECRET;
if (!secret) throw new Error('JWT_SECRET must be the servers’ HS256 secret');
const token = createSigner({ key: secret, algorithm: 'HS256', expiresIn: 3600_000 })({
  sub: 'bench',
  role: 'project_admin',
});
const agent = new Agent({ keepAlive: true, maxSockets: concurrency });

function call(url: URL, method: string, path: string, body?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        agent,
        host: url.hostname,
        port: url.port,
        method,
        path,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body ? { 'content-type': 'application/json' } : {}),
        },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function round(url: URL): Promise<number> {
  const end = Date.now() + seconds * 1000;
  let ok = 0;
  let bad = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < end) {
        if ((await call(url, 'GET', '/api/secrets/BENCH_KEY')) === 200) ok++;
        else bad++;
      }
    }),
  );
  if (bad) throw new Error(`${bad} non-200 answers from ${url}`);
  return ok / seconds;
}

for (const t of targets) {
  const s = await call(
    t.url,
    'POST',
    '/api/secrets',
    JSON.stringify({ key: 'BENCH_KEY', value: 'bench-value-0123456789' }),
  );
  if (s !== 201 && s !== 409) throw new Error(`seeding ${t.name} answered ${s}`);
  await round(t.url); // warm-up, not counted
}
const results = new Map<string, number[]>(targets.map((t) => [t.name, []]));
for (let r = 0; r < rounds; r++) {
  for (const t of targets) results.get(t.name)?.push(await round(t.url));
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
const base = median(results.get(targets[0]?.name ?? '') ?? []);
for (const [name, xs] of results) {
  const m = median(xs);
  process.stdout.write(
    `${name}: median ${m.toFixed(0)} req/s (rounds ${xs.map((x) => x.toFixed(0)).join(', ')}), ${((m / base) * 100).toFixed(1)}% of ${targets[0]?.name}\n`,
  );
}
agent.destroy();
