/**
 * libpq's multi-host connection strings, which pg (8.23) does not implement: its
 * pg-connection-string parses one host and ignores target_session_attrs. Hand-written
 * because no maintained Node library does it (pg-connection-string, pg-pool and postgres.js's
 * parser all take one host for pg; the multi-host support in other drivers is not reusable
 * on its own), and it is small: split the authority's host list, keep the rest.
 *
 *   postgres://user:pw@h1:5432,h2:5433/db?target_session_attrs=read-write
 *
 * Each host gets its own single-host URL (what pg understands); the session attribute
 * decides which host a connection is kept on, as libpq does:
 *   any            the first host that accepts the connection
 *   read-write     SHOW transaction_read_only is off (a primary)
 *   read-only      it is on (a standby, or default_transaction_read_only)
 *   primary        pg_is_in_recovery() is false
 *   standby        pg_is_in_recovery() is true
 *   prefer-standby a standby if one answers, else any host
 */

export const SESSION_ATTRS = [
  'any',
  'read-write',
  'read-only',
  'primary',
  'standby',
  'prefer-standby',
] as const;
export type TargetSessionAttrs = (typeof SESSION_ATTRS)[number];

export interface Host {
  host: string;
  port: number;
  /** A single-host connection string for this host, with every other part of the original. */
  url: string;
}

export interface HostList {
  hosts: Host[];
  targetSessionAttrs: TargetSessionAttrs;
  /** True when the URL lists several hosts or names target_session_attrs. */
  multi: boolean;
  /** The password, decoded (to keep it out of messages); undefined when none. */
  password: string | undefined;
  /** host:port,host:port/database as user, never the password. */
  description: string;
  /** The database and user named in the URL ('' when it names none). */
  database: string;
  user: string;
}

export class DatabaseUrlError extends Error {
  override name = 'DatabaseUrlError';
}

const URL_RE = /^(postgres(?:ql)?):\/\/(?:([^@/?#]*)@)?([^/?#]*)([^?#]*)(\?[^#]*)?(#.*)?$/i;

function splitHost(entry: string, index: number): { host: string; port: number } {
  // [v6addr]:port, name:port, name
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(entry);
  if (!m?.[1]) throw new DatabaseUrlError(`DATABASE_URL: host ${index + 1} of the list is not host[:port]`);
  const port = m[2] === undefined ? 5432 : Number(m[2]);
  if (port < 1 || port > 65535)
    throw new DatabaseUrlError(`DATABASE_URL: host ${index + 1} has an invalid port`);
  return { host: m[1], port };
}

/** Parses a PostgreSQL URL with one or more hosts. Messages never contain the password. */
export function parseDatabaseUrl(url: string): HostList {
  const m = URL_RE.exec(url.trim());
  if (!m) {
    // Other forms pg accepts (socket:/path?db=...): one host, passed to pg untouched.
    return {
      hosts: [{ host: '', port: 5432, url }],
      targetSessionAttrs: 'any',
      multi: false,
      password: undefined,
      description: '(socket)',
      database: '',
      user: '',
    };
  }
  const [, scheme, userinfo, authority = '', path = '', query = ''] = m;
  const params = new URLSearchParams(query.slice(1));
  const tsa = params.get('target_session_attrs') ?? 'any';
  if (!(SESSION_ATTRS as readonly string[]).includes(tsa)) {
    throw new DatabaseUrlError(
      `DATABASE_URL: target_session_attrs must be one of ${SESSION_ATTRS.join(', ')}; got "${tsa.slice(0, 40)}"`,
    );
  }
  const hadAttrs = params.has('target_session_attrs');
  params.delete('target_session_attrs');
  const rest = params.toString();
  const entries = authority === '' ? [] : authority.split(',');
  if (entries.length > 1 && entries.some((e) => e === ''))
    throw new DatabaseUrlError('DATABASE_URL: empty entry in the host list');
  const parsed = entries.length === 0 ? [] : entries.map(splitHost);
  const prefix = `${scheme}://${userinfo === undefined ? '' : `${userinfo}@`}`;
  const suffix = `${path}${rest ? `?${rest}` : ''}`;
  const hosts: Host[] =
    parsed.length === 0
      ? [{ host: '', port: 5432, url: `${prefix}${suffix}` }]
      : parsed.map((h) => ({ ...h, url: `${prefix}${h.host}:${h.port}${suffix}` }));
  let password: string | undefined;
  let user = '';
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(':');
    try {
      user = decodeURIComponent(colon < 0 ? userinfo : userinfo.slice(0, colon));
      password = colon < 0 ? undefined : decodeURIComponent(userinfo.slice(colon + 1)) || undefined;
    } catch {
      throw new DatabaseUrlError('DATABASE_URL: the user or password is not valid percent-encoding');
    }
  }
  let db = '';
  try {
    db = decodeURIComponent(path.replace(/^\//, ''));
  } catch {
    throw new DatabaseUrlError('DATABASE_URL: the database name is not valid percent-encoding');
  }
  const where = hosts.map((h) => `${h.host || '(socket)'}:${h.port}`).join(',');
  return {
    hosts,
    targetSessionAttrs: tsa as TargetSessionAttrs,
    multi: hosts.length > 1 || hadAttrs,
    password,
    description: `${where}/${db || '(default database)'}${user ? ` as ${user}` : ''}`,
    database: db,
    user,
  };
}

/** What a host reported about itself when probed. */
export interface HostState {
  inRecovery: boolean;
  readOnly: boolean;
}

/** Whether a host in `state` may hold the session (prefer-standby: see pickOrder). */
export function acceptable(attrs: TargetSessionAttrs, state: HostState, pass: 'first' | 'second'): boolean {
  switch (attrs) {
    case 'any':
      return true;
    case 'read-write':
      return !state.readOnly;
    case 'read-only':
      return state.readOnly;
    case 'primary':
      return !state.inRecovery;
    case 'standby':
      return state.inRecovery;
    case 'prefer-standby':
      // libpq: a first pass for a standby, then a second pass taking any host.
      return pass === 'second' || state.inRecovery;
  }
}
