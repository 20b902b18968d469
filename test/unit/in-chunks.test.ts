import { expect, it } from 'vitest';
import { inChunks, YIELD_EVERY } from '../../src/in-chunks.js';

/**
 * Issue 21, fair sharing of the event loop: an export or render opens its values in chunks
 * and yields between them, so other requests (and on PGlite their statements) run in
 * between. Seen without timing: a callback queued with setImmediate at the first item runs
 * after the first chunk, not after the last item.
 */
it('yields to the event loop between chunks, not before the first', async () => {
  const items = Array.from({ length: YIELD_EVERY * 2 + 50 }, (_, i) => i);
  let done = 0;
  let doneWhenOtherWorkRan = -1;
  await inChunks(items, (i) => {
    if (i === 0)
      setImmediate(() => {
        doneWhenOtherWorkRan = done;
      });
    done++;
  });
  expect(done).toBe(items.length);
  expect(doneWhenOtherWorkRan).toBe(YIELD_EVERY);
});

it('does not yield for a list within one chunk', async () => {
  let done = 0;
  let doneWhenOtherWorkRan = -1;
  const finished = inChunks(
    Array.from({ length: YIELD_EVERY }, (_, i) => i),
    (i) => {
      if (i === 0)
        setImmediate(() => {
          doneWhenOtherWorkRan = done;
        });
      done++;
    },
  );
  await finished;
  expect(doneWhenOtherWorkRan).toBe(-1);
  expect(done).toBe(YIELD_EVERY);
});
