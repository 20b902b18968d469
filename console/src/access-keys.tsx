import { useState } from 'preact/hooks';
import { type AccessKey, enc, q, request } from './api';
import { copyText, ErrorBox, Loading, localToIso, Notice, Pager, usePage, When } from './ui';

export const SCOPES = [
  'secrets:read',
  'secrets:list',
  'secrets:write',
  'secrets:delete',
  'secrets:inject',
] as const;

/** The scope checkboxes (secrets:read checked), shared with the trust-policy form's grant. */
/** The scope checkboxes; `checked` preselects (an edit form), else secrets:read alone. */
export function ScopeChecks({ legend, checked }: { legend: string; checked?: readonly string[] }) {
  return (
    <fieldset>
      <legend>{legend}</legend>
      {SCOPES.map((s) => (
        <label class="check" key={s}>
          <input
            type="checkbox"
            name={s}
            defaultChecked={checked ? checked.includes(s) : s === 'secrets:read'}
          />
          {s}
        </label>
      ))}
    </fieldset>
  );
}

/** Access keys: create (token shown once), list with last use, revoke. */
export function AccessKeysPage() {
  const [cursors, setCursors] = useState<(string | undefined)[]>([undefined]);
  const [notice, setNotice] = useState<string | null>(null);
  const [created, setCreated] = useState<(AccessKey & { token: string }) | null>(null);
  const cursor = cursors[cursors.length - 1];

  const { data, loading, error, setError, load } = usePage<{
    accessKeys: AccessKey[];
    nextCursor: string | null;
  }>(`/api/access-keys${q({ limit: '50', cursor })}`, undefined, { keepOnError: true });

  const revoke = async (k: AccessKey) => {
    setError(null);
    try {
      await request('DELETE', `/api/access-keys/${enc(k.id)}`);
      setNotice(`Access key ${k.name} has been revoked.`);
      await load();
    } catch (err) {
      setError(err);
    }
  };

  return (
    <>
      <h1>Access keys</h1>
      <p class="hint">
        Access keys (ik_…) let scripts and services use the API with limited scopes, optionally only for some
        secret keys.
      </p>
      {notice ? <Notice>{notice}</Notice> : null}
      {created ? <CreatedToken created={created} onDone={() => setCreated(null)} /> : null}
      <CreateAccessKey
        onCreated={(k) => {
          setNotice(null);
          setCreated(k);
          void load();
        }}
      />
      <h2>Keys</h2>
      <ErrorBox error={error} />
      {loading ? <Loading what="access keys" /> : null}
      {!loading && data?.accessKeys.length === 0 ? <p class="empty">No access keys yet.</p> : null}
      {data && data.accessKeys.length > 0 ? (
        <div class="table-wrap">
          <table>
            <caption class="sr-only">Access keys</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Token starts with</th>
                <th scope="col">Scopes</th>
                <th scope="col">Secret keys</th>
                <th scope="col">Created</th>
                <th scope="col">Expires</th>
                <th scope="col">Last used</th>
                <th scope="col">Status</th>
                <th scope="col">Action</th>
              </tr>
            </thead>
            <tbody>
              {data.accessKeys.map((k) => (
                <tr key={k.id}>
                  <th scope="row">{k.name}</th>
                  <td>
                    <code>{k.tokenPrefix}</code>
                  </td>
                  <td>{k.scopes.join(', ')}</td>
                  <td>{k.keys ? k.keys.join(', ') : 'All'}</td>
                  <td>
                    <When iso={k.createdAt} /> by {k.createdBy}
                  </td>
                  <td>
                    <When iso={k.expiresAt} />
                  </td>
                  <td>{k.lastUsedAt ? <When iso={k.lastUsedAt} /> : 'Never'}</td>
                  <td>{k.status}</td>
                  <td>
                    {k.status === 'active' ? (
                      <button type="button" class="danger" onClick={() => revoke(k)}>
                        Revoke {k.name}
                      </button>
                    ) : (
                      '—'
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      <Pager
        label="Access key pages"
        cursors={cursors}
        setCursors={setCursors}
        nextCursor={data?.nextCursor}
      />
    </>
  );
}

/** The new token, shown once; dismissing it drops it from memory. */
function CreatedToken({ created, onDone }: { created: AccessKey & { token: string }; onDone: () => void }) {
  const [copied, setCopied] = useState<string | null>(null);
  return (
    <section class="panel token-once" aria-labelledby="token-h" role="alert">
      <h2 id="token-h">Access key {created.name} created</h2>
      <p class="warning">
        Copy this token now: it is shown only once and the service keeps only its hash. Anyone holding it can
        use the API with these scopes.
      </p>
      <output class="secret-value" aria-label="New access key token">
        {created.token}
      </output>
      <div class="row">
        <button
          type="button"
          onClick={async () =>
            setCopied((await copyText(created.token)) ? 'Copied to the clipboard.' : 'Copy failed.')
          }
        >
          Copy token
        </button>
        <button type="button" onClick={onDone}>
          I have stored it, hide the token
        </button>
      </div>
      {copied ? <Notice>{copied}</Notice> : null}
    </section>
  );
}

function CreateAccessKey({ onCreated }: { onCreated: (k: AccessKey & { token: string }) => void }) {
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const f = new FormData(form);
    const keys = String(f.get('keys') ?? '')
      .split(/[\s,]+/)
      .filter(Boolean);
    const expiresAt = localToIso(String(f.get('expiresAt') ?? ''));
    const body: Record<string, unknown> = {
      name: String(f.get('name') ?? ''),
      scopes: SCOPES.filter((s) => f.get(s) === 'on'),
      ...(keys.length ? { keys } : {}),
      ...(expiresAt ? { expiresAt } : {}),
    };
    setBusy(true);
    setError(null);
    try {
      const { body: res } = await request<AccessKey & { token: string }>('POST', '/api/access-keys', {
        body,
      });
      form.reset();
      onCreated(res);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <details class="panel">
      <summary>New access key</summary>
      <ErrorBox error={error} />
      <form onSubmit={submit} aria-busy={busy}>
        <label>
          Name
          <input name="name" required maxLength={128} placeholder="ci-deploy" autocomplete="off" />
        </label>
        <ScopeChecks legend="Scopes" />
        <label>
          Secret keys (optional: names or PREFIX_* patterns, separated by commas)
          <input name="keys" placeholder="STRIPE_*, DATABASE_URL" autocomplete="off" />
        </label>
        <label>
          Expires at (your local time, optional)
          <input name="expiresAt" type="datetime-local" />
        </label>
        <button type="submit" disabled={busy}>
          Create access key
        </button>
      </form>
    </details>
  );
}
