import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { UsageError } from './exit-codes.js';
import { chmod, mkdir, readFile, rename, stat, writeFile } from './fs.js';

/**
 * Where the CLI's credential comes from, and the login profiles.
 * Precedence, per setting: flag (--url, --token, --token-file, --token-stdin) > environment
 * (SECRETS_URL, SECRETS_TOKEN, SECRETS_TOKEN_FILE) > profile (secrets login) > default.
 * Profiles live in $XDG_CONFIG_HOME/secrets-service/profiles.json (else
 * ~/.config/secrets-service/), the directory 0700 and the file 0600, written atomically.
 */
export interface Profile {
  url: string;
  token: string;
  /** The environment commands address when neither --env nor SECRETS_ENV says (absent: default). */
  environment?: string;
}

interface ProfilesFile {
  profiles: Record<string, Profile>;
}

export function configDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_CONFIG_HOME;
  const base = xdg && isAbsolute(xdg) ? xdg : join(env.HOME || homedir(), '.config');
  return join(base, 'secrets-service');
}

export const profilesPath = (env: NodeJS.ProcessEnv = process.env) => join(configDir(env), 'profiles.json');

export async function readProfiles(path = profilesPath()): Promise<ProfilesFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { profiles: {} };
    throw err;
  }
  const mode = (await stat(path)).mode & 0o777;
  if (mode & 0o077) {
    process.stderr.write(
      `secrets: warning: ${path} is readable by other users (mode ${mode.toString(8)}): chmod 600 it\n`,
    );
  }
  try {
    const parsed = JSON.parse(text) as Partial<ProfilesFile>;
    return { profiles: parsed.profiles ?? {} };
  } catch {
    throw new UsageError(`${path} is not valid JSON: fix it or delete it and run secrets login again`);
  }
}

async function writeProfiles(file: ProfilesFile, path = profilesPath()): Promise<void> {
  const dir = configDir();
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600, flag: 'w' });
  await chmod(tmp, 0o600);
  await rename(tmp, path);
}

export async function saveProfile(name: string, profile: Profile): Promise<string> {
  const file = await readProfiles();
  file.profiles[name] = profile;
  await writeProfiles(file);
  return profilesPath();
}

/** True when the profile existed. */
export async function removeProfile(name: string): Promise<boolean> {
  const file = await readProfiles();
  if (!file.profiles[name]) return false;
  delete file.profiles[name];
  await writeProfiles(file);
  return true;
}

/** A token file holds the token and optionally one trailing newline. */
export async function readTokenFile(path: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read the token file ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  return oneToken(text, `the token file ${path}`);
}

export async function readTokenStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return oneToken(Buffer.concat(chunks).toString('utf8'), 'stdin (--token-stdin)');
}

function oneToken(text: string, where: string): string {
  const token = text.replace(/\r?\n$/, '');
  if (!token || /\s/.test(token)) throw new UsageError(`${where} must hold exactly one token on one line`);
  return token;
}

/**
 * The server URL, checked: http(s) with a host, no trailing /api (the client adds the
 * paths). A mistake here is a usage error with a hint, not a confusing 404 or parse error.
 */
export function checkUrl(raw: string, from: string): string {
  let u: URL | undefined;
  try {
    u = new URL(raw);
  } catch {
    u = undefined;
  }
  if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:') || !u.host) {
    throw new UsageError(
      `${from} ${JSON.stringify(raw)} is not an http(s) URL: give the scheme and host, e.g. http://127.0.0.1:7130`,
    );
  }
  // The web console's and the API reference's addresses are what a browser shows; the
  // CLI needs the base URL they hang off (else every command answers 404: "no such secret").
  const page = /\/(console|docs)(\/.*)?$/.exec(u.pathname);
  if (page) {
    throw new UsageError(
      `${from} points at the ${page[1] === 'console' ? 'web console' : 'API reference'} (/${page[1]}): give the server's base URL, e.g. ${u.origin}${u.pathname.slice(0, page.index)}`,
    );
  }
  if (/\/api\/?$/.test(u.pathname)) {
    throw new UsageError(
      `${from} ends in /api: give the server's base URL, e.g. ${u.origin}${u.pathname.replace(/\/api\/?$/, '')}`,
    );
  }
  return raw.replace(/\/+$/, '');
}
