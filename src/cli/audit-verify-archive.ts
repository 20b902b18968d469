import { parseArgs } from 'node:util';
import { verifyArchiveDir } from '../audit/archive.js';

/**
 * npm run audit:verify-archive -- DIR
 * Verifies audit archives offline (no database, no keys): DIR is one archive (it holds
 * manifest.json) or a directory of them (AUDIT_ARCHIVE_DIR), checked one by one and each
 * against the one before it. Prints one JSON line per archive; exit 0 when all are intact,
 * 1 when any is not, 2 on a bad command line.
 */
const HELP = `Usage: npm run audit:verify-archive -- DIR
Verifies audit archives written by the retention job, without the database.
DIR: one archive directory, or the archive root holding several.`;

const { values, positionals } = parseArgs({
  options: { help: { type: 'boolean', short: 'h' } },
  allowPositionals: true,
});
if (values.help) {
  process.stdout.write(`${HELP}\n`);
  process.exit(0);
}
const dir = positionals[0];
if (positionals.length !== 1 || !dir) {
  process.stderr.write(`${HELP}\n`);
  process.exit(2);
}
try {
  const results = await verifyArchiveDir(dir);
  if (results.length === 0) {
    process.stderr.write(`no archive found in ${dir}\n`);
    process.exit(1);
  }
  for (const r of results) {
    const { manifest, ...rest } = r;
    process.stdout.write(
      `${JSON.stringify({ ...rest, startSeal: manifest?.start.seq ?? null, endSeal: manifest?.end.seq ?? null })}\n`,
    );
  }
  process.exit(results.every((r) => r.intact) ? 0 : 1);
} catch (err) {
  process.stderr.write(`audit:verify-archive: ${(err as Error).message}\n`);
  process.exit(1);
}
