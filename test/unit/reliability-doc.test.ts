import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DOCUMENT, readResults, renderFigures, updateDocument } from '../../scripts/reliability-doc.js';

/**
 * RELIABILITY.md's figures are generated from the stored results (test/reliability/results):
 * the committed document must be exactly what `npm run reliability:doc` writes from them, so
 * a number typed by hand, or results stored without regenerating, fails here.
 */
describe('RELIABILITY.md figures', () => {
  const results = readResults();

  it('stores results for every reliability suite', () => {
    const suites = new Set(results.map((r) => r.suite));
    for (const s of [
      'fuzz',
      'token-attacks',
      'crypto-integrity',
      'hygiene',
      'faults',
      'instances',
      'replicas',
    ])
      expect(suites, s).toContain(s);
    for (const r of results) expect(r.measured, r.suite).toMatch(/^\d{4}-\d{2}-\d{2}$/);
  });

  it('match the stored results exactly', () => {
    const doc = readFileSync(DOCUMENT, 'utf8');
    expect(updateDocument(doc, results), 'run npm run reliability:doc').toBe(doc);
  });

  it('change when a stored figure changes (the check can fail)', () => {
    const doc = readFileSync(DOCUMENT, 'utf8');
    const bumped = results.map((r, i) => (i === 0 ? { ...r, figures: { ...r.figures, extra: 1 } } : r));
    expect(updateDocument(doc, bumped)).not.toBe(doc);
    expect(renderFigures(bumped)).toContain('extra 1');
  });
});
