import { Agent, request } from 'node:http';
import { connect, type Socket } from 'node:net';

/**
 * The hostile and heavy callers of the isolation part (bench/isolation.ts), run as their own
 * process, like the benign load generator (bench/load.ts): neither shares an event loop with
 * the other or with the harness, and each one's CPU time is its own (on a 2-core machine the
 * callers' CPU is taken from the same cores the service runs on, so it is reported).
 *
 * Input: one JSON argument (HostileSpec). Prints `ready` once its loops run; on a line on
 * stdin (or stdin closing) it stops and prints one JSON line (HostileResult).
 */
export interface HostileSpec {
  url: string;
  token: string;
  /**
   * `http` (default): node:http with kept-alive connections, a light client, so the callers'
   * own CPU takes less of the cores the service runs on; `fetch`: Node's fetch (undici), as
   * before, several times the client CPU per request (ISOLATION_HOSTILE_CLIENT).
   */
  client?: 'http' | 'fetch';
  /** Name prefixes narrowing the mix (ISOLATION_KINDS); all kinds when absent. */
  only?: string[] | undefined;
  workers?: number;
  tricklers?: number;
  /**
   * Cost mode: send this many requests of each kind in `only`, one at a time, starting on the
   * first line read from stdin, then print the result and exit (no trickled bodies).
   */
  amount?: number;
}

export interface HostileResult {
  /** Hostile requests answered, by kind and status (`render 1000 missing 429`), and socket errors. */
  counts: Record<string, number>;
  /** CPU time (user + system) this process used while its loops ran, ms. */
  cpuMs: number;
}

type Kind = { name: string; method: 'GET' | 'POST'; path: string; body?: Uint8Array; token?: string };

function hostileKinds(hostileToken: string): Kind[] {
  // Bodies encoded once: a caller's cost of building them is not the service's.
  const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
  const missing = Array.from({ length: 1000 }, (_, i) => `{{Secrets.MISSING_${i}}}`).join(' ');
  const entries = Array.from({ length: 1000 }, (_, i) => ({ key: `HOSTILE_${i}`, value: 'x' }));
  return [
    { name: 'nul key, no token', method: 'GET', path: '/api/secrets/%00' },
    { name: 'nul key, bad token', method: 'GET', path: '/api/secrets/A%00B', token: 'not-a-token' },
    { name: 'audit filter nul', method: 'GET', path: '/api/audit?key=%00', token: hostileToken },
    {
      name: 'render 1000 missing',
      method: 'POST',
      path: '/api/secrets/render',
      body: json({ template: missing }),
      token: hostileToken,
    },
    {
      name: 'batch 1000 dry run',
      method: 'POST',
      path: '/api/secrets/batch',
      body: json({ dryRun: true, secrets: entries }),
      token: hostileToken,
    },
    {
      name: '2 MB body',
      method: 'POST',
      path: '/api/secrets',
      body: json({ key: 'HOSTILE_BIG', value: 'x'.repeat(2 * 1024 * 1024) }),
      token: hostileToken,
    },
  ];
}

/** One request over node:http: its status once the answer was read. */
function httpSend(agent: Agent, url: string, k: Kind): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}${k.path}`,
      {
        agent,
        method: k.method,
        headers: {
          ...(k.token ? { authorization: `Bearer ${k.token}` } : {}),
          ...(k.body ? { 'content-type': 'application/json', 'content-length': k.body.length } : {}),
        },
      },
      (res) => {
        res.on('data', () => {});
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(k.body);
  });
}

async function fetchSend(url: string, k: Kind): Promise<number> {
  const res = await fetch(`${url}${k.path}`, {
    method: k.method,
    headers: {
      ...(k.token ? { authorization: `Bearer ${k.token}` } : {}),
      ...(k.body ? { 'content-type': 'application/json' } : {}),
    },
    ...(k.body ? { body: k.body } : {}),
  });
  await res.arrayBuffer();
  return res.status;
}

function startHostile({ url, token, only, workers = 6, tricklers = 4, amount, client }: HostileSpec) {
  const agent = new Agent({ keepAlive: true, maxSockets: workers });
  const send = client === 'fetch' ? (k: Kind) => fetchSend(url, k) : (k: Kind) => httpSend(agent, url, k);
  const counts: Record<string, number> = {};
  const count = (k: string) => {
    counts[k] = (counts[k] ?? 0) + 1;
  };
  const kinds = hostileKinds(token).filter((k) => !only || only.some((o) => k.name.startsWith(o)));
  let running = true;
  let turn = 0;
  const limit = amount === undefined ? Number.POSITIVE_INFINITY : amount * kinds.length;
  const loops = Array.from({ length: kinds.length > 0 ? (amount ? 1 : workers) : 0 }, async () => {
    while (running && turn < limit) {
      const k = kinds[turn++ % kinds.length]!;
      try {
        count(`${k.name} ${await send(k)}`);
      } catch {
        count(`${k.name} error`);
      }
    }
  });
  const { hostname, port } = new URL(url);
  const sockets: Socket[] = [];
  const trickle = () => {
    if (!running) return;
    const s = connect(Number(port), hostname);
    sockets.push(s);
    s.on('error', () => {});
    s.on('close', () => {
      if (running) count('trickled body closed by server');
      trickle();
    });
    s.write(
      `POST /api/auth/admin/sessions HTTP/1.1\r\nhost: ${hostname}\r\ncontent-type: application/json\r\ncontent-length: 4096\r\n\r\n`,
    );
    const timer = setInterval(() => (s.writable ? s.write('{') : clearInterval(timer)), 500);
    s.on('close', () => clearInterval(timer));
  };
  if (!amount && (!only || only.includes('trickle'))) for (let i = 0; i < tricklers; i++) trickle();
  return {
    done: Promise.all(loops),
    async stop(): Promise<Record<string, number>> {
      running = false;
      await Promise.all(loops);
      for (const s of sockets) s.destroy();
      agent.destroy();
      return counts;
    },
  };
}

const spec = JSON.parse(process.argv[2] ?? '{}') as HostileSpec;
let cpu0 = process.cpuUsage();
let stopping = false;
const finish = async (hostile: ReturnType<typeof startHostile>) => {
  if (stopping) return;
  stopping = true;
  const counts = await hostile.stop();
  const cpu = process.cpuUsage(cpu0);
  const result: HostileResult = { counts, cpuMs: Math.round((cpu.user + cpu.system) / 1000) };
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
};
if (spec.amount) {
  // Cost mode: start on the first line, finish when every request was answered.
  process.stdout.write('ready\n');
  process.stdin.once('data', () => {
    cpu0 = process.cpuUsage();
    const hostile = startHostile(spec);
    void hostile.done.then(() => finish(hostile));
  });
} else {
  const hostile = startHostile(spec);
  process.stdout.write('ready\n');
  process.stdin.on('data', () => void finish(hostile));
  process.stdin.on('end', () => void finish(hostile));
}
