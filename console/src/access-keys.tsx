import { useState } from 'preact/hooks';
import { SCOPES } from '../../src/identity/actor';
import { type AccessKey, enc, request } from './api';
import { ActionForm, Check, type CredentialKind, Field, type FormFields, ShownOnce } from './forms';
import { type Column, PagedTable, usePagedList } from './table';
import { LastUsed, localToIso, Notice, When } from './ui';

/** The scope checkboxes, one for each scope the server knows; `checked` preselects (an edit form), else secrets:read alone. */
export function ScopeChecks({ legend, checked }: { legend: string; checked?: readonly string[] }) {
  return (
    <fieldset>
      <legend>{legend}</legend>
      {SCOPES.map((s) => (
        <Check
          key={s}
          label={s}
          name={s}
          defaultChecked={checked ? checked.includes(s) : s === 'secrets:read'}
        />
      ))}
    </fieldset>
  );
}

const ACCESS_KEY_TOKEN: CredentialKind = {
  what: 'token',
  valueLabel: 'New access key token',
  warning:
    'Copy this token now: it is shown only once and the service keeps only its hash. Anyone holding it can use the API with these scopes.',
};

/** Access keys: create (token shown once), list with last use, revoke. */
export function AccessKeysPage() {
  const [notice, setNotice] = useState<string | null>(null);
  const [created, setCreated] = useState<(AccessKey & { token: string }) | null>(null);
  const list = usePagedList<AccessKey>('/api/access-keys', 'accessKeys', {}, { keepOnError: true });
  const { setError, load } = list;

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
      {created ? (
        // The new token, shown once; dismissing it drops it from memory.
        <ShownOnce
          kind={ACCESS_KEY_TOKEN}
          title={`Access key ${created.name} created`}
          value={created.token}
          onDone={() => setCreated(null)}
        />
      ) : null}
      <CreateAccessKey
        onCreated={(k) => {
          setNotice(null);
          setCreated(k);
          void load();
        }}
      />
      <h2>Keys</h2>
      <PagedTable
        noun="access keys"
        list={list}
        empty="No access keys yet."
        columns={ACCESS_KEY_COLUMNS(revoke)}
      />
    </>
  );
}

const ACCESS_KEY_COLUMNS = (revoke: (k: AccessKey) => void): Column<AccessKey>[] => [
  { label: 'Name', cell: (k) => k.name },
  { label: 'Token starts with', cell: (k) => <code>{k.tokenPrefix}</code> },
  { label: 'Scopes', cell: (k) => k.scopes.join(', ') },
  { label: 'Secret keys', cell: (k) => (k.keys ? k.keys.join(', ') : 'All') },
  {
    label: 'Created',
    cell: (k) => (
      <>
        <When iso={k.createdAt} /> by {k.createdBy}
      </>
    ),
  },
  { label: 'Expires', cell: (k) => <When iso={k.expiresAt} /> },
  { label: 'Last used', cell: (k) => <LastUsed meta={k} /> },
  { label: 'Status', cell: (k) => k.status },
  {
    label: 'Action',
    cell: (k) =>
      k.status === 'active' ? (
        <button type="button" class="danger" onClick={() => revoke(k)}>
          Revoke {k.name}
        </button>
      ) : (
        '—'
      ),
  },
];

function CreateAccessKey({ onCreated }: { onCreated: (k: AccessKey & { token: string }) => void }) {
  const submit = async (f: FormFields) => {
    const keys = f.list('keys');
    const expiresAt = localToIso(f.text('expiresAt'));
    const body: Record<string, unknown> = {
      name: f.raw('name'),
      scopes: SCOPES.filter((s) => f.checked(s)),
      ...(keys.length ? { keys } : {}),
      ...(expiresAt ? { expiresAt } : {}),
    };
    onCreated((await request<AccessKey & { token: string }>('POST', '/api/access-keys', { body })).body);
  };
  return (
    <details class="panel">
      <summary>New access key</summary>
      <ActionForm onSubmit={submit}>
        <Field label="Name" name="name" required maxLength={128} placeholder="ci-deploy" />
        <ScopeChecks legend="Scopes" />
        <Field
          label="Secret keys (optional: names or PREFIX_* patterns, separated by commas)"
          name="keys"
          placeholder="STRIPE_*, DATABASE_URL"
        />
        <Field label="Expires at (your local time, optional)" name="expiresAt" type="datetime-local" />
        <button type="submit">Create access key</button>
      </ActionForm>
    </details>
  );
}
