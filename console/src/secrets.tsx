import { useState } from 'preact/hooks';
import { isSecretKey, KEY_FORMAT_MESSAGE, KEY_MAX_LENGTH } from '../../src/secret-names';
import { ApiError, q, request, type SecretMeta } from './api';
import { SecretDetail } from './secret-detail';
import {
  ErrorBox,
  Loading,
  LockBadge,
  localToIso,
  Notice,
  Pager,
  SecretValueField,
  usePage,
  When,
} from './ui';

const PAGE_SIZE = 25;

interface ListState {
  secrets: SecretMeta[];
  nextCursor: string | null;
}

/** The list (prefix search, active filter, keyset paging), create form and one opened secret. */
export function SecretsPage(props: { opened: string | null; onOpen: (key: string | null) => void }) {
  const [filters, setFilters] = useState({ prefix: '', active: '' });
  // cursors[i] is the cursor of page i (undefined for the first).
  const [cursors, setCursors] = useState<(string | undefined)[]>([undefined]);
  const [notice, setNotice] = useState<string | null>(null);
  const [creating, setCreating] = useState(false);
  // The opened secret is in the URL (/console/secrets/KEY): back, reload and links keep it.
  const { opened, onOpen: setOpened } = props;
  const cursor = cursors[cursors.length - 1];

  const { data, loading, error, load } = usePage<ListState>(
    `/api/secrets${q({ prefix: filters.prefix, active: filters.active, limit: String(PAGE_SIZE), cursor })}`,
    filters,
  );

  const search = (e: Event) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget as HTMLFormElement);
    setCursors([undefined]);
    setFilters({
      prefix: String(f.get('prefix') ?? '')
        .trim()
        .toUpperCase(),
      active: String(f.get('active') ?? ''),
    });
  };

  return (
    <>
      <h1>Secrets</h1>
      {notice ? <Notice>{notice}</Notice> : null}
      <div class="toolbar">
        <form class="filters" onSubmit={search} aria-label="Search secrets">
          <label>
            Key prefix
            <input name="prefix" defaultValue={filters.prefix} placeholder="STRIPE_" autocomplete="off" />
          </label>
          <label>
            Status
            <select name="active" defaultValue={filters.active}>
              <option value="">All</option>
              <option value="true">Active</option>
              <option value="false">Deleted (inactive)</option>
            </select>
          </label>
          <button type="submit">Search</button>
        </form>
        <button type="button" aria-expanded={creating} onClick={() => setCreating(!creating)}>
          {creating ? 'Close new secret form' : 'New secret'}
        </button>
      </div>
      {creating ? (
        <CreateSecret
          onCreated={(message, key) => {
            setNotice(message);
            setCreating(false);
            setOpened(key);
            void load();
          }}
        />
      ) : null}
      {opened ? (
        <SecretDetail
          secretKey={opened}
          onChanged={(message, closing) => {
            // One success message, where the person is looking: the open panel shows its own.
            setNotice(closing ? message : null);
            void load();
          }}
          onClose={() => setOpened(null)}
        />
      ) : null}
      <ErrorBox error={error} />
      {loading ? <Loading what="secrets" /> : null}
      {!loading && data && data.secrets.length === 0 ? (
        <p class="empty">
          {filters.prefix || filters.active
            ? 'No secrets match these filters.'
            : 'No secrets yet: create one.'}
        </p>
      ) : null}
      {data && data.secrets.length > 0 ? (
        <div class="table-wrap">
          <table class="secrets">
            <caption class="sr-only">Secrets, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Key</th>
                <th scope="col">Description</th>
                <th scope="col">Status</th>
                <th scope="col">Reserved</th>
                <th scope="col">Expires</th>
                <th scope="col">Last used</th>
                <th scope="col">Version</th>
              </tr>
            </thead>
            <tbody>
              {data.secrets.map((s) => (
                <tr key={s.id}>
                  <th scope="row">
                    <button
                      type="button"
                      class="link"
                      aria-label={`Open ${s.key}`}
                      onClick={() => setOpened(s.key)}
                    >
                      {s.key}
                    </button>
                    {s.isWriteOnly ? <LockBadge /> : null}
                  </th>
                  <td>{s.description ?? ''}</td>
                  <td>{s.isActive ? 'Active' : 'Deleted'}</td>
                  <td>{s.isReserved ? 'Yes' : 'No'}</td>
                  <td>
                    <When iso={s.expiresAt} />
                  </td>
                  <td>
                    {s.lastUsedAt ? (
                      <>
                        <When iso={s.lastUsedAt} /> by {s.lastUsedBy ?? 'unknown'}
                      </>
                    ) : (
                      'Never'
                    )}
                  </td>
                  <td>{s.version}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      <Pager label="Secrets pages" cursors={cursors} setCursors={setCursors} nextCursor={data?.nextCursor} />
    </>
  );
}

function CreateSecret({ onCreated }: { onCreated: (message: string, key: string) => void }) {
  const [generate, setGenerate] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const f = new FormData(form);
    const key = String(f.get('key') ?? '').trim();
    // The API's own rule (src/secret-names.ts), checked here so a bad name is never sent.
    if (!isSecretKey(key)) {
      setError(
        new ApiError(400, {
          message: KEY_FORMAT_MESSAGE,
          nextActions: `At most ${KEY_MAX_LENGTH} characters`,
        }),
      );
      return;
    }
    const body: Record<string, unknown> = { key };
    if (generate) {
      body.generate = { length: Number(f.get('length')), alphabet: String(f.get('alphabet')) };
    } else body.value = String(f.get('value') ?? '');
    const description = String(f.get('description') ?? '');
    if (description) body.description = description;
    const expiresAt = localToIso(String(f.get('expiresAt') ?? ''));
    if (expiresAt) body.expiresAt = expiresAt;
    if (f.get('isReserved') === 'on') body.isReserved = true;
    if (f.get('isWriteOnly') === 'on') body.isWriteOnly = true;
    setBusy(true);
    setError(null);
    try {
      const { body: res } = await request<{ message: string }>('POST', '/api/secrets', { body });
      form.reset();
      setGenerate(false);
      onCreated(res.message, key);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="panel" aria-labelledby="create-h">
      <h2 id="create-h">New secret</h2>
      <ErrorBox error={error} />
      <form onSubmit={submit} aria-busy={busy}>
        <label>
          Key
          <input
            name="key"
            required
            maxLength={KEY_MAX_LENGTH}
            autocomplete="off"
            spellcheck={false}
            placeholder="STRIPE_API_KEY"
            aria-describedby="key-hint"
          />
        </label>
        <p id="key-hint" class="hint">
          Uppercase letters, digits and underscores.
        </p>
        <label class="check">
          <input type="checkbox" checked={generate} onChange={(e) => setGenerate(e.currentTarget.checked)} />
          Generate a random value on the server
        </label>
        {generate ? (
          <div class="row">
            <label>
              Length
              <input name="length" type="number" min={16} max={4096} defaultValue="32" required />
            </label>
            <label>
              Alphabet
              <select name="alphabet" defaultValue="base64url">
                <option value="base64url">base64url</option>
                <option value="hex">hex</option>
                <option value="alnum">letters and digits</option>
                <option value="ascii">printable ASCII</option>
              </select>
            </label>
          </div>
        ) : (
          <SecretValueField name="value" label="Value" required />
        )}
        <label>
          Description
          <input name="description" maxLength={1024} />
        </label>
        <label>
          Expires at (your local time, optional)
          <input name="expiresAt" type="datetime-local" />
        </label>
        <label class="check">
          <input name="isReserved" type="checkbox" />
          Reserved (protected from deletion)
        </label>
        <label class="check">
          <input name="isWriteOnly" type="checkbox" />
          Write-only (the value can never be read back, not even by admins; permanent)
        </label>
        <button type="submit" disabled={busy}>
          Create secret
        </button>
      </form>
    </section>
  );
}
