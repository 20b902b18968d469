import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  FORMAT_VERSION,
  IntegrityError,
  openValue,
  rewrapValue,
  type SealedValue,
  sealValue,
} from '../../src/crypto/envelope.js';
import { decodeKey, KeyringError, parseKeyring } from '../../src/crypto/keyring.js';

const ring = (keys: string) => parseKeyring({ keys });
const k = () => randomBytes(32).toString('base64');
const id = { secretId: '3f1c3c2e-0000-4000-8000-000000000001', key: 'STRIPE_API_KEY', version: 1 };

describe('envelope', () => {
  const keyring = parseKeyring({ key: k() });

  it('round-trips any string byte for byte', () => {
    for (const v of ['x', '🔑 ünï\r\n\t ', 'a'.repeat(65536), '\u0000\u0001']) {
      expect(openValue(keyring, id, sealValue(keyring, id, v))).toBe(v);
    }
  });

  it('seals with fresh randomness each time', () => {
    const a = sealValue(keyring, id, 'same');
    const b = sealValue(keyring, id, 'same');
    expect(a.iv.equals(b.iv)).toBe(false);
    expect(a.wrappedDek.equals(b.wrappedDek)).toBe(false);
    expect(a.format).toBe(FORMAT_VERSION);
    expect(a.kid).toBe('k1');
  });

  it.each([
    ['another secret id', { ...id, secretId: '3f1c3c2e-0000-4000-8000-000000000002' }],
    ['another key', { ...id, key: 'OPENAI_API_KEY' }],
    ['another version', { ...id, version: 2 }],
  ])('does not open under %s (AAD binding)', (_n, other) => {
    const sealed = sealValue(keyring, id, 'bound');
    expect(() => openValue(keyring, other, sealed)).toThrow(IntegrityError);
  });

  it('does not open with another key-encryption key of the same kid', () => {
    const sealed = sealValue(keyring, id, 'v');
    expect(() => openValue(parseKeyring({ key: k() }), id, sealed)).toThrow(IntegrityError);
  });

  it.each([
    'wrappedDek',
    'dekIv',
    'dekTag',
    'iv',
    'tag',
    'ciphertext',
  ] as const)('a flipped bit in %s throws IntegrityError without the plaintext', (field) => {
    const sealed = sealValue(keyring, id, 'plaintext-never-shown');
    const bad = Buffer.from(sealed[field]);
    bad[0] = bad[0]! ^ 0x80;
    const err = (() => {
      try {
        openValue(keyring, id, { ...sealed, [field]: bad } as SealedValue);
      } catch (e) {
        return e as Error;
      }
    })();
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err!.message).not.toContain('plaintext-never-shown');
  });

  it('an unknown format or kid throws IntegrityError', () => {
    const sealed = sealValue(keyring, id, 'v');
    expect(() => openValue(keyring, id, { ...sealed, format: 2 })).toThrow(IntegrityError);
    expect(() => openValue(keyring, id, { ...sealed, kid: 'k9' })).toThrow(IntegrityError);
  });

  it('rewrap moves a value to another kid without changing its ciphertext; the old kid is bound in the AAD', () => {
    const two = ring(`k1:${k()},k2:${k()}`);
    const one = parseKeyring({ keys: `k1:${k()}` });
    expect(two.activeKid).toBe('k2');
    const old = sealValue(
      parseKeyring({
        keys: two
          .kids()
          .map((x) => `${x}:${two.get(x)!.toString('base64')}`)
          .join(','),
        activeKid: 'k1',
      }),
      id,
      'rotate me',
    );
    expect(old.kid).toBe('k1');
    const moved = rewrapValue(two, id, old);
    expect(moved.kid).toBe('k2');
    expect(moved.ciphertext.equals(old.ciphertext)).toBe(true);
    expect(openValue(two, id, moved)).toBe('rotate me');
    // Relabelling the kid without re-wrapping does not authenticate.
    expect(() => openValue(two, id, { ...old, kid: 'k2' })).toThrow(IntegrityError);
    expect(() => openValue(one, id, old)).toThrow(IntegrityError);
  });
});

describe('keyring', () => {
  const raw = randomBytes(32);

  it('decodes 32 bytes as base64, unpadded or url-safe base64, or hex', () => {
    expect(decodeKey(raw.toString('base64'), 'K').equals(raw)).toBe(true);
    expect(decodeKey(raw.toString('base64').replace(/=+$/, ''), 'K').equals(raw)).toBe(true);
    expect(decodeKey(raw.toString('base64url'), 'K').equals(raw)).toBe(true);
    expect(decodeKey(raw.toString('hex'), 'K').equals(raw)).toBe(true);
    expect(decodeKey(` ${raw.toString('hex')}\n`, 'K').equals(raw)).toBe(true);
  });

  it.each([
    ['16 bytes', randomBytes(16).toString('base64')],
    ['64 bytes', randomBytes(64).toString('base64')],
    ['a passphrase', 'correct horse battery staple'],
    ['empty', ''],
    ['31 bytes of hex', randomBytes(31).toString('hex')],
  ])('refuses %s, saying how to make a key', (_n, text) => {
    expect(() => decodeKey(text, 'ENCRYPTION_KEY')).toThrow(
      /ENCRYPTION_KEY must be 32 bytes .*openssl rand -base64 32/,
    );
  });

  it('parses a ring: last entry active unless ENCRYPTION_ACTIVE_KID says otherwise', () => {
    const keys = `old:${k()},new:${k()}`;
    expect(parseKeyring({ keys }).activeKid).toBe('new');
    expect(parseKeyring({ keys, activeKid: 'old' }).activeKid).toBe('old');
    expect(parseKeyring({ keys }).kids()).toEqual(['old', 'new']);
  });

  it.each([
    [{}, /ENCRYPTION_KEY is not set/],
    [{ keys: 'nokid' }, /kid:key/],
    [{ keys: `a b:${k()}` }, /key id "a b"/],
    [{ keys: `k1:${k()},k1:${k()}` }, /twice/],
    [{ keys: ' , ' }, /empty/],
    [{ keys: `k1:${k()}`, activeKid: 'k7' }, /ENCRYPTION_ACTIVE_KID "k7"/],
    [{ keys: `k1:${k()}`, key: k() }, /disagree/],
  ])('refuses %j', (opts, message) => {
    expect(() => parseKeyring(opts)).toThrow(KeyringError);
    expect(() => parseKeyring(opts)).toThrow(message);
  });

  it('the keyring is frozen', () => {
    const r = parseKeyring({ key: k() });
    expect(Object.isFrozen(r)).toBe(true);
  });
});
