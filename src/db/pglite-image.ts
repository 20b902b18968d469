import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
// Two levels below the repository root from src/db (tsx) and dist/db (compiled) alike.
import { pgliteImageFile } from '../../scripts/pglite-image.mjs';

/** True when `dir` holds no PGlite database yet (initdb has never run there). */
export const isEmptyPgliteDir = (dir: string) => !existsSync(join(dir, 'PG_VERSION'));

/**
 * The data-directory image built at install time (scripts/pglite-image.mjs), or undefined
 * when there is none (installed with --ignore-scripts, or another PGlite version since):
 * the caller then lets PGlite run initdb as before.
 */
export async function readPgliteImage(): Promise<{ file: string; image: Blob } | undefined> {
  try {
    const file = await pgliteImageFile();
    return { file, image: new Blob([await readFile(file)]) };
  } catch {
    return undefined;
  }
}
