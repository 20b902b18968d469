import { describe, expect, it } from 'vitest';
import { memoryFences, parseLsn } from '../../src/db/write-fences.js';

describe('read-your-writes fences', () => {
  it('parses pg_lsn text into a 64-bit position, refusing anything else', () => {
    expect(parseLsn('0/0')).toBe(0n);
    expect(parseLsn('16/B374D848')).toBe((0x16n << 32n) | 0xb374d848n);
    expect(parseLsn('FFFFFFFF/FFFFFFFF')).toBe(2n ** 64n - 1n);
    expect(parseLsn('1/2') > parseLsn('0/FFFFFFFF')).toBe(true);
    for (const bad of ['', '1', '1/', '/1', '1/2/3', 'G/1', '123456789/1'])
      expect(() => parseLsn(bad), bad).toThrow(/not a WAL position/);
  });

  it('in memory: a fence only rises, is per caller, and lapses after its time to live', async () => {
    let now = 1000;
    const f = memoryFences(500, () => now);
    expect(await f.get('admin:a')).toBeUndefined();
    await f.raise('admin:a', 10n);
    await f.raise('admin:a', 7n); // an older write finishing later does not lower it
    expect(await f.get('admin:a')).toBe(10n);
    expect(await f.get('admin:b')).toBeUndefined();
    now += 499;
    expect(await f.get('admin:a')).toBe(10n);
    await f.raise('admin:a', 12n); // refreshes the time to live
    now += 499;
    expect(await f.get('admin:a')).toBe(12n);
    now += 1;
    expect(await f.get('admin:a')).toBeUndefined();
    await f.raise('admin:c', 1n);
    now += 500;
    f.sweep();
    expect(f.size()).toBe(0);
  });
});
