import { createLocalJWKSet, type JSONWebKeySet, type JWTVerifyGetKey, errors as joseErrors } from 'jose';
import { errors } from '../errors.js';

/**
 * Each trusted issuer's signing keys: discovery (`/.well-known/openid-configuration` ->
 * `jwks_uri`) and the JWKS, fetched here and handed to jose as a local key set.
 *
 * Fetched here rather than with jose's createRemoteJWKSet because that one ignores the
 * response's caching headers and cannot tell "issuer unreachable" (our 503) from "no such
 * key" (a refused token). jose still does all the verification.
 *
 * - The JWKS is kept for its Cache-Control max-age (bounded to [1 min, 1 day]; 10 min
 *   without one); a stale set is refetched on the next use, and kept if that refetch fails.
 * - A token whose `kid` is not in the set triggers one refetch, at most once per
 *   `refetchIntervalMs` per issuer: random kids cannot make us hammer an issuer.
 * - Concurrent fetches of one issuer share one request.
 */

export const DEFAULT_MAX_AGE_MS = 10 * 60_000;
const MIN_MAX_AGE_MS = 60_000;
const MAX_MAX_AGE_MS = 24 * 3600_000;
const FETCH_TIMEOUT_MS = 5000;
const MAX_DOCUMENT_BYTES = 256 * 1024;

interface Entry {
  keys: JWTVerifyGetKey;
  fetchedAt: number;
  expiresAt: number;
}

/** max-age from a Cache-Control header, in ms, bounded; the default when absent. */
export function maxAgeOf(cacheControl: string | null): number {
  const m = cacheControl ? /(?:^|,)\s*(?:s-)?max-age\s*=\s*"?(\d+)"?/i.exec(cacheControl) : null;
  if (cacheControl && /(?:^|,)\s*no-(?:store|cache)\b/i.test(cacheControl)) return MIN_MAX_AGE_MS;
  if (!m?.[1]) return DEFAULT_MAX_AGE_MS;
  return Math.min(MAX_MAX_AGE_MS, Math.max(MIN_MAX_AGE_MS, Number(m[1]) * 1000));
}

export interface IssuerKeysDeps {
  /** Least time between two unknown-kid refetches of one issuer's JWKS. */
  refetchIntervalMs: number;
  /** Accept http:// issuers and JWKS URLs (local test issuers only). */
  allowHttp: boolean;
  now?: () => number;
}

/** The trusted issuers' key sets, fetched on first use and kept for their max-age. */
export class IssuerKeys {
  private readonly entries = new Map<string, Entry>();
  private readonly inflight = new Map<string, Promise<Entry>>();

  constructor(private readonly deps: IssuerKeysDeps) {}

  /** The key resolver for jose's jwtVerify, for tokens of `issuer`. */
  resolver(issuer: string): JWTVerifyGetKey {
    return async (header, token) => {
      const e = await this.current(issuer);
      try {
        return await e.keys(header, token);
      } catch (err) {
        if (!(err instanceof joseErrors.JWKSNoMatchingKey)) throw err;
        // Unknown kid: the issuer may have rotated. One refetch per interval per issuer.
        if (this.now() - e.fetchedAt < this.deps.refetchIntervalMs) throw err;
        const fresh = await this.refresh(issuer);
        return fresh.keys(header, token);
      }
    };
  }

  /** Forget cached keys (a trust's issuer changed or was deleted). */
  forget(issuer: string) {
    this.entries.delete(issuer);
  }

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  private checkUrl(issuer: string, what: string, url: string): URL {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw errors.issuerUnavailable(issuer, `its ${what} is not a URL`);
    }
    if (u.protocol !== 'https:' && !(this.deps.allowHttp && u.protocol === 'http:')) {
      throw errors.issuerUnavailable(issuer, `its ${what} ${u.origin} is not https`);
    }
    return u;
  }

  private async getJson(issuer: string, what: string, url: URL): Promise<{ body: unknown; res: Response }> {
    let res: Response;
    try {
      res = await fetch(url, {
        headers: { accept: 'application/json' },
        redirect: 'error',
        signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code;
      const name = (err as Error).name;
      throw errors.issuerUnavailable(
        issuer,
        `fetching its ${what} failed (${name === 'TimeoutError' ? `no answer in ${FETCH_TIMEOUT_MS} ms` : (cause ?? name)})`,
      );
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw errors.issuerUnavailable(issuer, `its ${what} answered HTTP ${res.status}`);
    }
    const text = await res.text();
    if (text.length > MAX_DOCUMENT_BYTES) throw errors.issuerUnavailable(issuer, `its ${what} is too large`);
    try {
      return { body: JSON.parse(text) as unknown, res };
    } catch {
      throw errors.issuerUnavailable(issuer, `its ${what} is not JSON`);
    }
  }

  private async load(issuer: string): Promise<Entry> {
    const base = this.checkUrl(issuer, 'issuer URL', issuer);
    const discoveryUrl = new URL(
      `${base.pathname.replace(/\/$/, '')}/.well-known/openid-configuration`,
      base.origin,
    );
    const { body: discovery } = await this.getJson(issuer, 'discovery document', discoveryUrl);
    const d = discovery as { issuer?: unknown; jwks_uri?: unknown };
    // OpenID Connect Discovery 1.0 §4.3: the document must name the issuer it was fetched for.
    if (d.issuer !== issuer) {
      throw errors.issuerUnavailable(
        issuer,
        `its discovery document names a different issuer (${String(d.issuer)})`,
      );
    }
    if (typeof d.jwks_uri !== 'string')
      throw errors.issuerUnavailable(issuer, 'its discovery document has no jwks_uri');
    const jwksUrl = this.checkUrl(issuer, 'jwks_uri', d.jwks_uri);
    const { body, res } = await this.getJson(issuer, 'JWKS', jwksUrl);
    let keys: JWTVerifyGetKey;
    try {
      keys = createLocalJWKSet(body as JSONWebKeySet);
    } catch {
      throw errors.issuerUnavailable(issuer, 'its JWKS is not a valid key set');
    }
    const t = this.now();
    const entry = { keys, fetchedAt: t, expiresAt: t + maxAgeOf(res.headers.get('cache-control')) };
    this.entries.set(issuer, entry);
    return entry;
  }

  private refresh(issuer: string): Promise<Entry> {
    let p = this.inflight.get(issuer);
    if (!p) {
      p = this.load(issuer).finally(() => this.inflight.delete(issuer));
      this.inflight.set(issuer, p);
    }
    return p;
  }

  private async current(issuer: string): Promise<Entry> {
    const e = this.entries.get(issuer);
    if (!e) return this.refresh(issuer);
    if (this.now() < e.expiresAt) return e;
    // Stale: refetch, but an issuer that is briefly down does not stop verification with
    // the keys it last published.
    return this.refresh(issuer).catch(() => e);
  }
}
