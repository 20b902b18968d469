import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { mintAdminToken, parseTtl } from '../auth/mint.js';
import { loadConfig } from '../config.js';

/**
 * npm run token -- --sub ci --ttl 1h
 * Prints an admin JWT signed with JWT_SECRET (or the one generated in DATA_DIR) on stdout.
 * node:util parseArgs is the argument parser: two flags do not justify a dependency.
 */
const HELP = `Usage: npm run token -- [--sub NAME] [--ttl 1h] [--role ROLE]
Prints an admin JWT for this service on stdout.
  --sub   subject recorded as lastUsedBy (default: cli)
  --ttl   lifetime: seconds or 15m, 1h, 7d (default: 1h; at most JWT_MAX_TTL, 24h by default)
  --role  role claim (default: ADMIN_ROLE, project_admin)`;

async function generatedJwtSecret(dataDir: string): Promise<string> {
  const file = join(resolve(dataDir), 'keys', 'jwt.secret');
  try {
    const secret = (await readFile(file, 'utf8')).trim();
    if (secret) return secret;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  throw new Error(
    `no JWT secret to sign with: JWT_SECRET is not set and ${file} does not exist (DATA_DIR is ${resolve(dataDir)}). ` +
      'Run this where the server runs (the same working directory, or the same DATA_DIR), or set JWT_SECRET to the one the server uses; ' +
      'a server started with npm start generates the file on its first start',
  );
}

/** Mints and prints a token; `args` are the flags after the command name. */
export async function tokenCommand(args: string[]): Promise<void> {
  try {
    const { values } = parseArgs({
      args,
      options: {
        sub: { type: 'string', default: 'cli' },
        ttl: { type: 'string', default: '1h' },
        role: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    if (values.help) {
      process.stdout.write(`${HELP}\n`);
      process.exit(0);
    }
    const config = loadConfig();
    if (config.jwt.publicKey && !config.jwt.secret) {
      throw new Error(
        'the service verifies RS256/ES256 tokens: mint them with the private key where it is kept',
      );
    }
    const ttlSeconds = parseTtl(values.ttl);
    if (ttlSeconds > config.jwt.maxTtlSeconds) {
      throw new Error(
        `--ttl ${values.ttl} is longer than the service accepts (JWT_MAX_TTL, ${config.jwt.maxTtlSeconds} s): ask for less, or raise JWT_MAX_TTL on the service and here`,
      );
    }
    if (values.sub.length === 0) throw new Error('--sub must not be empty');
    // Minting needs only the JWT key: JWT_SECRET, else the one the server generated into
    // DATA_DIR. Never generate one here: a key made in the wrong directory signs tokens that
    // the server rejects ("the signature does not verify"), a puzzle for a first-time user.
    const jwtSecret = config.jwt.secret ?? (await generatedJwtSecret(config.dataDir));
    const token = mintAdminToken(config, jwtSecret, {
      sub: values.sub,
      ttlSeconds,
      ...(values.role ? { role: values.role } : {}),
    });
    process.stdout.write(`${token}\n`);
  } catch (err) {
    process.stderr.write(`token: ${(err as Error).message}\n${HELP}\n`);
    process.exit(2);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await tokenCommand(process.argv.slice(2));
