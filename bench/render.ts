import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ROOT } from './procs.js';
import { renderChart, renderTable } from './report.js';

/** Re-renders latest.md and latest.svg from a results JSON (after a change to the report format). */
const file = process.argv[2] ?? join(ROOT, 'bench/results', `${new Date().toISOString().slice(0, 10)}.json`);
const results = JSON.parse(await readFile(file, 'utf8'));
await writeFile(join(ROOT, 'bench/results/latest.md'), renderTable(results));
await writeFile(join(ROOT, 'bench/results/latest.svg'), renderChart(results));
