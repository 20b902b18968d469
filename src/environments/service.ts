import type { AuditTrail } from '../audit/trail.js';
import type { Database } from '../db/database.js';
import { DEFAULT_ENVIRONMENT } from '../environment-names.js';
import { errors } from '../errors.js';
import { type Caller, inEnvironment } from '../identity/caller.js';
import { CursorCodec, type PageQuery } from '../pagination.js';
import type { Changes } from '../secrets/changes.js';
import type { EnvironmentRow, EnvironmentsRepository } from './repository.js';

export interface EnvironmentView {
  name: string;
  description: string | null;
  createdAt: string;
  updatedAt: string;
  /** Admins only: how many secrets it holds (an access key may not see them all). */
  secrets?: { active: number; inactive: number };
}

const toView = (r: EnvironmentRow): EnvironmentView => ({
  name: r.name,
  description: r.description,
  createdAt: r.created_at.toISOString(),
  updatedAt: r.updated_at.toISOString(),
});

const cursors = new CursorCodec({ tag: 'e1', positionOf: (r: { seq: string }) => r.seq });

export interface EnvironmentServiceDeps {
  db: Database;
  repo: EnvironmentsRepository;
  trail: AuditTrail;
  /** The door for changes to secrets: a deletion erases the environment's soft-deleted ones through it. */
  changes: Changes;
}

/** Rules and transactions for environments; each change and its audit row commit together. */
export class EnvironmentService {
  constructor(private readonly deps: EnvironmentServiceDeps) {}

  /** Whether it exists (the guard's 404 for /api/environments/:env/...). */
  async exists(name: string): Promise<boolean> {
    return name === DEFAULT_ENVIRONMENT || (await this.deps.repo.find(this.deps.db, name)) !== undefined;
  }

  /** The environments the caller covers, oldest first (default leads). */
  async list(query: PageQuery, caller: Caller) {
    const { page, nextCursor } = await cursors.page(query, (limit, afterSeq) =>
      this.deps.trail.lookup(caller, 'environment.list', null, () =>
        this.deps.repo.listPage(this.deps.db, { limit, afterSeq, names: caller.environments }),
      ),
    );
    return { environments: page.map(toView), nextCursor };
  }

  async get(name: string, caller: Caller): Promise<EnvironmentView> {
    const row = await this.deps.repo.find(this.deps.db, name);
    if (!row) throw errors.environmentNotFound(name);
    return caller.admin
      ? { ...toView(row), secrets: await this.deps.repo.counts(this.deps.db, name) }
      : toView(row);
  }

  async create(input: { name: string; description?: string | null | undefined }, caller: Caller) {
    const row = await this.deps.trail.change(
      inEnvironment(caller, input.name),
      'environment.create',
      null,
      async (tx) => {
        const r = await this.deps.repo.insert(tx, {
          name: input.name,
          description: input.description ?? null,
        });
        if (!r) {
          throw errors.conflict(
            `Environment already exists: ${input.name}`,
            'Choose another name, or change its description with PATCH /api/environments/{env}',
          );
        }
        return { result: r, version: null };
      },
    );
    return toView(row);
  }

  async update({ name, description }: { name: string; description: string | null }, caller: Caller) {
    const row = await this.deps.trail.change(caller, 'environment.update', null, async (tx) => {
      const r = await this.deps.repo.updateRow(tx, name, description);
      if (!r) throw errors.environmentNotFound(name);
      return { result: r, version: null };
    });
    return toView(row);
  }

  /**
   * Deletes an environment that holds no active secret; its soft-deleted secrets are erased
   * with it, each as a purge (one secret.purge row and secret.purged event each). `default`
   * is never deleted.
   */
  async remove(name: string, caller: Caller): Promise<{ erased: number }> {
    return this.deps.trail.change(caller, 'environment.delete', null, async (tx) => {
      if (name === DEFAULT_ENVIRONMENT) {
        throw errors.forbidden(
          'The default environment cannot be deleted: it is the /api/secrets API',
          'Delete its secrets one by one if you mean to empty it',
        );
      }
      // Excludes creates in it (they hold a KEY SHARE lock) until this commits.
      if (!(await this.deps.repo.find(tx, name, 'update'))) throw errors.environmentNotFound(name);
      const stillActive = async () => {
        const { active } = await this.deps.repo.counts(tx, name);
        return active === 0
          ? undefined
          : errors.conflict(
              `Environment ${name} still holds ${active} active secret${active === 1 ? '' : 's'}: it cannot be deleted`,
              `Delete them first (DELETE /api/environments/${name}/secrets/{key}, or promote what you need to another environment), then delete the environment`,
            );
      };
      const refused = await stillActive();
      if (refused) throw refused;
      // Its soft-deleted secrets go first, through the door (each one's secret.purge audit row
      // and secret.purged event name this environment), then the environment's row, only if
      // no secret is left: one restored meanwhile (see deleteIfEmpty) refuses the deletion,
      // and the erasure rolls back with it.
      const erased = await this.deps.changes.eraseInactive(tx, inEnvironment(caller, name));
      if (!(await this.deps.repo.deleteIfEmpty(tx, name))) {
        throw (
          (await stillActive()) ??
          errors.conflict(
            `Environment ${name} changed while it was being deleted: it cannot be deleted`,
            'Retry the request',
          )
        );
      }
      return { result: { erased: erased.length }, version: null };
    });
  }
}
