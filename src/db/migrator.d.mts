export interface Migration {
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

/** What the migrator needs of a database: one transaction (both backends' Database has it). */
export interface MigratorDb {
  transaction<T>(
    fn: (tx: {
      query<R>(sql: string, params?: readonly unknown[]): Promise<R[]>;
      exec(sql: string): Promise<void>;
    }) => Promise<T>,
  ): Promise<T>;
}

export const MIGRATIONS_DIR: string;
export function loadMigrations(dir?: string): Promise<Migration[]>;
export function migrationPrefixKeys(migrations: readonly Migration[]): string[];
export function migrate(
  db: MigratorDb,
  migrations?: Migration[],
  /** Called once, before the first pending file runs (start-up's progress line). */
  onPending?: (names: string[]) => void,
): Promise<{ applied: string[] }>;
