import { useState } from 'preact/hooks';
import { isSecretKey, KEY_FORMAT_MESSAGE, KEY_MAX_LENGTH } from '../../src/secret-names';
import { ApiError, request, type SecretMeta, secretsBase } from './api';
import { EnvironmentSwitcher } from './environments';
import { ActionForm, Check, Field, type FormFields } from './forms';
import { SecretDetail } from './secret-detail';
import { type Column, PagedTable, usePagedList } from './table';
import { LastUsed, LockBadge, localToIso, Notice, SecretValueField, When } from './ui';

const PAGE_SIZE = 25;

/**
 * The list (prefix search, active filter, keyset paging), create form and one opened secret,
 * in one environment (the switcher above the list; the URL's ?env=).
 */
export function SecretsPage(props: {
  env: string;
  opened: string | null;
  onOpen: (key: string | null) => void;
  onEnv: (env: string) => void;
}) {
  const [filters, setFilters] = useState({ prefix: '', active: '' });
  const [notice, setNotice] = useState<string | null>(null);
  const [creating, setCreating] = useState(false);
  // The opened secret is in the URL (/console/secrets/KEY): back, reload and links keep it.
  const { opened, onOpen: setOpened, env } = props;
  const base = secretsBase(env);
  // A search sent again with the same filters reloads (refresh: a new object).
  const list = usePagedList<SecretMeta>(base, 'secrets', filters, { refresh: filters, pageSize: PAGE_SIZE });
  const load = list.load;

  const search = (e: Event) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget as HTMLFormElement);
    list.first();
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
      <EnvironmentSwitcher env={env} onChange={props.onEnv} />
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
          base={base}
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
          base={base}
          onChanged={(message, closing) => {
            // One success message, where the person is looking: the open panel shows its own.
            setNotice(closing ? message : null);
            void load();
          }}
          onClose={() => setOpened(null)}
        />
      ) : null}
      <PagedTable
        noun="secrets"
        caption={`Secrets in ${env}, newest first`}
        class="secrets"
        list={list}
        empty={
          filters.prefix || filters.active ? 'No secrets match these filters.' : 'No secrets yet: create one.'
        }
        columns={SECRET_COLUMNS(setOpened)}
      />
    </>
  );
}

const SECRET_COLUMNS = (open: (key: string) => void): Column<SecretMeta>[] => [
  {
    label: 'Key',
    cell: (s) => (
      <>
        <button type="button" class="link" aria-label={`Open ${s.key}`} onClick={() => open(s.key)}>
          {s.key}
        </button>
        {s.isWriteOnly ? <LockBadge /> : null}
      </>
    ),
  },
  { label: 'Description', cell: (s) => s.description ?? '' },
  { label: 'Status', cell: (s) => (s.isActive ? 'Active' : 'Deleted') },
  { label: 'Reserved', cell: (s) => (s.isReserved ? 'Yes' : 'No') },
  { label: 'Expires', cell: (s) => <When iso={s.expiresAt} /> },
  { label: 'Last used', cell: (s) => <LastUsed meta={s} /> },
  { label: 'Version', cell: (s) => s.version },
];

function CreateSecret({
  base,
  onCreated,
}: {
  base: string;
  onCreated: (message: string, key: string) => void;
}) {
  const [generate, setGenerate] = useState(false);

  const submit = async (f: FormFields) => {
    const key = f.text('key');
    // The API's own rule (src/secret-names.ts), checked here so a bad name is never sent.
    if (!isSecretKey(key))
      throw new ApiError(400, {
        message: KEY_FORMAT_MESSAGE,
        nextActions: `At most ${KEY_MAX_LENGTH} characters`,
      });
    const body: Record<string, unknown> = { key };
    if (generate) body.generate = { length: Number(f.text('length')), alphabet: f.text('alphabet') };
    else body.value = f.raw('value');
    const description = f.raw('description');
    if (description) body.description = description;
    const expiresAt = localToIso(f.text('expiresAt'));
    if (expiresAt) body.expiresAt = expiresAt;
    if (f.checked('isReserved')) body.isReserved = true;
    if (f.checked('isWriteOnly')) body.isWriteOnly = true;
    const { body: res } = await request<{ message: string }>('POST', base, { body });
    setGenerate(false);
    onCreated(res.message, key);
  };

  return (
    <section class="panel" aria-labelledby="create-h">
      <h2 id="create-h">New secret</h2>
      <ActionForm onSubmit={submit}>
        <Field
          label="Key"
          name="key"
          required
          maxLength={KEY_MAX_LENGTH}
          spellcheck={false}
          placeholder="STRIPE_API_KEY"
          aria-describedby="key-hint"
        />
        <p id="key-hint" class="hint">
          Uppercase letters, digits and underscores.
        </p>
        <Check
          label="Generate a random value on the server"
          checked={generate}
          onChange={(e) => setGenerate(e.currentTarget.checked)}
        />
        {generate ? (
          <div class="row">
            <Field
              label="Length"
              name="length"
              type="number"
              min={16}
              max={4096}
              defaultValue="32"
              required
            />
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
        <Field label="Description" name="description" maxLength={1024} />
        <Field label="Expires at (your local time, optional)" name="expiresAt" type="datetime-local" />
        <Check label="Reserved (protected from deletion)" name="isReserved" />
        <Check
          label="Write-only (the value can never be read back, not even by admins; permanent)"
          name="isWriteOnly"
        />
        <button type="submit">Create secret</button>
      </ActionForm>
    </section>
  );
}
