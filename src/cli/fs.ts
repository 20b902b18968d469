import {
  chmod as chmodCb,
  mkdir as mkdirCb,
  readFile as readFileCb,
  rename as renameCb,
  stat as statCb,
  writeFile as writeFileCb,
} from 'node:fs';
import { promisify } from 'node:util';

/**
 * The node:fs/promises functions the CLI uses, made from node:fs's own: node:fs/promises also
 * loads readline, the fs watchers and the file-handle streams, none of which the CLI uses
 * (CPU on each start of the light CLI, which runs without the ESM loader that would load
 * them anyway; the figure is in docs/benchmarks.md).
 */
export const readFile = promisify(readFileCb);
export const writeFile = promisify(writeFileCb);
export const mkdir = promisify(mkdirCb);
export const chmod = promisify(chmodCb);
export const rename = promisify(renameCb);
export const stat = promisify(statCb);
