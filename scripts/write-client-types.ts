import { readFile, writeFile } from 'node:fs/promises';

/**
 * npm run client:generate (after openapi-typescript writes src/client/schema.d.ts): writes
 * src/client/types.ts, one exported type alias per schema of openapi/openapi.json, so a
 * schema added to the document is a named type of the client without a hand edit.
 *
 * A schema whose input side differs from its output side is in the document twice: `Name`
 * and `NameInput` (defaults not yet applied). Only `Name` gets an alias: `NameInput` stays
 * reachable as `components['schemas']['NameInput']`, and would take a name the client
 * already gives another schema (`WebhookInput`, `TrustPolicyInput`).
 */

/**
 * The names the client gave some schemas before every schema had its alias, kept so that
 * code written against them compiles as before: client name -> schema.
 */
export const CLIENT_NAMES: Readonly<Record<string, string>> = {
  ErrorBody: 'ErrorResponse',
  BatchEntry: 'BatchSecretEntryInput',
  TrustPolicyInput: 'TrustPolicyRequest',
  WebhookInput: 'CreateWebhookRequest',
  WebhookPatch: 'UpdateWebhookRequest',
};

const HEADER = `/**
 * This file was generated from openapi/openapi.json by scripts/write-client-types.ts
 * (npm run client:generate). Do not make direct changes to the file.
 */
`;

/** The text of src/client/types.ts for an OpenAPI document. */
export function clientTypes(doc: { components?: { schemas?: Record<string, unknown> } }): string {
  const schemas = Object.keys(doc.components?.schemas ?? {});
  const known = new Set(schemas);
  const inputSide = (name: string) => name.endsWith('Input') && known.has(name.slice(0, -'Input'.length));
  const own = schemas.filter((name) => !inputSide(name));
  for (const [alias, schema] of Object.entries(CLIENT_NAMES)) {
    if (!known.has(schema)) throw new Error(`${alias} names ${schema}, which the document does not define`);
    if (own.includes(alias)) throw new Error(`${alias} is a schema's own name: it cannot name ${schema} too`);
  }
  const alias = (name: string, schema: string) => `export type ${name} = components['schemas']['${schema}'];`;
  return [
    HEADER,
    "import type { components } from './schema.js';",
    '',
    '/** Each schema under its own name. */',
    ...own.map((name) => alias(name, name)),
    '',
    '/** The names the client has always had for these schemas. */',
    ...Object.entries(CLIENT_NAMES).map(([name, schema]) => alias(name, schema)),
    '',
  ].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const doc = JSON.parse(await readFile(new URL('../openapi/openapi.json', import.meta.url), 'utf8'));
  await writeFile(new URL('../src/client/types.ts', import.meta.url), clientTypes(doc));
  process.stdout.write('wrote src/client/types.ts\n');
}
