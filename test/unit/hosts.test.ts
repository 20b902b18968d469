import { describe, expect, it } from 'vitest';
import { acceptable, DatabaseUrlError, parseDatabaseUrl } from '../../src/db/hosts.js';
import { describeDatabase } from '../../src/db/wait.js';

describe('parseDatabaseUrl (libpq multi-host syntax)', () => {
  it('splits a host list into single-host URLs that keep everything else', () => {
    const l = parseDatabaseUrl(
      'postgres://app:p%40ss@db1:5432,db2:5433,[::1]/secrets?sslmode=disable&target_session_attrs=read-write',
    );
    expect(l.multi).toBe(true);
    expect(l.targetSessionAttrs).toBe('read-write');
    expect(l.password).toBe('p@ss');
    expect(l.hosts).toEqual([
      { host: 'db1', port: 5432, url: 'postgres://app:p%40ss@db1:5432/secrets?sslmode=disable' },
      { host: 'db2', port: 5433, url: 'postgres://app:p%40ss@db2:5433/secrets?sslmode=disable' },
      { host: '[::1]', port: 5432, url: 'postgres://app:p%40ss@[::1]:5432/secrets?sslmode=disable' },
    ]);
    expect(l.description).toBe('db1:5432,db2:5433,[::1]:5432/secrets as app');
  });

  it('treats one host without target_session_attrs as before (not multi, any)', () => {
    const l = parseDatabaseUrl('postgresql://u@localhost/db');
    expect(l).toMatchObject({ multi: false, targetSessionAttrs: 'any', password: undefined });
    expect(l.hosts.map((h) => [h.host, h.port])).toEqual([['localhost', 5432]]);
    // Forms pg accepts that are not URLs pass through untouched.
    expect(parseDatabaseUrl('socket:/var/run/postgresql?db=x').multi).toBe(false);
  });

  it('one host with target_session_attrs is multi (the attribute is checked)', () => {
    expect(parseDatabaseUrl('postgres://u@h/db?target_session_attrs=primary').multi).toBe(true);
  });

  it('refuses bad lists and attributes with a message that never holds the password', () => {
    const bad = [
      'postgres://u:hunter2secret@h1,,h2/db',
      'postgres://u:hunter2secret@h1:99999,h2/db',
      'postgres://u:hunter2secret@h1:x,h2/db',
      'postgres://u:hunter2secret@h1,h2/db?target_session_attrs=master',
    ];
    for (const url of bad) {
      let err: unknown;
      try {
        parseDatabaseUrl(url);
      } catch (e) {
        err = e;
      }
      expect(err, url).toBeInstanceOf(DatabaseUrlError);
      expect((err as Error).message).toMatch(/^DATABASE_URL: /);
      expect((err as Error).message).not.toContain('hunter2secret');
    }
  });

  it('describeDatabase names every host, never the password', () => {
    expect(describeDatabase('postgres://u:hunter2secret@a:1,b:2/db?target_session_attrs=read-write')).toBe(
      'a:1,b:2/db as u',
    );
  });
});

describe('acceptable (which host may hold the session)', () => {
  const primary = { inRecovery: false, readOnly: false };
  const standby = { inRecovery: true, readOnly: true };
  const readOnlyPrimary = { inRecovery: false, readOnly: true };
  it('follows libpq for each attribute', () => {
    const table = [
      ['any', [true, true, true]],
      ['read-write', [true, false, false]],
      ['read-only', [false, true, true]],
      ['primary', [true, false, true]],
      ['standby', [false, true, false]],
      ['prefer-standby', [false, true, false]],
    ] as const;
    for (const [attrs, expected] of table) {
      expect(
        [primary, standby, readOnlyPrimary].map((s) => acceptable(attrs, s, 'first')),
        attrs,
      ).toEqual(expected);
    }
    // prefer-standby's second pass takes any host.
    expect(acceptable('prefer-standby', primary, 'second')).toBe(true);
  });
});
