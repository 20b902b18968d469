import { setImmediate as yieldToEventLoop } from 'node:timers/promises';

/**
 * Items handled between two yields to the event loop: CPU-bound loops over a request's
 * items (opening an export's values, preparing an import's entries) let other requests'
 * callbacks run this often.
 */
export const YIELD_EVERY = 100;

/** Calls `each` on every item, yielding to the event loop between chunks of `chunk` items. */
export async function inChunks<T>(items: readonly T[], each: (item: T) => void, chunk = YIELD_EVERY) {
  for (let i = 0; i < items.length; i++) {
    if (i > 0 && i % chunk === 0) await yieldToEventLoop();
    each(items[i]!);
  }
}
