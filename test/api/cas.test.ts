import { describe, expect, it } from 'vitest';
import { ifMatchSatisfied } from '../../src/secrets/etag.js';
import { useTestApp } from '../helpers/app.js';
import { api } from '../helpers/http.js';
import { secretValue } from '../helpers/secrets.js';

const t = useTestApp({ resetEachTest: true });

const { req } = api(t);
const etagOf = async (key: string) => {
  const r = await req('GET', `/api/secrets/${key}/versions`);
  expect(r.statusCode).toBe(200);
  return r.headers.etag as string;
};
const stateOf = async (key: string) => {
  const rows = await t.db.query(
    `SELECT s.*, (SELECT array_agg(version ORDER BY version) FROM secret_versions v WHERE v.secret_id = s.id) AS versions
     FROM secrets s WHERE key = $1`,
    [key],
  );
  return rows[0];
};

describe('ETag', () => {
  it('GET, PUT, DELETE, rollback and restore name the new state; reads do not change it', async () => {
    const v1 = secretValue();
    await req('POST', '/api/secrets', { key: 'TAG', value: v1 });
    const g1 = await req('GET', '/api/secrets/TAG');
    const e1 = g1.headers.etag as string;
    expect(e1).toMatch(/^"[0-9a-f-]{36}\.\d+"$/); // strong: no W/ prefix
    expect((await req('GET', '/api/secrets/TAG')).headers.etag).toBe(e1);
    expect(await etagOf('TAG')).toBe(e1);

    const p = await req('PUT', '/api/secrets/TAG', { description: 'metadata changes count too' });
    const e2 = p.headers.etag as string;
    expect(e2).not.toBe(e1);
    expect((await req('GET', '/api/secrets/TAG')).headers.etag).toBe(e2);
    const rb = await req('POST', '/api/secrets/TAG/rollback', { version: 1 });
    const e3 = rb.headers.etag as string;
    expect(new Set([e1, e2, e3]).size).toBe(3);
    const d = await req('DELETE', '/api/secrets/TAG');
    const e4 = d.headers.etag as string;
    expect(await etagOf('TAG')).toBe(e4);
    const r = await req('POST', '/api/secrets/TAG/restore', undefined, { 'if-match': e4 });
    expect(r.statusCode).toBe(200);
    expect(new Set([e1, e2, e3, e4, r.headers.etag]).size).toBe(5);
  });

  it('If-Match parsing: strong comparison, lists and *', () => {
    const tag = '"abc.1"';
    expect(ifMatchSatisfied(undefined, tag)).toBe(true);
    expect(ifMatchSatisfied('*', tag)).toBe(true);
    expect(ifMatchSatisfied('"abc.1"', tag)).toBe(true);
    expect(ifMatchSatisfied('"x.1", "abc.1"', tag)).toBe(true);
    expect(ifMatchSatisfied('W/"abc.1"', tag)).toBe(false);
    expect(ifMatchSatisfied('abc.1', tag)).toBe(false);
    expect(ifMatchSatisfied('"abc.10"', tag)).toBe(false);
    expect(ifMatchSatisfied('', tag)).toBe(false);
  });
});

describe('If-Match', () => {
  it('a stale ETag answers 412 with the current ETag and changes nothing, on every method', async () => {
    const v1 = secretValue();
    await req('POST', '/api/secrets', { key: 'CAS', value: v1 });
    const stale = await etagOf('CAS');
    await req('PUT', '/api/secrets/CAS', { value: secretValue() });
    const current = await etagOf('CAS');
    const before = await stateOf('CAS');

    const attempts = [
      req('PUT', '/api/secrets/CAS', { value: secretValue() }, { 'if-match': stale }),
      req('PUT', '/api/secrets/CAS', { isReserved: true }, { 'if-match': stale }),
      req('DELETE', '/api/secrets/CAS', undefined, { 'if-match': stale }),
      req('POST', '/api/secrets/CAS/rollback', { version: 1 }, { 'if-match': stale }),
      req('PUT', '/api/secrets/CAS', { value: secretValue() }, { 'if-match': `W/${current}` }),
      req('PUT', '/api/secrets/CAS', { value: secretValue() }, { 'if-match': 'garbage' }),
    ];
    for (const r of await Promise.all(attempts)) {
      expect(r.statusCode).toBe(412);
      expect(r.json()).toMatchObject({ error: 'PRECONDITION_FAILED', statusCode: 412 });
      expect(r.json().nextActions).toBeTruthy();
      expect(r.headers.etag).toBe(current);
    }
    expect(await stateOf('CAS')).toEqual(before);

    // Deleted with a stale tag: 412 too, and restore/purge are conditional as well.
    await req('DELETE', '/api/secrets/CAS');
    const deleted = await etagOf('CAS');
    expect(
      (await req('POST', '/api/secrets/CAS/restore', undefined, { 'if-match': current })).statusCode,
    ).toBe(412);
    expect(
      (await req('DELETE', '/api/secrets/CAS?purge=true', undefined, { 'if-match': current })).statusCode,
    ).toBe(412);
    expect(
      (await req('DELETE', '/api/secrets/CAS?purge=true', undefined, { 'if-match': deleted })).statusCode,
    ).toBe(200);
  });

  it('a matching ETag (or *, or a list holding it) applies the change; without If-Match nothing changes', async () => {
    await req('POST', '/api/secrets', { key: 'OK', value: secretValue() });
    const e1 = await etagOf('OK');
    const v2 = secretValue();
    const p = await req('PUT', '/api/secrets/OK', { value: v2 }, { 'if-match': `"nope", ${e1}` });
    expect(p.statusCode).toBe(200);
    expect((await req('GET', '/api/secrets/OK')).json().value).toBe(v2);
    expect((await req('PUT', '/api/secrets/OK', { description: 'x' }, { 'if-match': '*' })).statusCode).toBe(
      200,
    );
    expect((await req('PUT', '/api/secrets/OK', { description: 'y' })).statusCode).toBe(200);
    // A missing secret is 404 whatever the condition.
    expect((await req('PUT', '/api/secrets/NONE', { value: 'x' }, { 'if-match': e1 })).statusCode).toBe(404);
  });

  it('100 concurrent compare-and-set updates from one ETag: exactly one succeeds', async () => {
    await req('POST', '/api/secrets', { key: 'RACE', value: secretValue() });
    const etag = await etagOf('RACE');
    const values = Array.from({ length: 100 }, (_, i) => secretValue(`race${i}`));
    const results = await Promise.all(
      values.map((value) => req('PUT', '/api/secrets/RACE', { value }, { 'if-match': etag })),
    );
    const codes = results.map((r) => r.statusCode);
    expect(codes.filter((c) => c === 200)).toHaveLength(1);
    expect(codes.filter((c) => c === 412)).toHaveLength(99);
    const winner = values[codes.indexOf(200)];
    const read = await req('GET', '/api/secrets/RACE');
    expect(read.json().value).toBe(winner);
    const h = (await req('GET', '/api/secrets/RACE/versions')).json();
    expect(h.currentVersion).toBe(2);
    // Every loser was told the winner's state.
    for (const r of results) if (r.statusCode === 412) expect(r.headers.etag).toBe(read.headers.etag);
  });
});
