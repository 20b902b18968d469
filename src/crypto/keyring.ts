/**
 * The key-encryption keys (KEKs), each named by a key id (kid). Exactly one is active:
 * new data keys are wrapped with it; every kid in the ring can unwrap.
 */
export interface Keyring {
  readonly activeKid: string;
  get(kid: string): Buffer | undefined;
  kids(): string[];
}

export class KeyringError extends Error {
  override name = 'KeyringError';
}

const HOW_TO_MAKE = 'generate one with: openssl rand -base64 32';
const KID_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

/** Accepts exactly 32 bytes written as base64 (with or without padding, url-safe too) or hex. */
export function decodeKey(text: string, name: string): Buffer {
  const t = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(t)) return Buffer.from(t, 'hex');
  if (/^[A-Za-z0-9+/_-]{43}={0,1}$/.test(t)) {
    const b = Buffer.from(t.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (b.length === 32) return b;
  }
  throw new KeyringError(`${name} must be 32 bytes written as base64 or hex (${HOW_TO_MAKE})`);
}

/** The kid that a lone ENCRYPTION_KEY is known by. */
export const DEFAULT_KID = 'k1';

export function createKeyring(keys: Map<string, Buffer>, activeKid: string): Keyring {
  if (!keys.has(activeKid)) throw new KeyringError(`the active key id "${activeKid}" is not in the keyring`);
  const frozen = new Map(keys);
  return Object.freeze({
    activeKid,
    get: (kid: string) => frozen.get(kid),
    kids: () => [...frozen.keys()],
  });
}

/**
 * ENCRYPTION_KEYS="k1:<key>,k2:<key>" lists a ring (the last one is active unless
 * ENCRYPTION_ACTIVE_KID names another); ENCRYPTION_KEY alone is the ring { k1 }.
 * Both may be set while migrating from one to the other, if they agree on k1.
 */
export function parseKeyring(opts: {
  key?: string | undefined;
  keys?: string | undefined;
  activeKid?: string | undefined;
}): Keyring {
  const ring = new Map<string, Buffer>();
  let last: string | undefined;
  if (opts.keys !== undefined) {
    for (const entry of opts.keys
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)) {
      const idx = entry.indexOf(':');
      if (idx <= 0)
        throw new KeyringError(
          `ENCRYPTION_KEYS entries must look like kid:key (got an entry without "kid:")`,
        );
      const kid = entry.slice(0, idx);
      if (!KID_PATTERN.test(kid))
        throw new KeyringError(`ENCRYPTION_KEYS: key id "${kid}" must match ${KID_PATTERN}`);
      if (ring.has(kid)) throw new KeyringError(`ENCRYPTION_KEYS lists key id "${kid}" twice`);
      ring.set(kid, decodeKey(entry.slice(idx + 1), `ENCRYPTION_KEYS[${kid}]`));
      last = kid;
    }
    if (ring.size === 0) throw new KeyringError(`ENCRYPTION_KEYS is empty (${HOW_TO_MAKE})`);
  }
  if (opts.key !== undefined) {
    const k = decodeKey(opts.key, 'ENCRYPTION_KEY');
    const existing = ring.get(DEFAULT_KID);
    if (existing && !existing.equals(k)) {
      throw new KeyringError(`ENCRYPTION_KEY and ENCRYPTION_KEYS disagree about key id "${DEFAULT_KID}"`);
    }
    ring.set(DEFAULT_KID, k);
    last ??= DEFAULT_KID;
  }
  if (ring.size === 0) throw new KeyringError(`ENCRYPTION_KEY is not set (${HOW_TO_MAKE})`);
  const active = opts.activeKid ?? last!;
  if (!ring.has(active))
    throw new KeyringError(`ENCRYPTION_ACTIVE_KID "${active}" is not one of: ${[...ring.keys()].join(', ')}`);
  return createKeyring(ring, active);
}
