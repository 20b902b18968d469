import type { Migration } from './migrator.mjs';

export interface PgliteImage {
  dir: string;
  /** How many of the migrations (the first ones) the image holds. */
  migrations: number;
}
export function pgliteImageDirs(migrations: readonly Migration[], cache?: string): Promise<PgliteImage[]>;
export function findPgliteImage(
  migrations: readonly Migration[],
  cache?: string,
): Promise<PgliteImage | undefined>;
export function copyPgliteImage(image: string, target: string): Promise<void>;
export function buildPgliteImage(opts?: { cache?: string; migrations?: Migration[] }): Promise<string>;
