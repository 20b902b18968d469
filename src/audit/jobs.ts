import type { Logger } from 'pino';
import type { AuditMaintenance } from './maintenance.js';
import type { AuditSealer } from './sealer.js';

/**
 * The audit trail's background work, on timers: sealing the chain and keeping partitions
 * (ahead of time) and the retention archive. Several instances contend for advisory locks
 * (pg_try_advisory_xact_lock), so the losers skip a round. Framework-free: the app starts
 * the jobs when it is ready and stops them (awaiting a round in flight) when it closes.
 */

export interface AuditJobsDeps {
  sealer: Pick<AuditSealer, 'sealPending'>;
  maintenance: Pick<AuditMaintenance, 'run'>;
  /** 0 disables background sealing. */
  sealIntervalMs: number;
  /** 0 runs maintenance once, at start, and never again. */
  maintenanceIntervalMs: number;
  log: Logger;
}

/** A round run every `ms` (not overlapping itself is the round's own business: it takes a lock). */
class Periodic {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly ms: number,
    private readonly round: () => Promise<unknown>,
  ) {}

  /** Runs one round now and remembers it, so stop() waits for it too. */
  now() {
    this.running = this.round();
    return this.running;
  }

  start() {
    if (this.ms <= 0) return;
    this.timer = setInterval(() => {
      this.running = this.round();
    }, this.ms);
    this.timer.unref();
  }

  async stop() {
    clearInterval(this.timer);
    await this.running;
  }
}

/** The sealing and maintenance rounds on their timers, started and stopped with the app. */
export class AuditJobs {
  private readonly sealing: Periodic;
  private readonly maintenance: Periodic;

  constructor(private readonly deps: AuditJobsDeps) {
    this.sealing = new Periodic(deps.sealIntervalMs, () => this.sealRound());
    this.maintenance = new Periodic(deps.maintenanceIntervalMs, () => this.maintenanceRound());
  }

  /** Starts sealing, then runs one maintenance round (partitions exist before the app serves). */
  async start() {
    this.sealing.start();
    await this.maintenance.now();
    this.maintenance.start();
  }

  async stop() {
    await this.sealing.stop();
    await this.maintenance.stop();
  }

  private sealRound() {
    return this.deps.sealer.sealPending(false).catch((err: { code?: unknown }) => {
      this.deps.log.warn({ errCode: err.code }, 'audit sealing failed; retrying on the next round');
    });
  }

  private maintenanceRound() {
    return this.deps.maintenance.run().catch((err: { code?: unknown; message?: unknown }) => {
      this.deps.log.error(
        { errCode: err.code, err: String(err.message) },
        'audit maintenance failed; retrying on the next round',
      );
    });
  }
}
