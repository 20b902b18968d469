/**
 * At most `limit` things in flight per caller (bulk requests, open event streams), counted in
 * this process. `take` returns the release (idempotent: a second call does nothing), or
 * undefined when the caller already holds `limit`. Callers build their own refusal.
 */
export function perCallerSlots(limit: number) {
  const held = new Map<string, number>();
  return {
    /** How many the caller holds now. */
    heldBy: (who: string): number => held.get(who) ?? 0,

    take(who: string): (() => void) | undefined {
      const n = held.get(who) ?? 0;
      if (n >= limit) return undefined;
      held.set(who, n + 1);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        const left = (held.get(who) ?? 1) - 1;
        if (left === 0) held.delete(who);
        else held.set(who, left);
      };
    },
  };
}
