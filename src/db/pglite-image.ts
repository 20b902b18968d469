import { existsSync } from 'node:fs';
import { join } from 'node:path';

/** True when `dir` holds no PGlite database yet (initdb has never run there). */
export const isEmptyPgliteDir = (dir: string) => !existsSync(join(dir, 'PG_VERSION'));

// Two levels below the repository root from src/db (tsx) and dist/db (compiled) alike.
export { copyPgliteImage, findPgliteImage } from '../../scripts/pglite-image.mjs';
