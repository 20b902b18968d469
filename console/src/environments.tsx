import { useEffect, useId, useState } from 'preact/hooks';
import { DEFAULT_ENVIRONMENT, ENVIRONMENT_NAME_RULE } from '../../src/environment-names';
import { enc, listAll, q, request, type Schemas } from './api';
import { ActionForm, Field, TypedConfirm, useAction } from './forms';
import { Link, secretsUrl } from './route';
import { DataTable, ListView } from './table';
import { ErrorBox, Loading, Notice, usePage, When } from './ui';

type Environment = Schemas['Environment'];
type Comparison = Schemas['EnvironmentComparison'];

/** Every environment the caller sees (few: one request in practice). */
function useEnvironments() {
  const [envs, setEnvs] = useState<Environment[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    listAll<Environment, 'environments'>('/api/environments', 'environments').then(setEnvs, setError);
  }, []);
  return { envs, error };
}

/** The names to offer in a select: the list's, plus `current` if the list lacks it (a stale link). */
const names = (envs: Environment[] | null, current: string) => {
  const list = (envs ?? []).map((e) => e.name);
  return list.includes(current) ? list : [current, ...list];
};

function EnvironmentSelect(props: {
  label: string;
  name?: string;
  value: string;
  envs: Environment[] | null;
  onChange?: (env: string) => void;
}) {
  const id = useId();
  // A label beside the select (not around it), so its name is the label alone, not the options too.
  return (
    <div class="field">
      <label for={id}>{props.label}</label>
      <select
        id={id}
        name={props.name}
        value={props.value}
        onChange={(e) => props.onChange?.(e.currentTarget.value)}
      >
        {names(props.envs, props.value).map((n) => (
          <option key={n} value={n}>
            {n}
          </option>
        ))}
      </select>
    </div>
  );
}

/**
 * The secrets pages' environment: a select whose choice goes into the URL (?env=), so reload,
 * back and a pasted link stay in it. default is the InsForge API (/api/secrets).
 */
export function EnvironmentSwitcher({ env, onChange }: { env: string; onChange: (env: string) => void }) {
  const { envs, error } = useEnvironments();
  return (
    <div class="envbar">
      <EnvironmentSelect label="Environment" value={env} envs={envs} onChange={onChange} />
      <Link href="/console/environments">Manage and compare environments</Link>
      <ErrorBox error={error} />
    </div>
  );
}

/**
 * Environments: list, create, delete (typed confirmation, beside what it holds; the API
 * refuses one that still holds active secrets, 409, and says so), and compare two of them
 * with promote. The compared pair is in the URL (?a=staging&b=production).
 */
export function EnvironmentsPage(props: {
  query: URLSearchParams;
  onCompare: (q: Record<string, string>) => void;
}) {
  const [notice, setNotice] = useState<string | null>(null);
  const [deleting, setDeleting] = useState<string | null>(null);
  const list = usePage<{ environments: Environment[]; nextCursor: string | null }>(
    `/api/environments${q({ limit: '1000' })}`,
    undefined,
    { keepOnError: true },
  );
  const envs = list.data?.environments ?? null;
  const del = useAction();
  const reload = () => void list.load();

  return (
    <>
      <h1>Environments</h1>
      <p class="hint">
        Each environment holds its own secrets: the same key may have a different value in staging and in
        production. <code>default</code> is the InsForge API (<code>/api/secrets</code>) and cannot be
        deleted.
      </p>
      {notice ? <Notice>{notice}</Notice> : null}
      <details class="panel">
        <summary>New environment</summary>
        <ActionForm
          onSubmit={async (f) => {
            const description = f.text('description');
            const { body } = await request<Environment>('POST', '/api/environments', {
              body: { name: f.text('name'), ...(description ? { description } : {}) },
            });
            setNotice(`Environment ${body.name} has been created.`);
            reload();
          }}
        >
          <Field
            label="Name"
            name="name"
            placeholder="staging"
            spellcheck={false}
            aria-describedby="env-hint"
          />
          <p id="env-hint" class="hint">
            {ENVIRONMENT_NAME_RULE[0]?.toUpperCase()}
            {ENVIRONMENT_NAME_RULE.slice(1)}.
          </p>
          <Field label="Description (optional)" name="description" maxLength={1000} />
          <button type="submit">Create environment</button>
        </ActionForm>
      </details>
      <h2>All environments</h2>
      {deleting ? (
        <section class="panel" aria-labelledby="delete-env-h">
          <h3 id="delete-env-h">Delete environment {deleting}</h3>
          <p class="warning">
            Only an environment without active secrets can be deleted. Its deleted (inactive) secrets are
            erased with it, permanently.
          </p>
          <Holds key={`${deleting}/${del.error ? 'refused' : ''}`} name={deleting} />
          <ErrorBox error={del.error} />
          <TypedConfirm
            word={deleting}
            label={`Type ${deleting} to delete it`}
            action="Delete environment"
            busy={del.busy}
            onCancel={() => setDeleting(null)}
            onConfirm={async () => {
              const name = deleting;
              const ok = await del.run(async () => {
                await request('DELETE', `/api/environments/${enc(name)}`);
              });
              if (!ok) return;
              setDeleting(null);
              setNotice(`Environment ${name} has been deleted.`);
              reload();
            }}
          />
        </section>
      ) : null}
      <ListView
        noun="environments"
        caption="Environments, oldest first"
        list={list}
        rows={envs}
        empty="No environments."
        rowKey={(e) => e.name}
        columns={[
          { label: 'Name', cell: (e) => <Link href={secretsUrl(e.name)}>{e.name}</Link> },
          { label: 'Description', cell: (e) => e.description ?? '' },
          { label: 'Created', cell: (e) => <When iso={e.createdAt} /> },
          {
            label: 'Action',
            cell: (e) =>
              e.name === DEFAULT_ENVIRONMENT ? (
                '—'
              ) : (
                <button
                  type="button"
                  class="danger"
                  onClick={() => {
                    del.setError(null);
                    setDeleting(e.name);
                  }}
                >
                  Delete {e.name}
                </button>
              ),
          },
        ]}
      />
      <CompareSection envs={envs} query={props.query} onCompare={props.onCompare} />
    </>
  );
}

/** What an environment holds (GET /api/environments/NAME gives admins the counts). */
function Holds({ name }: { name: string }) {
  const { data } = usePage<Environment>(`/api/environments/${enc(name)}`);
  if (!data?.secrets) return null;
  const { active, inactive } = data.secrets;
  return (
    <p>
      Secrets in {name}: {active} active, {inactive} deleted.
    </p>
  );
}

type Row = Comparison['keys'][number];

const STATUS: Record<Row['status'], (c: Comparison) => string> = {
  only_in_a: (c) => `Only in ${c.a}`,
  only_in_b: (c) => `Only in ${c.b}`,
  equal: () => 'Equal',
  different: () => 'Different',
  not_compared: () => 'Not compared',
};

/** Keys whose value in a can be promoted to b: missing there, or different (or not comparable). */
const promotable = (r: Row) =>
  r.status === 'only_in_a' ||
  r.status === 'different' ||
  (r.status === 'not_compared' && r.etagA !== undefined);

const SIDES = [
  ['a', 'From (a)'],
  ['b', 'To (b)'],
] as const;

function CompareSection(props: {
  envs: Environment[] | null;
  query: URLSearchParams;
  onCompare: (q: Record<string, string>) => void;
}) {
  const a = props.query.get('a') ?? '';
  const b = props.query.get('b') ?? '';
  const prefix = props.query.get('prefix') ?? '';
  const others = (props.envs ?? []).filter((e) => e.name !== DEFAULT_ENVIRONMENT);
  // The pair picked in the selects (the URL's, else the first two environments beside default).
  const [pick, setPick] = useState<{ a?: string; b?: string }>({});
  useEffect(() => setPick({}), [props.query]);
  const picked = {
    a: pick.a ?? (a || others[0]?.name || DEFAULT_ENVIRONMENT),
    b: pick.b ?? (b || others[1]?.name || DEFAULT_ENVIRONMENT),
  };
  return (
    <section aria-labelledby="compare-h">
      <h2 id="compare-h">Compare and promote</h2>
      <p class="hint">
        Which keys are only in one environment, and which hold equal or different values. Values are compared
        on the server and never shown (each compared value is an audited read).
      </p>
      <form
        class="filters"
        key={props.query.toString()}
        aria-label="Compare two environments"
        onSubmit={(e) => {
          e.preventDefault();
          const f = new FormData(e.currentTarget as HTMLFormElement);
          const get = (n: string) => String(f.get(n) ?? '').trim();
          props.onCompare({ a: get('a'), b: get('b'), prefix: get('prefix').toUpperCase() });
        }}
      >
        {SIDES.map(([side, label]) => (
          <EnvironmentSelect
            key={side}
            label={label}
            name={side}
            value={picked[side]}
            envs={props.envs}
            onChange={(v) => setPick({ ...pick, [side]: v })}
          />
        ))}
        <Field label="Key prefix (optional)" name="prefix" defaultValue={prefix} placeholder="STRIPE_" />
        <button type="submit">Compare</button>
      </form>
      {a && b ? <CompareResult key={`${a}/${b}/${prefix}`} a={a} b={b} prefix={prefix} /> : null}
    </section>
  );
}

function CompareResult(props: { a: string; b: string; prefix: string }) {
  const [refresh, setRefresh] = useState(0);
  const [selected, setSelected] = useState<string[]>([]);
  const [confirming, setConfirming] = useState(false);
  const [notice, setNotice] = useState<string | null>(null);
  const promote = useAction();
  const { data, loading, error } = usePage<Comparison>(
    `/api/environments/${enc(props.a)}/compare/${enc(props.b)}${q({ prefix: props.prefix })}`,
    refresh,
  );
  if (loading && !data) return <Loading what="the comparison" />;
  if (!data) return <ErrorBox error={error} />;
  const rows = data.keys;
  const count = (s: Row['status']) => rows.filter((r) => r.status === s).length;
  const toggle = (key: string, on: boolean) =>
    setSelected(on ? [...selected, key] : selected.filter((k) => k !== key));
  const chosen = rows.filter((r) => selected.includes(r.key) && promotable(r));

  const run = async () => {
    const ok = await promote.run(async () => {
      const { body } = await request<Schemas['PromoteResponse']>(
        'POST',
        `/api/environments/${enc(data.a)}/promote/${enc(data.b)}`,
        // Compare-and-set on the target: what this comparison saw there (absent: null).
        { body: { secrets: chosen.map((r) => ({ key: r.key, targetEtag: r.etagB ?? null })) } },
      );
      setNotice(
        `Promoted from ${body.from} to ${body.to}: ${body.results.map((r) => `${r.key} (${r.status})`).join(', ')}.`,
      );
    });
    if (!ok) return;
    setConfirming(false);
    setSelected([]);
    setRefresh(refresh + 1);
  };

  return (
    <div class="compare">
      <h3>
        {data.a} compared with {data.b}
      </h3>
      {notice ? <Notice>{notice}</Notice> : null}
      <ErrorBox error={error} />
      <p class="summary">
        {count('only_in_a')} only in {data.a}, {count('only_in_b')} only in {data.b}, {count('equal')} equal,{' '}
        {count('different')} different
        {count('not_compared') ? `, ${count('not_compared')} not compared (write-only)` : ''}.
      </p>
      {rows.length === 0 ? <p class="empty">Neither environment holds a matching key.</p> : null}
      {rows.length > 0 ? (
        <DataTable
          caption={`Keys of ${data.a} and ${data.b}`}
          class="comparison"
          rows={rows}
          rowKey={(r) => r.key}
          rowClass={(r) => `cmp-${r.status}`}
          columns={[
            { label: 'Key', cell: (r) => r.key },
            {
              label: 'Status',
              cell: (r) => (
                <span class="cmp-status">
                  {STATUS[r.status](data)}
                  {r.reason === 'write_only' ? ' (write-only)' : ''}
                </span>
              ),
            },
            {
              label: `Promote to ${data.b}`,
              cell: (r) =>
                promotable(r) ? (
                  <input
                    type="checkbox"
                    aria-label={`Promote ${r.key}`}
                    checked={selected.includes(r.key)}
                    onChange={(e) => toggle(r.key, e.currentTarget.checked)}
                  />
                ) : (
                  '—'
                ),
            },
          ]}
        />
      ) : null}
      <div class="row">
        <button type="button" disabled={chosen.length === 0} onClick={() => setConfirming(true)}>
          Promote {chosen.length} selected to {data.b}
        </button>
        <button type="button" onClick={() => setRefresh(refresh + 1)}>
          Compare again
        </button>
      </div>
      {confirming && chosen.length > 0 ? (
        <section class="panel" aria-labelledby="promote-h">
          <h3 id="promote-h">
            Promote {chosen.length} {chosen.length === 1 ? 'key' : 'keys'} from {data.a} to {data.b}
          </h3>
          <p class="warning">
            {data.b} gets the current values of {chosen.map((r) => r.key).join(', ')} from {data.a}. One
            batch: if {data.b} changed since this comparison, nothing is written.
          </p>
          <ErrorBox error={promote.error} />
          <TypedConfirm
            word={data.b}
            label={`Type ${data.b} to promote`}
            action={`Promote to ${data.b}`}
            busy={promote.busy}
            onConfirm={run}
            onCancel={() => setConfirming(false)}
          />
        </section>
      ) : null}
    </div>
  );
}
