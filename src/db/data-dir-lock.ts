import { readFile, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import lockfile from 'proper-lockfile';

/**
 * One process at a time on an embedded DATA_DIR. PGlite has no cross-process locking of its
 * own: two processes on one directory both start, both acknowledge writes, and one's writes
 * are lost on the next start. proper-lockfile (a maintained, widely used lock-file library)
 * takes an atomic mkdir lock next to the data and keeps its mtime fresh; a lock whose mtime
 * is older than STALE_MS is stale (its holder crashed or was SIGKILLed) and is taken over.
 * The holder's pid and role are written beside it so a refused opener can name it.
 */

const LOCK_NAME = 'data.lock';
const OWNER_NAME = 'data.lock.owner.json';
/** proper-lockfile refreshes the lock every STALE_MS / 2; a lock this old is a crashed holder's. */
const STALE_MS = 10_000;

export interface LockOwner {
  pid: number;
  /** What holds it: "server", "migrate", "rewrap", ... */
  role: string;
  hostname: string;
  startedAt: string;
}

export class DataDirLockedError extends Error {
  constructor(
    readonly dataDir: string,
    readonly owner: LockOwner | null,
  ) {
    const who = owner
      ? `process ${owner.pid} (the secrets ${owner.role}${owner.hostname === hostname() ? '' : ` on ${owner.hostname}`}, since ${owner.startedAt})`
      : 'another process';
    super(
      `DATA_DIR ${dataDir} is in use by ${who}. Two processes on one embedded database lose writes: stop it first, give this one another DATA_DIR, or use DATABASE_URL (PostgreSQL) to run several instances.`,
    );
    this.name = 'DataDirLockedError';
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readOwner(dir: string): Promise<LockOwner | null> {
  try {
    return JSON.parse(await readFile(join(dir, OWNER_NAME), 'utf8')) as LockOwner;
  } catch {
    return null;
  }
}

export interface DataDirLock {
  release(): Promise<void>;
}

/**
 * Takes the DATA_DIR lock or throws DataDirLockedError naming the holder. When the recorded
 * holder is a dead process on this host, waits (up to STALE_MS and a little) for its lock to
 * go stale instead of refusing, so a restart after a crash succeeds.
 */
export async function lockDataDir(
  dataDir: string,
  role: string,
  onCompromised: (err: Error) => void,
): Promise<DataDirLock> {
  const dir = resolve(dataDir);
  const options = { lockfilePath: join(dir, LOCK_NAME), stale: STALE_MS, realpath: false, onCompromised };
  let release: () => Promise<void>;
  try {
    release = await lockfile.lock(dir, options);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ELOCKED') throw err;
    const owner = await readOwner(dir);
    const crashed = owner !== null && owner.hostname === hostname() && !alive(owner.pid);
    if (!crashed) throw new DataDirLockedError(dataDir, owner);
    try {
      release = await lockfile.lock(dir, {
        ...options,
        retries: { retries: Math.ceil(STALE_MS / 500) + 4, minTimeout: 500, maxTimeout: 500, factor: 1 },
      });
    } catch (again) {
      if ((again as NodeJS.ErrnoException).code !== 'ELOCKED') throw again;
      throw new DataDirLockedError(dataDir, await readOwner(dir));
    }
  }
  const owner: LockOwner = {
    pid: process.pid,
    role,
    hostname: hostname(),
    startedAt: new Date().toISOString(),
  };
  await writeFile(join(dir, OWNER_NAME), `${JSON.stringify(owner)}\n`, { mode: 0o600 });
  return {
    async release() {
      await unlink(join(dir, OWNER_NAME)).catch(() => {});
      await release().catch(() => {});
    },
  };
}
