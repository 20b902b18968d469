import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadMigrations, type Migration, migrate } from '../../src/db/migrate.js';
import { buildPgliteImage, copyPgliteImage, findPgliteImage } from '../../src/db/pglite-image.mjs';
import { migratable } from '../helpers/pglite-snapshot.js';

/**
 * The embedded database's install-time image (src/db/pglite-image.mjs): a data directory
 * copied from it must be the database the migrations make from scratch, with the migrator's
 * bookkeeping to match, so the service's migrator finds nothing to do on it, or exactly what
 * the image lacks. Embedded only (PGlite data directories), so it runs once, in this project.
 */
let work: string;
let cache: string;
let image: string;
let migrations: Migration[];
const opened: PGlite[] = [];

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'secrets-pglite-image-'));
  cache = join(work, 'cache');
  migrations = await loadMigrations();
  image = await buildPgliteImage({ cache, migrations });
}, 180_000);
afterAll(async () => {
  for (const pg of opened) if (!pg.closed) await pg.close();
  if (work) await rm(work, { recursive: true, force: true });
});

async function open(dir: string): Promise<PGlite> {
  const pg = new PGlite({ dataDir: dir });
  opened.push(pg);
  await pg.waitReady;
  return pg;
}

async function fromImage(name: string, imageDir = image): Promise<PGlite> {
  const dir = join(work, name);
  await copyPgliteImage(imageDir, dir);
  return open(dir);
}

/**
 * Everything the migrations decide, as text: relations, columns, defaults, constraints,
 * indexes, partitions, sequences (with their positions), functions, triggers, views,
 * privileges, comments and extensions of every schema but the system's, every row of every
 * table, and the migrator's bookkeeping (apart from when it ran).
 */
async function schemaDump(pg: PGlite): Promise<Record<string, unknown[]>> {
  const q = async (sql: string) => (await pg.query<Record<string, unknown>>(sql)).rows;
  const userNs = `n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast_temp%'`;
  const dump: Record<string, unknown[]> = {
    schemas: await q(`SELECT n.nspname, n.nspacl::text FROM pg_namespace n WHERE ${userNs} ORDER BY 1`),
    relations: await q(
      `SELECT n.nspname, c.relname, c.relkind, c.relpersistence, c.reloptions::text, c.relacl::text,
              c.relispartition, pg_get_expr(c.relpartbound, c.oid) AS bound, obj_description(c.oid) AS comment
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE ${userNs} ORDER BY 1, 2`,
    ),
    columns: await q(
      `SELECT n.nspname, c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod) AS type,
              a.attnotnull, a.attidentity, a.attgenerated, pg_get_expr(d.adbin, d.adrelid) AS def,
              col_description(c.oid, a.attnum) AS comment
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE ${userNs} AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1, 2, 3`,
    ),
    constraints: await q(
      `SELECT n.nspname, c.relname, k.conname, pg_get_constraintdef(k.oid) AS def
         FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE ${userNs} ORDER BY 1, 2, 3`,
    ),
    indexes: await q(
      `SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes
        WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2, 3`,
    ),
    sequences: await q(
      `SELECT schemaname, sequencename, data_type::text, start_value, increment_by, max_value, cycle, last_value
         FROM pg_sequences ORDER BY 1, 2`,
    ),
    functions: await q(
      `SELECT n.nspname, p.proname, pg_get_function_identity_arguments(p.oid) AS args, pg_get_functiondef(p.oid) AS def,
              p.proacl::text
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE ${userNs} ORDER BY 1, 2, 3`,
    ),
    triggers: await q(
      `SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid) AS def, t.tgenabled
         FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE ${userNs} AND NOT t.tgisinternal ORDER BY 1, 2`,
    ),
    views: await q(
      `SELECT schemaname, viewname, definition FROM pg_views
        WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2`,
    ),
    types: await q(
      `SELECT n.nspname, t.typname, t.typtype, (SELECT array_agg(e.enumlabel ORDER BY e.enumsortorder)::text
              FROM pg_enum e WHERE e.enumtypid = t.oid) AS labels
         FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE ${userNs} ORDER BY 1, 2`,
    ),
    extensions: await q('SELECT extname, extversion FROM pg_extension ORDER BY 1'),
    settings: await q(
      'SELECT setdatabase::text, setrole::text, setconfig::text FROM pg_db_role_setting ORDER BY 1, 2',
    ),
    migrations: await q('SELECT version, name, checksum FROM schema_migrations ORDER BY version'),
  };
  const tables = await q(
    `SELECT format('%I.%I', n.nspname, c.relname) AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE ${userNs} AND c.relkind IN ('r', 'p') AND c.relname <> 'schema_migrations' ORDER BY 1`,
  );
  // A timestamp a migration's row takes from now() (the default environment's created_at)
  // differs between any two migrations, from scratch or not: compared as "a timestamp".
  const stamp = /"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d"/g;
  for (const { name } of tables)
    dump[`rows of ${name}`] = (await q(`SELECT to_jsonb(t)::text AS row FROM ${name} t ORDER BY 1`)).map(
      (r) => ({ row: String(r.row).replace(stamp, '"<timestamp>"') }),
    );
  return dump;
}

it('a data directory copied from the image is the database the migrations make from scratch', async () => {
  expect(existsSync(join(image, 'PG_VERSION'))).toBe(true);
  const scratch = await open(join(work, 'scratch'));
  expect((await migrate(migratable(scratch), migrations)).applied).toEqual(migrations.map((m) => m.name));
  const copied = await fromImage('copied');

  const fromScratch = await schemaDump(scratch);
  const fromTheImage = await schemaDump(copied);
  // The dump has something in it (a query that returned nothing would compare equal, too).
  expect(fromScratch.relations?.length).toBeGreaterThan(10);
  expect(fromScratch.functions?.length).toBeGreaterThan(0);
  expect(fromScratch['rows of public.audit_chain_head']).toHaveLength(1);
  expect(fromTheImage).toEqual(fromScratch);

  // The service's migrator finds nothing to do on it, and no row of a secret, key or audit.
  const onStart: string[][] = [];
  expect((await migrate(migratable(copied), migrations, (p) => onStart.push(p))).applied).toEqual([]);
  expect(onStart).toEqual([]);
  for (const table of ['secrets', 'secret_versions', 'crypto_canaries', 'access_keys', 'audit_log'])
    expect((await copied.query(`SELECT 1 FROM ${table}`)).rows, table).toEqual([]);
}, 180_000);

it('an image lacking a migration added since is used, and the migrator applies only that one', async () => {
  const added: Migration = {
    version: 9999,
    name: '9999_added_since.sql',
    sql: 'CREATE TABLE added_since (id integer PRIMARY KEY);',
    checksum: 'added-since',
  };
  const found = await findPgliteImage([...migrations, added], cache);
  expect(found).toEqual({ dir: image, migrations: migrations.length });
  const pg = await fromImage('added', found?.dir);
  const { applied } = await migrate(migratable(pg), [...migrations, added]);
  expect(applied).toEqual([added.name]);
  expect((await pg.query('SELECT version FROM schema_migrations WHERE version = 9999')).rows).toHaveLength(1);
}, 120_000);

it('no image is offered for migrations whose text changed since it was made (initdb runs instead)', async () => {
  const last = migrations.at(-1) as Migration;
  const edited = [...migrations.slice(0, -1), { ...last, sql: `${last.sql}\n-- edited\n` }];
  expect(await findPgliteImage(edited, cache)).toBeUndefined();
  // ...while the text it was made from still finds it.
  expect(await findPgliteImage(migrations, cache)).toEqual({ dir: image, migrations: migrations.length });
}, 60_000);
