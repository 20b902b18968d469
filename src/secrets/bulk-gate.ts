import type { FastifyRequest } from 'fastify';
import pLimit from 'p-limit';
import type { AuditAction } from '../audit/entry.js';
import type { AuditTrail } from '../audit/trail.js';
import { errors } from '../errors.js';
import { PerCallerSlots } from '../per-caller-slots.js';

/**
 * Fair sharing for the bulk routes (batch import, export, render): each can hold a database
 * connection for a long statement or many, so without a bound a few callers' bulk requests
 * take the whole pool and single-key reads wait for a connection until they time out (503).
 *
 * - Per caller: at most `perCaller` bulk requests in flight; the next answers 429 with
 *   Retry-After (audited like every refusal), so one caller cannot queue up unbounded work.
 * - Per process: at most `slots` bulk requests use the database at once (a share of the
 *   pool, BULK_POOL_SHARE); the rest wait here, holding no connection, so the remainder
 *   of the pool is always there for single-key work.
 *
 * Counters are per process: the limit is about this process's pool and event loop.
 */
export interface BulkGateDeps {
  perCaller: number;
  slots: number;
  trail: AuditTrail;
  /**
   * A per-caller rate in units of work (batch-import entries, BATCH_ENTRY_RATE_LIMIT), for
   * the routes that name their units: `peek` refuses a caller with none left before its body
   * is read, `charge` counts a request's units once its body is validated (429 when they do
   * not fit).
   */
  entries?: {
    peek: (req: FastifyRequest) => Promise<void>;
    charge: (req: FastifyRequest, n: number) => Promise<void>;
  };
}

/** Retry-After for a caller over its bulk limit: a bulk request takes about a second. */
const BULK_RETRY_AFTER_SECONDS = 1;

export class BulkGate {
  private readonly inFlight: PerCallerSlots;
  private readonly limit: ReturnType<typeof pLimit>;
  /** Requests admitted before their body was read (admit), until they finish. */
  private readonly admitted = new WeakMap<FastifyRequest, () => void>();

  constructor(private readonly deps: BulkGateDeps) {
    this.inFlight = new PerCallerSlots(deps.perCaller);
    this.limit = pLimit(deps.slots);
  }

  /**
   * Route hooks that admit a bulk request before its body is read (preParsing, after the
   * guard identified the caller): a caller over its limit is refused without its body
   * being parsed or validated, so a flood of refused 1000-entry bodies costs little. The
   * admission is released when the work ends (run) or the request does (onResponse,
   * onRequestAbort: a body the schema refused never reaches run).
   */
  hooks(action: AuditAction, opts: { rated?: boolean } = {}) {
    const release = async (req: FastifyRequest) => {
      this.admitted.get(req)?.();
      this.admitted.delete(req);
    };
    const { entries } = this.deps;
    return {
      preParsing: async (req: FastifyRequest) => {
        if (opts.rated && entries) await this.refusing(req, action, () => entries.peek(req));
        this.admitted.set(req, await this.reserve(req, action));
      },
      onResponse: release,
      onRequestAbort: release,
    };
  }

  /**
   * Runs `work` for the request's caller within both bounds; 429 (audited) over the caller's.
   * `units`: the request's size in the rated unit (entries), charged before the work.
   */
  async run<T>(req: FastifyRequest, action: AuditAction, work: () => Promise<T>, units?: number): Promise<T> {
    const release = this.admitted.get(req) ?? (await this.reserve(req, action));
    this.admitted.delete(req);
    const { entries } = this.deps;
    try {
      if (units !== undefined && entries) await this.refusing(req, action, () => entries.charge(req, units));
      return await this.limit(work);
    } finally {
      release();
    }
  }

  /** Bulk requests using the database now, and waiting for a share of the pool. */
  stats() {
    return { slots: this.deps.slots, active: this.limit.activeCount, waiting: this.limit.pendingCount };
  }

  /** The caller's bulk requests in flight (admitted, running or waiting for a share). */
  inFlightOf(actor: string): number {
    return this.inFlight.heldBy(actor);
  }

  /** Runs a limit's check; its refusal leaves the request's one audit row. */
  private async refusing(req: FastifyRequest, action: AuditAction, check: () => Promise<void>) {
    try {
      await check();
    } catch (err) {
      await this.deps.trail.refused(req.caller, action, [null], err);
      throw err;
    }
  }

  /** Counts one more bulk request for the caller, or refuses it (429, audited). */
  private async reserve(req: FastifyRequest, action: AuditAction): Promise<() => void> {
    const release = this.inFlight.acquire(req.caller.actor);
    if (release) return release;
    const err = errors.rateLimited(
      BULK_RETRY_AFTER_SECONDS,
      `Too many bulk requests in flight: at most ${this.deps.perCaller} per caller (BULK_IN_FLIGHT_PER_CALLER)`,
    );
    await this.deps.trail.refused(req.caller, action, [null], err);
    throw err;
  }
}
