import { randomUUID } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader, type JWTPayload, errors as joseErrors, jwtVerify } from 'jose';
import type { z } from 'zod';
import { hashToken } from '../access-keys/token.js';
import { withOutcome } from '../audit/outcome.js';
import type { AuditTrail } from '../audit/trail.js';
import type { Database } from '../db/database.js';
import { grantedEnvironments, requireEnvironments } from '../environments/grants.js';
import { AppError, errors } from '../errors.js';
import { type Actor, environmentGrant, SCOPES, type Scope, workloadId } from '../identity/actor.js';
import type { Caller } from '../identity/caller.js';
import { claimAt } from './claim-path.js';
import type { IssuerKeys } from './issuer-keys.js';
import type { ReplayGuard } from './replay.js';
import type { OidcRepository, TrustFields, TrustRow } from './repository.js';
import {
  ACCESS_TOKEN_TYPE,
  DEFAULT_TTL_SECONDS,
  type TrustInput,
  type tokenExchangeBody,
  type trustView,
} from './schemas.js';
import { newWorkloadToken, WORKLOAD_TOKEN_PATTERN } from './token.js';

/** Asymmetric algorithms only: never `none`, never HMAC (a public key is no shared secret). */
export const ACCEPTED_ALGORITHMS = ['RS256', 'ES256', 'EdDSA', 'Ed25519'];
/** Clock skew allowed on exp, nbf and iat. */
export const CLOCK_SKEW_SECONDS = 60;

/** A trust policy as the API shows it (the zod schema is its one definition). */
export type TrustView = z.output<typeof trustView>;

const toView = (r: TrustRow): TrustView => ({
  id: r.id,
  name: r.name,
  issuer: r.issuer,
  audiences: r.audiences,
  subject: r.subject,
  claims: r.claims,
  scopes: r.scopes,
  keys: r.key_patterns,
  environments: r.environments,
  ttlSeconds: r.ttl_seconds,
  createdBy: r.created_by,
  createdAt: r.created_at.toISOString(),
  updatedAt: r.updated_at.toISOString(),
});

/**
 * `*` matches any run of characters (including none); everything else is literal. Written
 * here because a glob library would bring `?`, `[...]` and path semantics that a claim
 * value (`repo:org/repo:ref:refs/heads/main`) must not have.
 */
export function matches(pattern: string, value: string): boolean {
  const parts = pattern.split('*');
  if (parts.length === 1) return pattern === value;
  const first = parts[0] as string;
  const last = parts[parts.length - 1] as string;
  if (value.length < first.length + last.length || !value.startsWith(first) || !value.endsWith(last)) {
    return false;
  }
  let pos = first.length;
  const end = value.length - last.length;
  for (const part of parts.slice(1, -1)) {
    const at = value.indexOf(part, pos);
    if (at < 0 || at + part.length > end) return false;
    pos = at + part.length;
  }
  return true;
}

/** Why the token does not satisfy the trust's bindings, or null when it does. */
function mismatch(trust: TrustRow, claims: JWTPayload): { reason: string; message: string } | null {
  const aud = Array.isArray(claims.aud) ? claims.aud : claims.aud === undefined ? [] : [claims.aud];
  if (!aud.some((a) => trust.audiences.includes(a))) {
    return {
      reason: 'audience',
      message: `its audience ${JSON.stringify(aud)} is not one the trust accepts`,
    };
  }
  if (typeof claims.sub !== 'string' || !matches(trust.subject, claims.sub)) {
    return { reason: 'subject', message: `its subject ${JSON.stringify(claims.sub)} does not match` };
  }
  for (const [name, pattern] of Object.entries(trust.claims)) {
    const v = claimAt(claims, name);
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') {
      return { reason: `claim:${name}`, message: `it has no string claim ${name}` };
    }
    if (!matches(pattern, String(v))) {
      return { reason: `claim:${name}`, message: `its claim ${name}=${JSON.stringify(v)} does not match` };
    }
  }
  return null;
}

/**
 * A failure of the exchange before its mint, tagged with its reason for the audit row: a
 * refusal (400, 401, 403), or a 503 whose cause is known where it happened (the issuer's
 * keys could not be fetched, our replay store could not be reached). The reason is chosen
 * there, never guessed from the status: a 503 of our own storage is no issuer failure.
 */
class Refusal extends Error {
  constructor(
    readonly reason: string,
    readonly error: AppError,
  ) {
    super(error.message);
  }
}

const refuse = (reason: string, status: 400 | 401 | 403, message: string, next: string) => {
  const err =
    status === 400
      ? errors.invalidInput(message, next)
      : status === 401
        ? errors.unauthorized(message, next)
        : errors.denied(message, next);
  return new Refusal(reason, err);
};

/** jose's verdicts, as refusals that say what was wrong with the token (or with its issuer). */
function verificationRefusal(err: unknown, issuer: string): Refusal | AppError {
  // The key resolver's own failure: the issuer's discovery document or JWKS (issuer-keys.ts).
  if (err instanceof AppError)
    return err.code === 'ISSUER_UNAVAILABLE' ? new Refusal('issuer_unavailable', err) : err;
  const next = 'Request a fresh ID token from your platform and exchange it at once';
  if (err instanceof joseErrors.JWTExpired)
    return refuse('expired', 401, 'Invalid token: the ID token has expired', next);
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'nbf')
      return refuse('not_yet_valid', 401, 'Invalid token: the ID token is not valid yet (nbf)', next);
    if (err.claim === 'iat')
      return refuse('iat', 401, 'Invalid token: the ID token was issued in the future (iat)', next);
    return refuse(
      `claim:${err.claim}`,
      401,
      `Invalid token: the ${err.claim} claim ${err.reason === 'missing' ? 'is missing' : 'is not valid'}`,
      next,
    );
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed) {
    return refuse(
      'algorithm',
      401,
      `Invalid token: its algorithm is not accepted (only ${ACCEPTED_ALGORITHMS.join(', ')})`,
      next,
    );
  }
  if (err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JWKSMultipleMatchingKeys) {
    return refuse('unknown_kid', 401, `Invalid token: no key of ${issuer} matches its kid`, next);
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) {
    return refuse('signature', 401, 'Invalid token: the signature does not verify', next);
  }
  if (err instanceof joseErrors.JOSEError) {
    return refuse('malformed', 401, 'Invalid token: the ID token is not a valid signed JWT', next);
  }
  throw err;
}

/** What an exchange's audit row says about the token: never the token itself. */
const bounded = (v: unknown) => (typeof v === 'string' ? JSON.stringify(v.slice(0, 200)) : 'none');
function describe(claims: JWTPayload | null, trust: string | null, reason: string | null): string {
  const parts = [
    `trust=${trust ?? 'none'}`,
    `iss=${bounded(claims?.iss)}`,
    `sub=${bounded(claims?.sub)}`,
    `jti=${bounded(claims?.jti)}`,
  ];
  if (reason) parts.push(`reason=${reason}`);
  return parts.join(' ');
}

/** The answer of a token exchange (RFC 8693). */
interface ExchangeAnswer {
  access_token: string;
  issued_token_type: typeof ACCESS_TOKEN_TYPE;
  token_type: 'Bearer';
  expires_in: number;
  scope: string;
}

/** What an exchange has learnt so far: its audit row says it, whichever step refuses. */
interface Attempt {
  /** The token's claims: decoded, then verified (null when it is no JWT). */
  claims: JWTPayload | null;
  /** The signature, issuer and times verified. */
  verified: boolean;
  /** The trust named by the request, the only one of its issuer, then the one matched. */
  trust: string | null;
}

/** Who asks: the workload once its token is verified and a trust is known, `anonymous` before. */
const callerOf = (anonymous: Caller, { claims, verified, trust }: Attempt): Caller =>
  verified && trust && typeof claims?.sub === 'string'
    ? { ...anonymous, actor: workloadId(trust, claims.sub), label: workloadId(trust, claims.sub) }
    : anonymous;

/** The scopes the workload token gets: the trust's, or the subset the request's `scope` asks for. */
function grantedScopes(trust: TrustRow, scope: string | undefined): string[] {
  if (scope === undefined || scope.trim() === '') return trust.scopes;
  const asked = [...new Set(scope.trim().split(/\s+/))];
  const outside = asked.filter((s) => !trust.scopes.includes(s));
  if (outside.length) {
    throw refuse(
      'scope',
      403,
      `scope asks for ${outside.join(', ')}, which trust ${trust.name} does not grant (it grants: ${trust.scopes.join(', ')})`,
      `Ask for a subset of ${trust.scopes.join(' ')}, or omit scope`,
    );
  }
  return asked;
}

const nameTaken = (name: string) =>
  errors.conflict(
    `A trust policy named ${name} already exists`,
    'Choose another name, or update it with PUT /api/auth/trusts/{name}',
  );
const noTrust = (name: string) =>
  errors.notFound(`Trust policy not found: ${name}`, 'List trust policies with GET /api/auth/trusts');

export interface OidcServiceDeps {
  db: Database;
  repo: OidcRepository;
  trail: AuditTrail;
  keys: IssuerKeys;
  replay: ReplayGuard;
  /** OIDC_ALLOW_HTTP_ISSUERS: accept http:// issuers (local test issuers only). */
  allowHttpIssuers: boolean;
}

/** Trust policies for workload identity, and the token exchange that checks an ID token against them. */
export class OidcService {
  constructor(private readonly deps: OidcServiceDeps) {}

  async create(input: TrustInput, caller: Caller): Promise<TrustView> {
    const f = this.fields(input);
    const row = await this.deps.trail.change(
      caller,
      'oidc_trust.create',
      `oidc_trust:${f.name}`,
      async (tx) => {
        await requireEnvironments(tx, f.environments);
        const r = await this.deps.repo.insert(tx, randomUUID(), f, caller.actor);
        if (!r) throw nameTaken(f.name);
        return { result: r, version: null };
      },
    );
    return toView(row);
  }

  async update(
    { name, trust: input }: { name: string; trust: TrustInput },
    caller: Caller,
  ): Promise<TrustView> {
    const f = this.fields(input);
    const row = await this.deps.trail.change(
      caller,
      'oidc_trust.update',
      `oidc_trust:${name}`,
      async (tx) => {
        if (f.name !== name && (await this.deps.repo.findByName(tx, f.name))) throw nameTaken(f.name);
        await requireEnvironments(tx, f.environments);
        const r = await this.deps.repo.updateRow(tx, name, f);
        if (!r) throw noTrust(name);
        return { result: r, version: null };
      },
    );
    return toView(row);
  }

  async remove(name: string, caller: Caller): Promise<TrustView> {
    const row = await this.deps.trail.change(
      caller,
      'oidc_trust.delete',
      `oidc_trust:${name}`,
      async (tx) => {
        const r = await this.deps.repo.deleteRow(tx, name);
        if (!r) throw noTrust(name);
        return { result: r, version: null };
      },
    );
    return toView(row);
  }

  async list(caller: Caller): Promise<TrustView[]> {
    const rows = await this.deps.trail.lookup(caller, 'oidc_trust.list', null, () =>
      this.deps.repo.listAll(this.deps.db),
    );
    return rows.map(toView);
  }

  async get(name: string, caller: Caller): Promise<TrustView> {
    const row = await this.deps.trail.read(caller, 'oidc_trust.list', `oidc_trust:${name}`, async () => {
      const r = await this.deps.repo.findByName(this.deps.db, name);
      return r ? { ok: true, touched: [], result: r } : { ok: false, touched: [], error: noTrust(name) };
    });
    return toView(row);
  }

  /**
   * RFC 8693 token exchange: verifies the ID token against the issuer of a trust policy,
   * checks the trust's bindings and the token's single use, and issues a workload token.
   * Every attempt leaves one audit row (trust, iss/sub/jti, and the reason of a refusal).
   * `anonymous` is the request's caller before it is known who is asking.
   */
  async exchange(
    input: ReturnType<typeof tokenExchangeBody.parse>,
    anonymous: Caller,
  ): Promise<ExchangeAnswer> {
    const attempt: Attempt = { claims: null, verified: false, trust: input.trust ?? null };
    try {
      const token = input.subject_token;
      const { iss, claims, candidates } = await this.verifyToken(token, input.trust, attempt);
      const trust = this.matchTrust(candidates, claims, attempt);
      const scopes = grantedScopes(trust, input.scope);
      await this.checkReplay(token, iss, claims);
      return await this.mint(trust, scopes, claims, callerOf(anonymous, attempt));
    } catch (err) {
      await this.recordRefusal(err, callerOf(anonymous, attempt), attempt);
      throw err instanceof Refusal ? err.error : err;
    }
  }

  /**
   * The token's signature, issuer and times. The unverified iss only picks among configured
   * trusts: keys are fetched from configured issuers only, never from a URL the caller chose.
   * Returns the verified claims and the trusts of the issuer (the one named, if any).
   */
  private async verifyToken(
    token: string,
    named: string | undefined,
    attempt: Attempt,
  ): Promise<{ iss: string; claims: JWTPayload; candidates: TrustRow[] }> {
    try {
      decodeProtectedHeader(token);
      attempt.claims = decodeJwt(token);
    } catch {
      throw refuse(
        'malformed',
        401,
        'Invalid token: subject_token is not a JWT',
        'Send the ID token your platform issued (three base64url parts)',
      );
    }
    const iss = attempt.claims.iss;
    if (typeof iss !== 'string') {
      throw refuse('issuer', 401, 'Invalid token: the ID token has no iss claim', 'Send an OIDC ID token');
    }
    const candidates = await this.trustsOf(iss, named);
    if (candidates.length === 1) attempt.trust = (candidates[0] as TrustRow).name;
    let claims: JWTPayload;
    try {
      const r = await jwtVerify(token, this.deps.keys.resolver(iss), {
        issuer: iss,
        algorithms: ACCEPTED_ALGORITHMS,
        clockTolerance: CLOCK_SKEW_SECONDS,
        requiredClaims: ['exp', 'iat', 'sub'],
      });
      claims = r.payload;
    } catch (err) {
      throw verificationRefusal(err, iss);
    }
    attempt.claims = claims;
    if (typeof claims.iat === 'number' && claims.iat > Date.now() / 1000 + CLOCK_SKEW_SECONDS) {
      throw refuse(
        'iat',
        401,
        'Invalid token: the ID token was issued in the future (iat)',
        'Check the clocks of the platform and the service',
      );
    }
    attempt.verified = true;
    return { iss, claims, candidates };
  }

  /** The trusts that accept tokens of `iss`: the one named by the request, or all of the issuer's. */
  private async trustsOf(iss: string, named: string | undefined): Promise<TrustRow[]> {
    const candidates = named
      ? [await this.deps.repo.findByName(this.deps.db, named)].filter((t): t is TrustRow => t !== undefined)
      : await this.deps.repo.byIssuer(this.deps.db, iss);
    if (named && candidates.length === 0) {
      throw refuse(
        'unknown_trust',
        401,
        `Invalid token: no trust policy named ${named}`,
        'Check the trust name (an admin lists them with secrets trust list)',
      );
    }
    const ofIssuer = candidates.filter((t) => t.issuer === iss);
    if (ofIssuer.length === 0) {
      throw refuse(
        'issuer',
        401,
        `Invalid token: no trust policy accepts tokens from issuer ${JSON.stringify(iss.slice(0, 200))}`,
        'An admin creates one with POST /api/auth/trusts naming this issuer',
      );
    }
    return ofIssuer;
  }

  /** The one trust whose bindings (audiences, subject, claims) the verified claims satisfy. */
  private matchTrust(candidates: TrustRow[], claims: JWTPayload, attempt: Attempt): TrustRow {
    const verdicts = candidates.map((t) => ({ t, why: mismatch(t, claims) }));
    const matching = verdicts.filter((v) => v.why === null).map((v) => v.t);
    if (matching.length === 0) {
      const whys = verdicts.map((v) => `trust ${v.t.name}: ${v.why?.message}`).join('; ');
      throw refuse(
        verdicts.length === 1 ? (verdicts[0]?.why?.reason ?? 'binding') : 'binding',
        403,
        `The ID token matches no trust policy (${whys})`,
        "Check the trust's audiences, subject and claims against the token's claims",
      );
    }
    if (matching.length > 1) {
      throw refuse(
        'ambiguous',
        400,
        `The ID token matches several trust policies (${matching.map((t) => t.name).join(', ')})`,
        'Name the one to use with the trust parameter',
      );
    }
    const trust = matching[0] as TrustRow;
    attempt.trust = trust.name;
    return trust;
  }

  /**
   * Single use: a token seen before (by jti, or by its digest when it has none) is a
   * replay. Remembered until it expires, after which it is refused as expired anyway.
   */
  private async checkReplay(token: string, iss: string, claims: JWTPayload): Promise<void> {
    const exp = claims.exp as number;
    const replayId = `${iss}#${typeof claims.jti === 'string' ? `jti:${claims.jti}` : `sha256:${hashToken(token).toString('hex')}`}`;
    const ttlMs = (exp - Date.now() / 1000 + CLOCK_SKEW_SECONDS) * 1000;
    let first: boolean;
    try {
      first = await this.deps.replay.firstUse(replayId, ttlMs);
    } catch (err) {
      // Our replay store failed (replay.ts fails closed with a 503), not the issuer.
      throw err instanceof AppError ? new Refusal('replay_store_unavailable', err) : err;
    }
    if (!first) {
      throw refuse(
        'replay',
        401,
        'Invalid token: this ID token was already exchanged (replay)',
        'Request a fresh ID token for each exchange',
      );
    }
  }

  /** Issues the workload token: its row and the exchange's audit row in one transaction. */
  private async mint(
    trust: TrustRow,
    scopes: string[],
    claims: JWTPayload,
    caller: Caller,
  ): Promise<ExchangeAnswer> {
    const issued = newWorkloadToken();
    const expiresAt = await this.deps.trail.change(
      caller,
      'auth.token_exchange',
      describe(claims, trust.name, null),
      async (tx) => ({
        result: await this.deps.repo.issue(tx, {
          tokenHash: hashToken(issued),
          trustId: trust.id,
          trustName: trust.name,
          subject: claims.sub as string,
          scopes,
          keyPatterns: trust.key_patterns,
          environments: trust.environments,
          ttlSeconds: trust.ttl_seconds,
        }),
        version: null,
      }),
    );
    return {
      access_token: issued,
      issued_token_type: ACCESS_TOKEN_TYPE,
      token_type: 'Bearer',
      expires_in: Math.max(0, Math.round((expiresAt.getTime() - Date.now()) / 1000)),
      scope: scopes.join(' '),
    };
  }

  /**
   * The audit row of an exchange refused or failed before its mint (a Refusal, with its
   * reason). A failure of the mint itself already has its row: trail.change writes it, with
   * the outcome of the storage error and no reason.
   */
  private async recordRefusal(err: unknown, caller: Caller, attempt: Attempt): Promise<void> {
    if (!(err instanceof Refusal)) return;
    const status = err.error.statusCode;
    const outcome =
      status === 403 ? 'denied' : status === 400 ? 'invalid' : status === 401 ? 'unauthenticated' : null;
    await this.deps.trail.refused(
      caller,
      'auth.token_exchange',
      [describe(attempt.claims, attempt.trust, err.reason)],
      // A 503 keeps the outcome of its status (unavailable).
      outcome ? withOutcome(err.error, outcome) : err.error,
    );
  }

  /** Resolves an iw_ workload token to an actor with its trust's grant; 401 otherwise. */
  async authenticate(token: string): Promise<Actor> {
    if (!WORKLOAD_TOKEN_PATTERN.test(token)) throw errors.badToken('the workload token is malformed');
    const row = await this.deps.repo.findByTokenHash(this.deps.db, hashToken(token));
    if (!row) throw errors.badToken('unknown workload token');
    if (row.trust_id === null) {
      throw errors.badToken(`the trust policy ${row.trust_name} that issued this workload token was deleted`);
    }
    if (row.expired) {
      throw errors.unauthorized(
        `Invalid token: the workload token expired at ${row.expires_at.toISOString()}`,
        'Exchange a fresh ID token (secrets run --oidc does it for you)',
      );
    }
    const name = workloadId(row.trust_name, row.subject);
    return {
      kind: 'access_key',
      id: name,
      name,
      scopes: row.scopes.filter((s): s is Scope => (SCOPES as readonly string[]).includes(s)),
      patterns: row.key_patterns,
      environments: environmentGrant(row.environments),
      workload: { trust: row.trust_name, sub: row.subject },
    };
  }

  private fields(input: TrustInput): TrustFields {
    let url: URL;
    try {
      url = new URL(input.issuer);
    } catch {
      throw errors.invalidInput(
        `issuer is not a URL: ${JSON.stringify(input.issuer)}`,
        'Give the issuer as its iss claim shows it, e.g. https://token.actions.githubusercontent.com',
      );
    }
    if (url.protocol !== 'https:' && !(this.deps.allowHttpIssuers && url.protocol === 'http:')) {
      throw errors.invalidInput(
        'issuer must be an https:// URL',
        'Use the https issuer URL (set OIDC_ALLOW_HTTP_ISSUERS=true only for a local test issuer)',
      );
    }
    if (url.search || url.hash || url.username || url.password) {
      throw errors.invalidInput('issuer must be a plain URL without query, fragment or credentials');
    }
    const claims = input.claims ?? {};
    // A bare "*" subject with no claim bound would admit every workload of the issuer
    // (every repository on GitHub): the trust must name who it trusts.
    if (/^\**$/.test(input.subject) && !Object.values(claims).some((v) => !/^\**$/.test(v))) {
      throw errors.invalidInput(
        'subject "*" with no claim binding would trust every workload of the issuer',
        'Bind the subject (e.g. repo:my-org/my-repo:ref:refs/heads/main) or a claim such as repository_id',
      );
    }
    return {
      name: input.name,
      issuer: input.issuer,
      audiences: [...new Set(input.audiences)],
      subject: input.subject,
      claims,
      scopes: [...new Set(input.scopes)],
      keyPatterns: input.keys === undefined ? null : [...new Set(input.keys)],
      environments: grantedEnvironments(input.environments),
      ttlSeconds: input.ttlSeconds ?? DEFAULT_TTL_SECONDS,
    };
  }
}
