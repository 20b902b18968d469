import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { parseKeyring } from '../src/crypto/keyring.js';
import { openPglite } from '../src/db/pglite.js';
import { createLogger } from '../src/logger.js';

/** npm run openapi: regenerates openapi/openapi.json from the zod schemas of the routes. */
export async function generateOpenApi(): Promise<string> {
  const config = loadConfig({ NODE_ENV: 'test', ROOT_ADMIN_USERNAME: 'docs', ROOT_ADMIN_PASSWORD: 'docs' });
  const db = await openPglite(undefined); // never queried: building the routes is enough
  const app = await buildApp({
    config,
    db,
    keyring: parseKeyring({ key: randomBytes(32).toString('base64') }),
    jwtSecret: randomBytes(48).toString('base64'),
    logger: createLogger('silent'),
    migrationCount: 0,
  });
  await app.ready();
  const doc = `${JSON.stringify(app.swagger(), null, 2)}\n`;
  await app.close();
  await db.close();
  return doc;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await writeFile(new URL('../openapi/openapi.json', import.meta.url), await generateOpenApi());
  process.stdout.write('wrote openapi/openapi.json\n');
}
