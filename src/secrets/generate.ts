import { randomInt } from 'node:crypto';
import { z } from 'zod';

/**
 * Server-side generation of secret values (POST /api/secrets and the batch endpoint take
 * `generate` in place of `value`): the value is made here, sealed, and never returned or
 * logged. crypto.randomInt draws each character uniformly (it rejects out-of-range draws
 * internally), so no alphabet size introduces a modulo bias.
 */
const LOWER = 'abcdefghijklmnopqrstuvwxyz';
const UPPER = LOWER.toUpperCase();
const DIGITS = '0123456789';
export const ALPHABETS = {
  base64url: `${UPPER}${LOWER}${DIGITS}-_`,
  hex: `${DIGITS}abcdef`,
  alnum: `${UPPER}${LOWER}${DIGITS}`,
  /**
   * Printable ASCII (0x21-0x7e) without space, ' and \: with those two a value could hold
   * both a ' and one of " $ ` \, which no dotenv quoting carries exactly
   * (export-format.ts), so `secrets export` would refuse it. Without them every export
   * format (dotenv, shell, json) carries every generated value.
   */
  ascii: Array.from({ length: 0x7e - 0x21 + 1 }, (_, i) => String.fromCharCode(0x21 + i))
    .filter((c) => c !== "'" && c !== '\\')
    .join(''),
} as const;
export type Alphabet = keyof typeof ALPHABETS;

export const GENERATE_DEFAULTS = { length: 32, alphabet: 'base64url' as Alphabet };

export const generateSpec = z
  .union(
    [
      z.literal(true).transform(() => ({ ...GENERATE_DEFAULTS })),
      z.strictObject(
        {
          length: z
            .number({ error: 'generate.length must be a whole number from 16 to 4096' })
            .int({ error: 'generate.length must be a whole number from 16 to 4096' })
            .min(16, { error: 'generate.length must be a whole number from 16 to 4096' })
            .max(4096, { error: 'generate.length must be a whole number from 16 to 4096' })
            .default(GENERATE_DEFAULTS.length),
          alphabet: z
            .enum(Object.keys(ALPHABETS) as [Alphabet, ...Alphabet[]], {
              error: `generate.alphabet must be one of ${Object.keys(ALPHABETS).join(', ')}`,
            })
            .default(GENERATE_DEFAULTS.alphabet),
        },
        {
          error: (iss) =>
            iss.code === 'unrecognized_keys'
              ? `Unknown field(s) in generate: ${iss.keys.join(', ')}`
              : 'generate must be true or an object {length?, alphabet?}',
        },
      ),
    ],
    {
      // For an object, say what is wrong inside it (the second option's first issue).
      error: (iss) => {
        const inner = (iss as { errors?: { message?: string }[][] }).errors?.[1]?.[0]?.message;
        const isObject = typeof iss.input === 'object' && iss.input !== null;
        return isObject && inner ? inner : 'generate must be true or an object {length?, alphabet?}';
      },
    },
  )
  .meta({
    id: 'GenerateSpec',
    description:
      'Have the server generate the value (crypto-random; never returned): true or {} for 32 characters of base64url, or {length: 16..4096, alphabet: base64url|hex|alnum|ascii}',
  });

export type GenerateSpec = z.output<typeof generateSpec>;

export function generateValue(spec: GenerateSpec): string {
  const chars = ALPHABETS[spec.alphabet];
  let out = '';
  for (let i = 0; i < spec.length; i++) out += chars[randomInt(chars.length)];
  return out;
}
