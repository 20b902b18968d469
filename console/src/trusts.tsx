import { useState } from 'preact/hooks';
import { SCOPES, ScopeChecks } from './access-keys';
import { enc, request, type TrustPolicy } from './api';
import { ErrorBox, Loading, Notice, usePage, When } from './ui';

/**
 * Workload identity: the OIDC trust policies under which a CI job or a Kubernetes pod trades
 * its platform's ID token for a short-lived credential (POST /api/auth/token). List, create,
 * edit (the API's PUT replaces the policy: one form serves both), delete with a typed
 * confirmation. The form checks nothing the API checks (no required or type=url attributes
 * either): it sends what was typed and shows the API's own message, so the two can never
 * disagree. It only splits the lists and the name=value claim lines.
 */
export function TrustsPage() {
  const [notice, setNotice] = useState<string | null>(null);
  const [deleting, setDeleting] = useState<string | null>(null);
  const [editing, setEditing] = useState<TrustPolicy | null>(null);
  // Not paged by the API (trust policies are few): one GET.
  const { data, loading, error, setError, load } = usePage<{ trusts: TrustPolicy[] }>(
    '/api/auth/trusts',
    undefined,
    { keepOnError: true },
  );

  return (
    <>
      <h1>Workload identity</h1>
      <p class="hint">
        Trust policies let a CI job or a pod exchange the ID token its platform issues (GitHub Actions, GitLab
        CI, Kubernetes) for a short-lived credential, so it stores no secret of its own. A token must come
        from the issuer, carry one of the audiences and match the subject and every claim binding.
      </p>
      {notice ? <Notice>{notice}</Notice> : null}
      <details class="panel">
        <summary>New trust policy</summary>
        <TrustForm
          onSaved={(t) => {
            setNotice(`Trust policy ${t.name} has been created.`);
            void load();
          }}
        />
      </details>
      <h2>Trust policies</h2>
      <ErrorBox error={error} />
      {loading ? <Loading what="trust policies" /> : null}
      {!loading && data?.trusts.length === 0 ? <p class="empty">No trust policies yet.</p> : null}
      {editing ? (
        <section class="panel" aria-labelledby="edit-trust-h">
          <h3 id="edit-trust-h">Edit trust policy {editing.name}</h3>
          <p class="hint">
            Saving replaces the whole policy: a field left empty takes its default (no claim bindings, every
            secret key, 900 s). Credentials already issued keep the grant they were issued with until they
            expire.
          </p>
          <TrustForm
            // A fresh form (its default values) for each policy opened.
            key={`${editing.id}/${editing.updatedAt}`}
            trust={editing}
            onCancel={() => setEditing(null)}
            onSaved={(t) => {
              setEditing(null);
              setNotice(`Trust policy ${t.name} has been saved.`);
              void load();
            }}
          />
        </section>
      ) : null}
      {deleting ? (
        <DeleteTrust
          name={deleting}
          onCancel={() => setDeleting(null)}
          onDeleted={() => {
            setDeleting(null);
            setNotice(`Trust policy ${deleting} has been deleted.`);
            void load();
          }}
          onError={setError}
        />
      ) : null}
      {data && data.trusts.length > 0 ? (
        <div class="table-wrap">
          <table>
            <caption class="sr-only">Trust policies</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Issuer</th>
                <th scope="col">Audiences</th>
                <th scope="col">Subject</th>
                <th scope="col">Claims</th>
                <th scope="col">Scopes</th>
                <th scope="col">Secret keys</th>
                <th scope="col">Lifetime</th>
                <th scope="col">Created</th>
                <th scope="col">Action</th>
              </tr>
            </thead>
            <tbody>
              {data.trusts.map((t) => (
                <tr key={t.id}>
                  <th scope="row">{t.name}</th>
                  <td>
                    <code>{t.issuer}</code>
                  </td>
                  <td>{t.audiences.join(', ')}</td>
                  <td>
                    <code>{t.subject}</code>
                  </td>
                  <td>
                    {Object.keys(t.claims).length === 0
                      ? '—'
                      : Object.entries(t.claims).map(([k, v]) => (
                          <div key={k}>
                            <code>
                              {k}={v}
                            </code>
                          </div>
                        ))}
                  </td>
                  <td>{t.scopes.join(', ')}</td>
                  <td>{t.keys ? t.keys.join(', ') : 'All'}</td>
                  <td>{lifetime(t.ttlSeconds)}</td>
                  <td>
                    <When iso={t.createdAt} /> by {t.createdBy}
                  </td>
                  <td>
                    <div class="row">
                      <button
                        type="button"
                        onClick={() => {
                          setDeleting(null);
                          setEditing(t);
                        }}
                      >
                        Edit {t.name}
                      </button>
                      <button
                        type="button"
                        class="danger"
                        onClick={() => {
                          setEditing(null);
                          setDeleting(t.name);
                        }}
                      >
                        Delete {t.name}
                      </button>
                    </div>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </>
  );
}

const lifetime = (s: number) => (s % 60 === 0 ? `${s / 60} min` : `${s} s`);

/** Splits a comma- or newline-separated field; empty entries dropped. */
const list = (v: FormDataEntryValue | null) =>
  String(v ?? '')
    .split(/[\n,]+/)
    .map((s) => s.trim())
    .filter(Boolean);

/**
 * The trust policy form: empty, it creates (POST); given `trust`, it starts from that policy
 * and replaces it (PUT /api/auth/trusts/{name}; the name itself may change).
 */
function TrustForm(props: { trust?: TrustPolicy; onSaved: (t: TrustPolicy) => void; onCancel?: () => void }) {
  const { trust } = props;
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const f = new FormData(form);
    const claims: Record<string, string> = {};
    for (const line of String(f.get('claims') ?? '').split('\n')) {
      if (!line.trim()) continue;
      const at = line.indexOf('=');
      if (at < 1) {
        setError(new Error(`Each claim binding is one line "name=value": ${JSON.stringify(line.trim())}`));
        return;
      }
      claims[line.slice(0, at).trim()] = line.slice(at + 1).trim();
    }
    const keys = list(f.get('keys'));
    const ttl = String(f.get('ttlSeconds') ?? '').trim();
    const body: Record<string, unknown> = {
      name: String(f.get('name') ?? ''),
      issuer: String(f.get('issuer') ?? '').trim(),
      audiences: list(f.get('audiences')),
      subject: String(f.get('subject') ?? '').trim(),
      ...(Object.keys(claims).length ? { claims } : {}),
      scopes: SCOPES.filter((s) => f.get(s) === 'on'),
      ...(keys.length ? { keys } : {}),
      // A non-number goes as typed so the API's message about ttlSeconds is the one shown.
      ...(ttl ? { ttlSeconds: Number.isFinite(Number(ttl)) ? Number(ttl) : ttl } : {}),
    };
    setBusy(true);
    setError(null);
    try {
      const { body: res } = trust
        ? await request<TrustPolicy>('PUT', `/api/auth/trusts/${enc(trust.name)}`, { body })
        : await request<TrustPolicy>('POST', '/api/auth/trusts', { body });
      if (!trust) form.reset();
      props.onSaved(res);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <ErrorBox error={error} />
      <form onSubmit={submit} aria-busy={busy}>
        <label>
          Name
          <input name="name" placeholder="github-deploy" autocomplete="off" defaultValue={trust?.name} />
        </label>
        <label>
          Issuer (https URL, exactly as the tokens' iss claim)
          <input
            name="issuer"
            placeholder="https://token.actions.githubusercontent.com"
            autocomplete="off"
            defaultValue={trust?.issuer}
          />
        </label>
        <label>
          Audiences (separated by commas)
          <input
            name="audiences"
            placeholder="https://secrets.example.com"
            autocomplete="off"
            defaultValue={trust?.audiences.join(', ')}
          />
        </label>
        <label>
          Subject (exact, or a pattern where * matches any run of characters)
          <input
            name="subject"
            placeholder="repo:acme/shop:ref:refs/heads/main"
            autocomplete="off"
            spellcheck={false}
            defaultValue={trust?.subject}
          />
        </label>
        <label>
          Claim bindings (optional: one name=value a line; a nested claim as a path from "/", e.g.
          /kubernetes.io/namespace=payments)
          <textarea
            name="claims"
            rows={2}
            placeholder="repository_id=123456789"
            autocomplete="off"
            spellcheck={false}
            defaultValue={
              trust
                ? Object.entries(trust.claims)
                    .map(([k, v]) => `${k}=${v}`)
                    .join('\n')
                : undefined
            }
          />
        </label>
        <ScopeChecks legend="Scopes granted" {...(trust ? { checked: trust.scopes } : {})} />
        <label>
          Secret keys granted (optional: names or PREFIX_* patterns, separated by commas)
          <input name="keys" placeholder="SHOP_*" autocomplete="off" defaultValue={trust?.keys?.join(', ')} />
        </label>
        <label>
          Lifetime of the issued credential in seconds (optional: 60 to 3600, default 900)
          <input
            name="ttlSeconds"
            inputMode="numeric"
            autocomplete="off"
            defaultValue={trust ? String(trust.ttlSeconds) : undefined}
          />
        </label>
        <div class="row">
          <button type="submit" disabled={busy}>
            {trust ? 'Save trust policy' : 'Create trust policy'}
          </button>
          {props.onCancel ? (
            <button type="button" onClick={props.onCancel}>
              Cancel
            </button>
          ) : null}
        </div>
      </form>
    </>
  );
}

/** Deleting refuses every later exchange under the trust: typed confirmation, as for purge. */
function DeleteTrust(props: {
  name: string;
  onCancel: () => void;
  onDeleted: () => void;
  onError: (e: unknown) => void;
}) {
  const [typed, setTyped] = useState('');
  const [busy, setBusy] = useState(false);
  return (
    <section class="panel" aria-labelledby="delete-trust-h">
      <h3 id="delete-trust-h">Delete trust policy {props.name}</h3>
      <p class="warning">
        Workloads can no longer exchange tokens under this policy. Credentials already issued under it are
        refused from then on.
      </p>
      <form
        class="purge"
        onSubmit={async (e) => {
          e.preventDefault();
          if (typed !== props.name) return;
          setBusy(true);
          props.onError(null);
          try {
            await request('DELETE', `/api/auth/trusts/${enc(props.name)}`);
            props.onDeleted();
          } catch (err) {
            props.onError(err);
          } finally {
            setBusy(false);
          }
        }}
      >
        <label>
          Type {props.name} to delete it
          <input
            name="confirm"
            value={typed}
            onInput={(e) => setTyped(e.currentTarget.value)}
            autocomplete="off"
            spellcheck={false}
          />
        </label>
        <div class="row">
          <button type="submit" class="danger" disabled={busy || typed !== props.name}>
            Delete trust policy
          </button>
          <button type="button" onClick={props.onCancel}>
            Cancel
          </button>
        </div>
      </form>
    </section>
  );
}
