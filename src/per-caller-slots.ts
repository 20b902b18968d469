/**
 * At most `limit` things in flight per caller (bulk requests, open event streams), counted in
 * this process. `acquire` returns the release (idempotent: a second call does nothing), or
 * undefined when the caller already holds `limit`. Callers build their own refusal.
 */
export class PerCallerSlots {
  private readonly held = new Map<string, number>();

  constructor(private readonly limit: number) {}

  /** How many the caller holds now. */
  heldBy(who: string): number {
    return this.held.get(who) ?? 0;
  }

  acquire(who: string): (() => void) | undefined {
    const n = this.held.get(who) ?? 0;
    if (n >= this.limit) return undefined;
    this.held.set(who, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.held.get(who) ?? 1) - 1;
      if (left === 0) this.held.delete(who);
      else this.held.set(who, left);
    };
  }
}
