import { randomBytes } from 'node:crypto';
import { seededKey } from './seed.js';

/** What one autocannon request looks like; built fresh for every request. */
export interface BenchRequest {
  method: 'GET' | 'POST' | 'PUT';
  path: string;
  body?: string;
}

export const SCENARIOS = ['read', 'create', 'update', 'list', 'mixed'] as const;
export type Scenario = (typeof SCENARIOS)[number];

export interface RequestContext {
  /** Seeded keys BENCH_0000000 .. seeded-1 exist. */
  seeded: number;
  /** Unique per load process, so created keys never collide across runs and targets. */
  tag: string;
  counter: number;
}

const pick = (n: number) => seededKey(Math.floor(Math.random() * n));
const freshValue = () => `sk_bench_${randomBytes(16).toString('hex')}`;

const read = (c: RequestContext): BenchRequest => ({ method: 'GET', path: `/api/secrets/${pick(c.seeded)}` });
const update = (c: RequestContext): BenchRequest => ({
  method: 'PUT',
  path: `/api/secrets/${pick(c.seeded)}`,
  body: JSON.stringify({ value: freshValue() }),
});

export function nextRequest(scenario: Scenario, c: RequestContext): BenchRequest {
  switch (scenario) {
    case 'read':
      return read(c);
    case 'update':
      return update(c);
    case 'create':
      c.counter++;
      return {
        method: 'POST',
        path: '/api/secrets',
        body: JSON.stringify({ key: `BENCH_NEW_${c.tag}_${c.counter}`, value: freshValue() }),
      };
    case 'list':
      return { method: 'GET', path: '/api/secrets?limit=50' };
    case 'mixed':
      return Math.random() < 0.9 ? read(c) : update(c);
  }
}
