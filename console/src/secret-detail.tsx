import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, enc, findSecret, request, type SecretMeta, type VersionMeta } from './api';
import { CopyButton, TypedConfirm } from './forms';
import { DataTable } from './table';
import {
  ErrorBox,
  fmt,
  isoToLocal,
  LastUsed,
  Loading,
  LockBadge,
  localToIso,
  Notice,
  SecretValueField,
  When,
} from './ui';

const REVEAL_SECONDS = 20;

interface Snapshot {
  /** The secret's URL in its environment (/api/secrets/KEY or /api/environments/ENV/secrets/KEY). */
  path: string;
  meta: SecretMeta;
  versions: VersionMeta[];
  /** The ETag of the state shown: every change is sent with If-Match so it never overwrites a newer one. */
  etag: string | null;
}

async function loadSnapshot(base: string, key: string): Promise<Snapshot> {
  const path = `${base}/${enc(key)}`;
  const [meta, v] = await Promise.all([
    findSecret(base, key),
    request<{ versions: VersionMeta[] }>('GET', `${path}/versions`),
  ]);
  if (!meta) throw new ApiError(404, { message: `Secret not found: ${key}` });
  return { path, meta, versions: v.body.versions, etag: v.etag };
}

/** What another writer changed between two states of one secret, in words. */
function describeChanges(before: SecretMeta, now: SecretMeta): string[] {
  const out: string[] = [];
  const show = (v: unknown) => (v === null || v === '' ? '(none)' : String(v));
  if (before.version !== now.version) out.push(`value: version ${before.version} → ${now.version}`);
  if (before.description !== now.description)
    out.push(`description: ${show(before.description)} → ${show(now.description)}`);
  if (before.isActive !== now.isActive)
    out.push(`status: ${before.isActive ? 'active' : 'deleted'} → ${now.isActive ? 'active' : 'deleted'}`);
  if (before.isReserved !== now.isReserved)
    out.push(`reserved: ${before.isReserved ? 'yes' : 'no'} → ${now.isReserved ? 'yes' : 'no'}`);
  if (before.isWriteOnly !== now.isWriteOnly) out.push('made write-only');
  if (before.expiresAt !== now.expiresAt)
    out.push(`expires: ${fmt(before.expiresAt)} → ${fmt(now.expiresAt)}`);
  if (out.length === 0) out.push(`updated at ${fmt(now.updatedAt)}`);
  return out;
}

export function SecretDetail(props: {
  secretKey: string;
  /** The environment's secrets (api.ts secretsBase). */
  base: string;
  /** `closing`: the panel closes (purge), so the list must show the message; else the panel does. */
  onChanged: (message: string, closing: boolean) => void;
  onClose: () => void;
}) {
  const key = props.secretKey;
  const base = props.base;
  const [snap, setSnap] = useState<Snapshot | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [conflict, setConflict] = useState<string[] | null>(null);
  const [busy, setBusy] = useState(false);
  const heading = useRef<HTMLHeadingElement>(null);

  const reload = useCallback(async () => {
    setError(null);
    try {
      setSnap(await loadSnapshot(base, key));
    } catch (err) {
      setError(err);
    }
  }, [base, key]);

  useEffect(() => {
    setSnap(null);
    setConflict(null);
    setNotice(null);
    void reload();
    heading.current?.focus();
  }, [reload]);

  /** Runs one change; a 412 loads the current state and says what differs from the one shown. */
  const act = async (fn: (s: Snapshot) => Promise<{ message: string; gone?: boolean }>) => {
    if (!snap) return;
    setBusy(true);
    setError(null);
    setNotice(null);
    try {
      const { message, gone } = await fn(snap);
      setConflict(null);
      props.onChanged(message, gone === true);
      if (gone) {
        props.onClose();
        return;
      }
      setNotice(message);
      await reload();
    } catch (err) {
      setError(err);
      if (err instanceof ApiError && err.status === 412) {
        try {
          const now = await findSecret(base, key);
          setConflict(
            now ? describeChanges(snap.meta, now) : ['the secret no longer exists (it was purged)'],
          );
        } catch {
          setConflict(['(the current state could not be loaded)']);
        }
      }
    } finally {
      setBusy(false);
    }
  };

  const m = snap?.meta;
  return (
    <section class="panel detail" aria-labelledby="detail-h">
      <div class="panel-head">
        <h2 id="detail-h" tabIndex={-1} ref={heading}>
          {key}
          {snap?.meta.isWriteOnly ? <LockBadge /> : null}
        </h2>
        <button type="button" onClick={props.onClose}>
          Close
        </button>
      </div>
      {notice ? <Notice>{notice}</Notice> : null}
      <ErrorBox error={error} />
      {conflict ? (
        <div class="conflict" role="alert">
          <p>Someone else changed this secret since you opened it. What changed:</p>
          <ul>
            {conflict.map((c) => (
              <li key={c}>{c}</li>
            ))}
          </ul>
          <button
            type="button"
            onClick={() => {
              setConflict(null);
              setError(null);
              setNotice('Reloaded the current state. Apply your change again if it still makes sense.');
              void reload();
            }}
          >
            Reload current state
          </button>
        </div>
      ) : null}
      {!snap && !error ? <Loading what={key} /> : null}
      {m && snap ? (
        <>
          <dl class="meta">
            <dt>Status</dt>
            <dd>{m.isActive ? 'Active' : 'Deleted (inactive)'}</dd>
            <dt>Description</dt>
            <dd>{m.description ?? '—'}</dd>
            <dt>Reserved</dt>
            <dd>{m.isReserved ? 'Yes' : 'No'}</dd>
            <dt>Expires</dt>
            <dd>
              <When iso={m.expiresAt} />
            </dd>
            <dt>Last used</dt>
            <dd>
              <LastUsed meta={m} />
            </dd>
            <dt>Version</dt>
            <dd>{m.version}</dd>
            <dt>Created</dt>
            <dd>
              <When iso={m.createdAt} />
            </dd>
            <dt>Updated</dt>
            <dd>
              <When iso={m.updatedAt} />
            </dd>
          </dl>
          {/* Reveal is keyed by version: a new value (save, rollback, someone else's change)
              drops the revealed one, which Copy value would otherwise still copy. */}
          {m.isWriteOnly ? (
            <SetNewValue snap={snap} busy={busy} act={act} />
          ) : m.isActive ? (
            <Reveal key={m.version} secretKey={key} path={snap.path} />
          ) : null}
          <EditSecret key={snap.etag ?? ''} snap={snap} busy={busy} act={act} />
          <Lifecycle snap={snap} busy={busy} act={act} />
          <Versions snap={snap} busy={busy} act={act} />
        </>
      ) : null}
    </section>
  );
}

type Act = (fn: (s: Snapshot) => Promise<{ message: string; gone?: boolean }>) => Promise<void>;

/** One change sent with the shown state's ETag (If-Match); the API's message is what act shows. */
const send = (act: Act, method: string, path: string, body?: unknown) =>
  act(async (s) => (await request<{ message: string }>(method, path, { body, ifMatch: s.etag })).body);

/**
 * A write-only secret's value panel: no reveal and no copy (the server refuses both to
 * everyone); the one thing a person can do with the value is replace it.
 */
function SetNewValue({ snap, busy, act }: { snap: Snapshot; busy: boolean; act: Act }) {
  const submit = (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const value = String(new FormData(form).get('value') ?? '');
    if (!value) return;
    void act(async (s) => {
      const { body } = await request<{ message: string }>('PUT', snap.path, {
        body: { value },
        ifMatch: s.etag,
      });
      form.reset();
      return body;
    });
  };
  return (
    <div class="reveal">
      <h3>Value</h3>
      <p class="hint">
        Write-only: the value can never be read back, by anyone. Workloads receive it through{' '}
        <code>secrets run</code> or export with an access key holding <code>secrets:inject</code>. To know the
        value, set a new one.
      </p>
      <form onSubmit={submit} aria-busy={busy}>
        <SecretValueField name="value" label="New value" required />
        <button type="submit" disabled={busy}>
          Set a new value
        </button>
      </form>
    </div>
  );
}

/** Reveals the value on request, hides it after REVEAL_SECONDS, and drops it when hidden. */
function Reveal({ secretKey, path }: { secretKey: string; path: string }) {
  const [value, setValue] = useState<string | null>(null);
  const [left, setLeft] = useState(0);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    if (value === null) return;
    if (left <= 0) {
      setValue(null);
      return;
    }
    const t = setTimeout(() => setLeft(left - 1), 1000);
    return () => clearTimeout(t);
  }, [value, left]);

  // Leaving the page (or another secret) drops the value too.
  useEffect(() => () => setValue(null), []);

  const reveal = async () => {
    setError(null);
    try {
      const { body } = await request<{ value: string }>('GET', path);
      setValue(body.value);
      setLeft(REVEAL_SECONDS);
    } catch (err) {
      setError(err);
    }
  };

  return (
    <div class="reveal">
      <h3>Value</h3>
      <ErrorBox error={error} />
      {value === null ? (
        <button type="button" onClick={reveal}>
          Reveal value
        </button>
      ) : (
        <>
          <output class="secret-value" aria-label={`Value of ${secretKey}`}>
            {value}
          </output>
          <p class="hint" aria-live="off">
            Hides in {left} s.
          </p>
          <div class="row">
            <CopyButton text={value} label="Copy value" />
            <button type="button" onClick={() => setValue(null)}>
              Hide value
            </button>
          </div>
        </>
      )}
    </div>
  );
}

function EditSecret({ snap, busy, act }: { snap: Snapshot; busy: boolean; act: Act }) {
  const m = snap.meta;
  const [local, setLocal] = useState<string | null>(null);

  const submit = (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const f = new FormData(form);
    const body: Record<string, unknown> = {};
    const value = String(f.get('value') ?? '');
    if (value) body.value = value;
    const description = String(f.get('description') ?? '');
    if (description !== (m.description ?? '')) body.description = description === '' ? null : description;
    const expiresAt = localToIso(String(f.get('expiresAt') ?? ''));
    if (isoToLocal(expiresAt) !== isoToLocal(m.expiresAt)) body.expiresAt = expiresAt;
    const reserved = f.get('isReserved') === 'on';
    if (reserved !== m.isReserved) body.isReserved = reserved;
    if (!m.isWriteOnly && f.get('isWriteOnly') === 'on') body.isWriteOnly = true;
    if (Object.keys(body).length === 0) {
      setLocal('Nothing to save: change a field first.');
      return;
    }
    setLocal(null);
    void act(async (s) => {
      const { body: res } = await request<{ message: string }>('PUT', snap.path, {
        body,
        ifMatch: s.etag,
      });
      form.reset();
      return res;
    });
  };

  return (
    <details class="edit">
      <summary>Edit value or details</summary>
      <form onSubmit={submit} aria-busy={busy}>
        {local ? <Notice>{local}</Notice> : null}
        <SecretValueField name="value" label="New value (leave empty to keep the current one)" />
        <label>
          Description
          <input name="description" defaultValue={m.description ?? ''} maxLength={1024} />
        </label>
        <label>
          Expires at (your local time; empty for never)
          <input name="expiresAt" type="datetime-local" defaultValue={isoToLocal(m.expiresAt)} />
        </label>
        <label class="check">
          <input name="isReserved" type="checkbox" defaultChecked={m.isReserved} />
          Reserved (protected from deletion)
        </label>
        {m.isWriteOnly ? null : (
          <label class="check">
            <input name="isWriteOnly" type="checkbox" />
            Make write-only (admin; permanent: nobody can read the value back afterwards)
          </label>
        )}
        <button type="submit" disabled={busy}>
          Save changes
        </button>
      </form>
    </details>
  );
}

function Lifecycle({ snap, busy, act }: { snap: Snapshot; busy: boolean; act: Act }) {
  const m = snap.meta;
  const path = snap.path;
  if (m.isActive) {
    return (
      <div class="lifecycle">
        <h3>Delete</h3>
        <p class="hint">Deleting makes the secret unreadable; you can restore it later.</p>
        <button type="button" class="danger" disabled={busy} onClick={() => send(act, 'DELETE', path)}>
          Delete secret
        </button>
      </div>
    );
  }
  return (
    <div class="lifecycle">
      <h3>Restore or purge</h3>
      <button type="button" disabled={busy} onClick={() => send(act, 'POST', `${path}/restore`)}>
        Restore secret
      </button>
      <TypedConfirm
        word={m.key}
        label={`Type ${m.key} to erase it and all its versions permanently`}
        action="Purge permanently"
        busy={busy}
        onConfirm={() =>
          act(async (s) => {
            const res = await request<{ message: string }>('DELETE', `${path}?purge=true`, {
              ifMatch: s.etag,
            });
            return { message: res.body.message, gone: true };
          })
        }
      />
    </div>
  );
}

function Versions({ snap, busy, act }: { snap: Snapshot; busy: boolean; act: Act }) {
  return (
    <div class="versions">
      <h3>Versions</h3>
      {snap.versions.length === 0 ? <p class="empty">No versions kept.</p> : null}
      <DataTable
        caption={`Versions of ${snap.meta.key}, newest first`}
        rows={snap.versions}
        rowKey={(v) => v.version}
        columns={[
          { label: 'Version', cell: (v) => v.version },
          { label: 'Created', cell: (v) => <When iso={v.createdAt} /> },
          { label: 'By', cell: (v) => v.createdBy ?? '—' },
          { label: 'Key id', cell: (v) => v.kid },
          {
            label: 'Action',
            cell: (v) =>
              v.current ? (
                'Current'
              ) : (
                <button
                  type="button"
                  disabled={busy}
                  onClick={() => send(act, 'POST', `${snap.path}/rollback`, { version: v.version })}
                >
                  Roll back to version {v.version}
                </button>
              ),
          },
        ]}
      />
    </div>
  );
}
