import { useState } from 'preact/hooks';
import { SCOPES } from '../../src/identity/actor';
import { ScopeChecks } from './access-keys';
import { enc, request, type TrustPolicy } from './api';
import { ActionForm, Field, FormButtons, type FormFields, TypedConfirm, useAction } from './forms';
import { ListView } from './table';
import { ErrorBox, Notice, usePage, When } from './ui';

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
  const { data, loading, error, load } = usePage<{ trusts: TrustPolicy[] }>('/api/auth/trusts', undefined, {
    keepOnError: true,
  });

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
        />
      ) : null}
      <ListView
        noun="trust policies"
        list={{ loading, error }}
        rows={data?.trusts}
        empty="No trust policies yet."
        columns={[
          { label: 'Name', cell: (t) => t.name },
          { label: 'Issuer', cell: (t) => <code>{t.issuer}</code> },
          { label: 'Audiences', cell: (t) => t.audiences.join(', ') },
          { label: 'Subject', cell: (t) => <code>{t.subject}</code> },
          {
            label: 'Claims',
            cell: (t) =>
              Object.keys(t.claims).length === 0
                ? '—'
                : Object.entries(t.claims).map(([k, v]) => (
                    <div key={k}>
                      <code>
                        {k}={v}
                      </code>
                    </div>
                  )),
          },
          { label: 'Scopes', cell: (t) => t.scopes.join(', ') },
          { label: 'Secret keys', cell: (t) => (t.keys ? t.keys.join(', ') : 'All') },
          { label: 'Lifetime', cell: (t) => lifetime(t.ttlSeconds) },
          {
            label: 'Created',
            cell: (t) => (
              <>
                <When iso={t.createdAt} /> by {t.createdBy}
              </>
            ),
          },
          {
            label: 'Action',
            cell: (t) => (
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
            ),
          },
        ]}
      />
    </>
  );
}

const lifetime = (s: number) => (s % 60 === 0 ? `${s / 60} min` : `${s} s`);

/**
 * The trust policy form: empty, it creates (POST); given `trust`, it starts from that policy
 * and replaces it (PUT /api/auth/trusts/{name}; the name itself may change).
 */
function TrustForm(props: { trust?: TrustPolicy; onSaved: (t: TrustPolicy) => void; onCancel?: () => void }) {
  const { trust } = props;
  const submit = async (f: FormFields) => {
    const claims: Record<string, string> = {};
    for (const line of f.raw('claims').split('\n')) {
      if (!line.trim()) continue;
      const at = line.indexOf('=');
      if (at < 1)
        throw new Error(`Each claim binding is one line "name=value": ${JSON.stringify(line.trim())}`);
      claims[line.slice(0, at).trim()] = line.slice(at + 1).trim();
    }
    const keys = f.list('keys');
    const ttl = f.text('ttlSeconds');
    const body: Record<string, unknown> = {
      name: f.raw('name'),
      issuer: f.text('issuer'),
      audiences: f.list('audiences'),
      subject: f.text('subject'),
      ...(Object.keys(claims).length ? { claims } : {}),
      scopes: SCOPES.filter((s) => f.checked(s)),
      ...(keys.length ? { keys } : {}),
      // A non-number goes as typed so the API's message about ttlSeconds is the one shown.
      ...(ttl ? { ttlSeconds: Number.isFinite(Number(ttl)) ? Number(ttl) : ttl } : {}),
    };
    const { body: res } = trust
      ? await request<TrustPolicy>('PUT', `/api/auth/trusts/${enc(trust.name)}`, { body })
      : await request<TrustPolicy>('POST', '/api/auth/trusts', { body });
    props.onSaved(res);
  };
  return (
    <ActionForm onSubmit={submit} keep={trust !== undefined}>
      <Field label="Name" name="name" placeholder="github-deploy" defaultValue={trust?.name} />
      <Field
        label="Issuer (https URL, exactly as the tokens' iss claim)"
        name="issuer"
        placeholder="https://token.actions.githubusercontent.com"
        defaultValue={trust?.issuer}
      />
      <Field
        label="Audiences (separated by commas)"
        name="audiences"
        placeholder="https://secrets.example.com"
        defaultValue={trust?.audiences.join(', ')}
      />
      <Field
        label="Subject (exact, or a pattern where * matches any run of characters)"
        name="subject"
        placeholder="repo:acme/shop:ref:refs/heads/main"
        spellcheck={false}
        defaultValue={trust?.subject}
      />
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
      <Field
        label="Secret keys granted (optional: names or PREFIX_* patterns, separated by commas)"
        name="keys"
        placeholder="SHOP_*"
        defaultValue={trust?.keys?.join(', ')}
      />
      <Field
        label="Lifetime of the issued credential in seconds (optional: 60 to 3600, default 900)"
        name="ttlSeconds"
        inputMode="numeric"
        defaultValue={trust ? String(trust.ttlSeconds) : undefined}
      />
      <FormButtons
        submit={trust ? 'Save trust policy' : 'Create trust policy'}
        {...(props.onCancel ? { onCancel: props.onCancel } : {})}
      />
    </ActionForm>
  );
}

/** Deleting refuses every later exchange under the trust: typed confirmation, as for purge. */
function DeleteTrust(props: { name: string; onCancel: () => void; onDeleted: () => void }) {
  const { busy, error, run } = useAction();
  return (
    <section class="panel" aria-labelledby="delete-trust-h">
      <h3 id="delete-trust-h">Delete trust policy {props.name}</h3>
      <p class="warning">
        Workloads can no longer exchange tokens under this policy. Credentials already issued under it are
        refused from then on.
      </p>
      <ErrorBox error={error} />
      <TypedConfirm
        word={props.name}
        label={`Type ${props.name} to delete it`}
        action="Delete trust policy"
        busy={busy}
        onCancel={props.onCancel}
        onConfirm={async () => {
          if (await run(async () => void (await request('DELETE', `/api/auth/trusts/${enc(props.name)}`))))
            props.onDeleted();
        }}
      />
    </section>
  );
}
