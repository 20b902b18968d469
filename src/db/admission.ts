/**
 * The two classes of work on the embedded database: requests (foreground) and the jobs that
 * run beside them, such as webhook delivery (background).
 */
export type WorkClass = 'foreground' | 'background';

/**
 * Background admissions in a row while foreground work waits, at most: enough for the
 * webhook dispatcher's few concurrent statements (a fan-out beside a claim, a batch's
 * record) to pass the queue of writers together, few enough that a queued request waits
 * for at most this many of them.
 */
export const BACKGROUND_STREAK = 4;

/**
 * Admits one statement or transaction at a time to PGlite, background work before queued
 * foreground work. PGlite runs one at a time anyway, in arrival order: under a stream of
 * writes every statement of the webhook dispatcher (several per round) waited behind every
 * queued writer's statement or transaction, and delivery fell behind the writes. Here a
 * dispatcher statement waits for the one running and the background ones ahead of it; a
 * request is passed over at most BACKGROUND_STREAK times in a row, so requests are never
 * starved. PostgreSQL needs none of this: its pool gives the dispatcher a connection of its
 * own.
 *
 * Hand-written: PGlite's own queue (a mutex inside it) has no priorities, and the rule is the
 * few lines of `next`; a queue package would still need them and be one more dependency.
 */
export class AdmissionGate {
  private running = false;
  /** Background admissions since foreground work last went, counted while foreground waited. */
  private passedOver = 0;
  private readonly waiting: Record<WorkClass, (() => void)[]> = { foreground: [], background: [] };

  /** Runs fn once admitted; the next is admitted when it settles. */
  async run<T>(cls: WorkClass, fn: () => Promise<T>): Promise<T> {
    if (this.running) await new Promise<void>((admit) => this.waiting[cls].push(admit));
    else this.running = true;
    try {
      return await fn();
    } finally {
      this.next();
    }
  }

  /** Whether one is running, and how many wait for their turn. */
  get load(): { running: boolean; waiting: number } {
    return {
      running: this.running,
      waiting: this.waiting.foreground.length + this.waiting.background.length,
    };
  }

  /** Hands the slot to the next one waiting (it stays taken), or frees it. */
  private next() {
    const fg = this.waiting.foreground;
    const bg = this.waiting.background;
    let admit: (() => void) | undefined;
    if (bg.length > 0 && (fg.length === 0 || this.passedOver < BACKGROUND_STREAK)) {
      if (fg.length > 0) this.passedOver++;
      admit = bg.shift();
    } else {
      this.passedOver = 0;
      admit = fg.shift();
    }
    if (admit) admit();
    else this.running = false;
  }
}
