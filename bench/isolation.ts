import { connect, type Socket } from 'node:net';
import type { LoadResult } from './load.js';
import { runLoad } from './procs.js';

/**
 * Issue 21: what hostile and heavy callers cost a benign one. The benign caller runs the
 * `mixed` scenario (90 % reads, 10 % updates) alone, then again while other identities send
 * NUL keys without or with a bad token, audit filters with NUL, 1000-name renders of missing
 * secrets, 1000-entry dry-run imports, 2 MB bodies and trickled bodies, in turns (quiet,
 * loaded, quiet, loaded, ...). It reports the benign p99 under load against its own quiet p99
 * of the same run, and every benign failure (the noisy-neighbour test asserts there are none;
 * the ratio lives here, not in a timed test).
 */

export interface IsolationPair {
  quiet: LoadResult;
  loaded: LoadResult;
  /** Hostile requests answered, by kind and status (`render 429`), and socket errors. */
  hostile: Record<string, number>;
  /** Benign p99 under hostile load / benign p99 alone. */
  p99Ratio: number;
}

export interface IsolationResult {
  pairs: IsolationPair[];
  medianP99Ratio: number;
  benignFailuresUnderLoad: number;
}

type Kind = { name: string; method: 'GET' | 'POST'; path: string; body?: string; token?: string };

function hostileKinds(hostileToken: string): Kind[] {
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
      body: JSON.stringify({ template: missing }),
      token: hostileToken,
    },
    {
      name: 'batch 1000 dry run',
      method: 'POST',
      path: '/api/secrets/batch',
      body: JSON.stringify({ dryRun: true, secrets: entries }),
      token: hostileToken,
    },
    {
      name: '2 MB body',
      method: 'POST',
      path: '/api/secrets',
      body: JSON.stringify({ key: 'HOSTILE_BIG', value: 'x'.repeat(2 * 1024 * 1024) }),
      token: hostileToken,
    },
  ];
}

/** Hostile traffic from `workers` loops plus `tricklers` slow-body sockets, until stopped. */
function startHostile(url: string, hostileToken: string, workers = 6, tricklers = 4) {
  const counts: Record<string, number> = {};
  const count = (k: string) => {
    counts[k] = (counts[k] ?? 0) + 1;
  };
  // ISOLATION_KINDS=batch,render (name prefixes) narrows the hostile mix, to see which kind costs what.
  const only = process.env.ISOLATION_KINDS?.split(',').filter(Boolean);
  const kinds = hostileKinds(hostileToken).filter((k) => !only || only.some((o) => k.name.startsWith(o)));
  let running = true;
  let turn = 0;
  const loops = Array.from({ length: workers }, async () => {
    while (running) {
      const k = kinds[turn++ % kinds.length]!;
      try {
        const res = await fetch(`${url}${k.path}`, {
          method: k.method,
          headers: {
            ...(k.token ? { authorization: `Bearer ${k.token}` } : {}),
            ...(k.body ? { 'content-type': 'application/json' } : {}),
          },
          ...(k.body ? { body: k.body } : {}),
        });
        await res.arrayBuffer();
        count(`${k.name} ${res.status}`);
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
      count('trickled body closed by server');
      trickle();
    });
    s.write(
      `POST /api/auth/admin/sessions HTTP/1.1\r\nhost: ${hostname}\r\ncontent-type: application/json\r\ncontent-length: 4096\r\n\r\n`,
    );
    const timer = setInterval(() => (s.writable ? s.write('{') : clearInterval(timer)), 500);
    s.on('close', () => clearInterval(timer));
  };
  if (!only || only.includes('trickle')) for (let i = 0; i < tricklers; i++) trickle();
  return {
    async stop(): Promise<Record<string, number>> {
      running = false;
      await Promise.all(loops);
      for (const s of sockets) s.destroy();
      return counts;
    },
  };
}

export async function isolationBench(opts: {
  url: string;
  token: string;
  hostileToken: string;
  seeded: number;
  connections: number;
  seconds: number;
  amount?: number | undefined;
  pairs: number;
  log: (s: string) => void;
}): Promise<IsolationResult> {
  const spec = {
    scenario: 'mixed' as const,
    seeded: opts.seeded,
    connections: opts.connections,
    warmupSeconds: 0,
    seconds: opts.seconds,
    ...(opts.amount ? { requests: opts.amount } : {}),
    url: opts.url,
    token: opts.token,
  };
  const pairs: IsolationPair[] = [];
  for (let i = 0; i < opts.pairs; i++) {
    const quiet = await runLoad<LoadResult>(spec);
    const hostile = startHostile(opts.url, opts.hostileToken);
    const loaded = await runLoad<LoadResult>(spec);
    const counts = await hostile.stop();
    const p99Ratio = Math.round((loaded.p99 / Math.max(1, quiet.p99)) * 100) / 100;
    pairs.push({ quiet, loaded, hostile: counts, p99Ratio });
    opts.log(
      `  isolation pair ${i + 1}: benign p99 ${quiet.p99} ms alone, ${loaded.p99} ms beside hostile load (x${p99Ratio}); benign failures ${loaded.errors + loaded.non2xx + loaded.timeouts}`,
    );
  }
  const ratios = pairs.map((p) => p.p99Ratio).sort((a, b) => a - b);
  return {
    pairs,
    medianP99Ratio: ratios[Math.floor(ratios.length / 2)] ?? 0,
    benignFailuresUnderLoad: pairs.reduce(
      (n, p) => n + p.loaded.errors + p.loaded.non2xx + p.loaded.timeouts,
      0,
    ),
  };
}

export function renderIsolation(
  label: string,
  all: Record<string, IsolationResult>,
  connections: number,
): string {
  const lines = [
    `### Benign caller beside hostile and heavy callers (${label})`,
    '',
    `The benign caller: \`mixed\` (90 % reads, 10 % updates), ${connections} connections; alone, then beside`,
    'hostile traffic from other identities (NUL keys, bad tokens, 1000-name renders, 1000-entry dry-run',
    'imports, 2 MB bodies, trickled bodies), in turns. Ratio: benign p99 under load / benign p99 alone.',
    '',
    '| backend | pair | benign req/s alone | beside hostile | p99 alone ms | p99 beside ms | p99 ratio | benign failures |',
    '|---|--:|--:|--:|--:|--:|--:|--:|',
  ];
  for (const [backend, r] of Object.entries(all)) {
    r.pairs.forEach((p, i) => {
      const failures = p.loaded.errors + p.loaded.non2xx + p.loaded.timeouts;
      lines.push(
        `| ${backend} | ${i + 1} | ${p.quiet.rps} | ${p.loaded.rps} | ${p.quiet.p99} | ${p.loaded.p99} | ${p.p99Ratio} | ${failures} |`,
      );
    });
    lines.push(`| ${backend} | median | | | | | **${r.medianP99Ratio}** | ${r.benignFailuresUnderLoad} |`);
  }
  lines.push('', 'Hostile requests answered (last pair of each backend):', '');
  for (const [backend, r] of Object.entries(all)) {
    const last = r.pairs[r.pairs.length - 1];
    if (!last) continue;
    const parts = Object.entries(last.hostile)
      .sort()
      .map(([k, n]) => `${k}: ${n}`);
    lines.push(`- ${backend}: ${parts.join('; ')}`);
  }
  return `${lines.join('\n')}\n`;
}
