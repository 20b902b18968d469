/**
 * Turns a results object into the markdown table and the SVG chart that are committed.
 * The chart is a few bars: hand-written SVG needs no charting dependency and diffs as text.
 */
interface M {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
  timeouts: number;
  peakRssMb: number;
  cpuUsPerReq?: number;
}
interface Row {
  scenario: string;
  service: M;
  ceiling: M;
  floor: M;
  vsCeiling: number;
  vsFloor: number;
}
interface ScaleRow {
  size: number;
  fromRun?: string;
  seedSeconds: number;
  read: M;
  firstPage: M;
  lastPage: M;
}
interface Soak extends M {
  requests: number;
  firstMinuteRssMb: number;
  endRssMb: number;
}
interface BackendResult {
  throughput?: { rows: Row[]; servicePeakRssMb: number; fromRun?: string };
  scale?: ScaleRow[];
  soak?: Soak & { fromRun?: string };
}
interface Results {
  date?: unknown;
  node?: unknown;
  cpus?: unknown;
  loadavgAtStart?: unknown;
  loadavgAtEnd?: unknown;
  settings?: unknown;
  backends?: unknown;
}

const TARGET: Record<string, number> = { read: 0.8, create: 0.7, update: 0.7, mixed: 0.8, list: 0 };
const errs = (m: M) => m.non2xx + m.errors;
/** Marks a part or row carried over from an earlier run (bench/run.ts --merge). */
const from = (x: { fromRun?: string }) => (x.fromRun ? ` (from the run of ${x.fromRun})` : '');

export function renderTable(r: Results): string {
  const s = r.settings as { connections: number; warmup: number; seconds: number; seeded: number };
  const lines = [
    `# Benchmark results (${String(r.date)})`,
    '',
    `Node ${String(r.node)}, ${String(r.cpus)} cores shared by the load generator, the servers, PostgreSQL and other`,
    `users of the machine (load average ${JSON.stringify(r.loadavgAtStart)} at start, ${JSON.stringify(r.loadavgAtEnd)} at end).`,
    `${s.connections} connections, ${s.warmup} s warm-up then ${s.seconds} s measured per target, ${s.seeded} seeded secrets, admin JWT.`,
    'Ceiling: bare Fastify running the same SQL as our handlers (no auth, validation, crypto, logging).',
    'Floor: bare Fastify doing one primary-key SELECT per request. Absolute numbers depend on the',
    'background load; the ratios were measured back to back in one run.',
  ];
  for (const [backend, e] of Object.entries(r.backends as Record<string, BackendResult>)) {
    if (e.throughput) {
      lines.push(
        '',
        `## ${backend}: throughput${from(e.throughput)}`,
        '',
        '| scenario | req/s | p50 ms | p99 ms | errors | peak RSS MB | ceiling req/s | floor req/s | vs ceiling | target | vs floor | server CPU µs/req: ours / ceiling / floor |',
        '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
      );
      for (const row of e.throughput.rows) {
        const o = row.service;
        const target = TARGET[row.scenario] ? `>= ${TARGET[row.scenario]}` : '-';
        lines.push(
          `| ${row.scenario} | ${o.rps} | ${o.p50} | ${o.p99} | ${errs(o)} | ${o.peakRssMb} | ${row.ceiling.rps} | ${row.floor.rps} | ${row.vsCeiling} | ${target} | ${row.vsFloor} | ${o.cpuUsPerReq} / ${row.ceiling.cpuUsPerReq} / ${row.floor.cpuUsPerReq} |`,
        );
      }
      lines.push(
        '',
        `Peak RSS of the service process over the whole run (VmHWM): ${e.throughput.servicePeakRssMb} MB.`,
      );
    }
    if (e.scale) {
      lines.push(
        '',
        `## ${backend}: scale (1 connection)`,
        '',
        '| secrets | seed s | read p50 ms | read p99 ms | first page p50 ms | last page p50 ms | last / first | run |',
        '|--:|--:|--:|--:|--:|--:|--:|---|',
      );
      for (const x of e.scale) {
        // autocannon's latencies have 1 ms resolution: a 0 is "under a millisecond", not a ratio.
        const ms = (v: number) => (v < 1 ? '< 1' : String(v));
        const ratio =
          x.lastPage.p50 < 1
            ? x.firstPage.p50 < 1
              ? 'both < 1 ms'
              : '< 1'
            : String(Math.round((x.lastPage.p50 / Math.max(1, x.firstPage.p50)) * 100) / 100);
        lines.push(
          `| ${x.size} | ${x.seedSeconds} | ${ms(x.read.p50)} | ${x.read.p99} | ${ms(x.firstPage.p50)} | ${ms(x.lastPage.p50)} | ${ratio} | ${x.fromRun ?? 'this run'} |`,
        );
      }
    }
    if (e.soak) {
      const k = e.soak;
      const drift = Math.round((k.endRssMb / Math.max(1, k.firstMinuteRssMb) - 1) * 1000) / 10;
      lines.push(
        '',
        `## ${backend}: soak (mixed 90/10, ${s.connections} connections)${from(k)}`,
        '',
        '| requests | req/s | p99 ms | errors | peak RSS MB | first-minute RSS MB | end RSS MB | end vs first minute |',
        '|--:|--:|--:|--:|--:|--:|--:|--:|',
        `| ${k.requests} | ${k.rps} | ${k.p99} | ${errs(k)} | ${k.peakRssMb} | ${k.firstMinuteRssMb} | ${k.endRssMb} | ${drift}% |`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}

export function renderChart(r: Results): string {
  const backends = Object.entries(r.backends as Record<string, BackendResult>).filter(
    ([, e]) => e.throughput,
  );
  const scenarios = backends[0]?.[1].throughput?.rows.map((x) => x.scenario) ?? [];
  const colours = ['#3b6ea5', '#e08a2c', '#5a9e4b'];
  const W = 640;
  const H = 320;
  const left = 50;
  const bottom = 270;
  const top = 40;
  const max = 1.2;
  const y = (v: number) => bottom - (Math.min(v, max) / max) * (bottom - top);
  const group = (W - left - 20) / Math.max(1, scenarios.length);
  const bar = (group - 20) / Math.max(1, backends.length);
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${left}" y="20" font-size="14">Requests/s as a fraction of the ceiling (same SQL, no auth/crypto) - ${String(r.date).slice(0, 10)}</text>`,
  ];
  for (const v of [0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2]) {
    out.push(
      `<line x1="${left}" x2="${W - 20}" y1="${y(v)}" y2="${y(v)}" stroke="${v === 1 ? '#333' : '#ddd'}"/>`,
      `<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end">${v.toFixed(1)}</text>`,
    );
  }
  scenarios.forEach((sc, i) => {
    const x0 = left + i * group + 10;
    backends.forEach(([, e], j) => {
      const row = e.throughput!.rows.find((x) => x.scenario === sc);
      const v = row?.vsCeiling ?? 0;
      out.push(
        `<rect x="${x0 + j * bar}" y="${y(v)}" width="${bar - 4}" height="${bottom - y(v)}" fill="${colours[j % 3]}"/>`,
        `<text x="${x0 + j * bar + (bar - 4) / 2}" y="${y(v) - 4}" text-anchor="middle">${v}</text>`,
      );
    });
    const t = TARGET[sc];
    if (t)
      out.push(
        `<line x1="${x0}" x2="${x0 + group - 20}" y1="${y(t)}" y2="${y(t)}" stroke="red" stroke-dasharray="4 3"/>`,
      );
    out.push(`<text x="${x0 + (group - 20) / 2}" y="${bottom + 16}" text-anchor="middle">${sc}</text>`);
  });
  backends.forEach(([name], j) => {
    out.push(
      `<rect x="${left + j * 110}" y="${H - 22}" width="12" height="12" fill="${colours[j % 3]}"/>`,
      `<text x="${left + j * 110 + 16}" y="${H - 12}">${name}</text>`,
    );
  });
  out.push(`<text x="${W - 20}" y="${H - 12}" text-anchor="end" fill="red">dashed: target</text>`, '</svg>');
  return `${out.join('\n')}\n`;
}
