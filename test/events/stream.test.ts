import { afterEach, describe, expect, it } from 'vitest';
import { createAccessKey } from '../helpers/access-keys.js';
import { useTestServer } from '../helpers/server.js';

const t = useTestServer({
  env: { AUDIT_SEAL_INTERVAL_MS: '0', WEBHOOK_POLL_MS: '0', EVENTS_HEARTBEAT_MS: '50' },
});

interface Frame {
  id?: string;
  event?: string;
  data?: string;
  comment?: string;
}

/** A Server-Sent Events client over fetch: frames in order, waited for by predicate. */
async function open(headers: Record<string, string>) {
  const ac = new AbortController();
  const res = await fetch(`${t.url}/api/events`, { headers, signal: ac.signal });
  const frames: Frame[] = [];
  let buf = '';
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  async function until(pred: (frames: Frame[]) => boolean) {
    while (!pred(frames)) {
      const { value, done } = await reader.read();
      if (done) throw new Error('stream ended');
      buf += decoder.decode(value, { stream: true });
      for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const f: Frame = {};
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) f.comment = line.slice(1).trim();
          else {
            const [k, ...rest] = line.split(': ');
            if (k === 'id' || k === 'event' || k === 'data') f[k] = rest.join(': ');
          }
        }
        frames.push(f);
      }
    }
  }
  const events = () => frames.filter((f) => f.event);
  return { res, frames, events, until, close: () => ac.abort() };
}

const admin = () => ({ authorization: `Bearer ${t.token('alice')}` });
const opened: { close(): void }[] = [];
afterEach(() => {
  for (const s of opened.splice(0)) s.close();
});

async function create(key: string) {
  const res = await t.app.inject({
    method: 'POST',
    url: '/api/secrets',
    headers: admin(),
    payload: { key, value: 'v-1' },
  });
  expect(res.statusCode).toBe(201);
}

describe('GET /api/events', () => {
  it('streams changes, resumes after a dropped connection without gaps, scopes access keys', async () => {
    const first = await open(admin());
    opened.push(first);
    expect(first.res.status).toBe(200);
    expect(first.res.headers.get('content-type')).toContain('text/event-stream');
    await first.until((f) => f.some((x) => x.comment === 'heartbeat'));
    await create('APP_ONE');
    await create('DB_ONE');
    await first.until(() => first.events().length >= 2);
    expect(first.events().map((f) => [f.event, JSON.parse(f.data!).data.key])).toEqual([
      ['secret.created', 'APP_ONE'],
      ['secret.created', 'DB_ONE'],
    ]);
    expect(first.events()[0]!.data).not.toContain('v-1');
    const last = first.events()[1]!.id!;
    first.close();

    await create('APP_TWO');
    await create('APP_THREE');
    const again = await open({ ...admin(), 'last-event-id': last });
    opened.push(again);
    await create('DB_TWO');
    await again.until(() => again.events().length >= 3);
    expect(again.events().map((f) => JSON.parse(f.data!).data.key)).toEqual([
      'APP_TWO',
      'APP_THREE',
      'DB_TWO',
    ]);

    // An access key sees only its patterns (here from the beginning: position 0-0).
    const k = await createAccessKey(t, { scopes: ['secrets:list'], keys: ['APP_*'] });
    const scoped = await open({ 'x-api-key': k.token, 'last-event-id': '0-0' });
    opened.push(scoped);
    await create('APP_FOUR');
    await scoped.until(() => scoped.events().some((f) => JSON.parse(f.data!).data.key === 'APP_FOUR'));
    expect(scoped.events().map((f) => JSON.parse(f.data!).data.key)).toEqual([
      'APP_ONE',
      'APP_TWO',
      'APP_THREE',
      'APP_FOUR',
    ]);
  });

  it('names the environment of each event and shows a key only the environments it covers', async () => {
    for (const name of ['ev-staging', 'ev-production']) {
      const res = await t.app.inject({
        method: 'POST',
        url: '/api/environments',
        headers: admin(),
        payload: { name },
      });
      expect(res.statusCode).toBe(201);
    }
    const createIn = async (env: string, key: string) => {
      const res = await t.app.inject({
        method: 'POST',
        url: `/api/environments/${env}/secrets`,
        headers: admin(),
        payload: { key, value: 'v-env' },
      });
      expect(res.statusCode).toBe(201);
    };
    const k = await createAccessKey(t, { scopes: ['secrets:list'], environments: ['ev-staging'] });
    const scoped = await open({ 'x-api-key': k.token });
    opened.push(scoped);
    await scoped.until((f) => f.some((x) => x.comment === 'heartbeat'));
    const all = await open(admin());
    opened.push(all);
    await all.until((f) => f.some((x) => x.comment === 'heartbeat'));
    await create('ENV_DEFAULT_ONLY');
    await createIn('ev-production', 'ENV_PROD_ONLY');
    await createIn('ev-staging', 'ENV_SHARED');
    await createIn('ev-production', 'ENV_SHARED');
    await createIn('ev-staging', 'ENV_MARKER');
    await scoped.until(() => scoped.events().some((f) => JSON.parse(f.data!).data.key === 'ENV_MARKER'));
    const seen = scoped.events().map((f) => JSON.parse(f.data!).data as { key: string; environment: string });
    expect(seen.map((d) => [d.environment, d.key])).toEqual([
      ['ev-staging', 'ENV_SHARED'],
      ['ev-staging', 'ENV_MARKER'],
    ]);
    // The admin's stream has all five, each with its environment.
    await all.until(() => all.events().some((f) => JSON.parse(f.data!).data.key === 'ENV_MARKER'));
    expect(
      all.events().map((f) => {
        const d = JSON.parse(f.data!).data as { key: string; environment: string };
        return `${d.environment}/${d.key}`;
      }),
    ).toEqual([
      'default/ENV_DEFAULT_ONLY',
      'ev-production/ENV_PROD_ONLY',
      'ev-staging/ENV_SHARED',
      'ev-production/ENV_SHARED',
      'ev-staging/ENV_MARKER',
    ]);
  });

  it('refuses a malformed Last-Event-ID and callers without secrets:list', async () => {
    const bad = await fetch(`${t.url}/api/events`, { headers: { ...admin(), 'last-event-id': 'nope' } });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { message: string }).message).toContain('Last-Event-ID');
    const k = await createAccessKey(t, { scopes: ['secrets:read'] });
    const denied = await fetch(`${t.url}/api/events`, { headers: { 'x-api-key': k.token } });
    expect(denied.status).toBe(403);
  });
});
