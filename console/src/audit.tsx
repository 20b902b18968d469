import { useState } from 'preact/hooks';
import { type AuditEntry, request } from './api';
import { BROWSING_ACTIONS } from './audit-actions';
import { useAction } from './forms';
import { type Column, PagedTable, usePagedList } from './table';
import { isoToLocal, Loading, localToIso, When } from './ui';

interface Verify {
  intact: boolean;
  checked: number;
  firstBrokenId: string | null;
  reason: string | null;
}

/** The audit log with filters and paging, and the hash-chain check. */
const FILTERS = ['key', 'actor', 'action', 'from', 'to', 'show'] as const;

const AUDIT_COLUMNS: Column<AuditEntry>[] = [
  { label: '#', cell: (a) => a.id },
  { label: 'At', cell: (a) => <When iso={a.at} /> },
  { label: 'Actor', cell: (a) => a.actor },
  { label: 'Action', cell: (a) => a.action },
  { label: 'Key', cell: (a) => a.key ?? '—' },
  { label: 'Version', cell: (a) => a.version ?? '—' },
  { label: 'Outcome', cell: (a) => a.outcome },
  { label: 'Client', cell: (a) => a.clientIp ?? '—' },
  { label: 'Sealed', cell: (a) => (a.sealed ? 'Yes' : 'No') },
];

/** The filters live in the URL (/console/audit?key=...): back, reload and links keep them. */
export function AuditPage(props: { query: URLSearchParams; onFilter: (q: Record<string, string>) => void }) {
  const filters = Object.fromEntries(FILTERS.map((f) => [f, props.query.get(f) ?? '']));
  const setFilters = props.onFilter;
  const [verify, setVerify] = useState<Verify | null>(null);
  const verifying = useAction((err) => list.setError(err));
  const showAll = filters.show === 'all';
  const hideBrowsing = !showAll && filters.action === '';
  const { show: _show, ...apiFilters } = filters;

  const list = usePagedList<AuditEntry>(
    '/api/audit',
    'entries',
    { ...apiFilters, excludeAction: hideBrowsing ? BROWSING_ACTIONS.join(',') : '' },
    { refresh: props.query.toString() },
  );
  const withShow = (show: string) => {
    list.first();
    setFilters({ ...filters, show });
  };

  const search = (e: Event) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget as HTMLFormElement);
    const text = (n: string) => String(f.get(n) ?? '').trim();
    list.first();
    setFilters({
      key: text('key'),
      actor: text('actor'),
      action: text('action'),
      from: localToIso(text('from')) ?? '',
      to: localToIso(text('to')) ?? '',
      show: filters.show ?? '',
    });
  };

  const runVerify = () =>
    verifying.run(async () => {
      setVerify(null);
      setVerify((await request<Verify>('GET', '/api/audit/verify')).body);
    });

  return (
    <>
      <h1>Audit log</h1>
      <div class="verify">
        <button type="button" onClick={runVerify} disabled={verifying.busy}>
          Verify chain
        </button>
        {verifying.busy ? <Loading what="the verification" /> : null}
        {verify ? (
          <output class={verify.intact ? 'ok' : 'error'}>
            {verify.intact
              ? `Chain intact: ${verify.checked} rows checked.`
              : `Chain broken at row ${verify.firstBrokenId ?? '?'}: ${verify.reason ?? 'hash mismatch'} (${verify.checked} rows checked).`}
          </output>
        ) : null}
      </div>
      {/* Keyed by the query: back and forward show their own filters in the fields. */}
      <form class="filters" key={props.query.toString()} onSubmit={search} aria-label="Filter the audit log">
        <label>
          Secret key
          <input name="key" autocomplete="off" defaultValue={filters.key} />
        </label>
        <label>
          Actor
          <input name="actor" placeholder="admin:root" autocomplete="off" defaultValue={filters.actor} />
        </label>
        <label>
          Action
          <input name="action" placeholder="secret.read" autocomplete="off" defaultValue={filters.action} />
        </label>
        <label>
          From
          <input name="from" type="datetime-local" defaultValue={isoToLocal(filters.from || null)} />
        </label>
        <label>
          To
          <input name="to" type="datetime-local" defaultValue={isoToLocal(filters.to || null)} />
        </label>
        <button type="submit">Filter</button>
      </form>
      <p class="scope">
        {hideBrowsing ? (
          <>
            Showing value reads and changes: listing entries ({BROWSING_ACTIONS.join(', ')}) are hidden here,
            not removed.{' '}
            <button type="button" class="link" onClick={() => withShow('all')}>
              Show every entry
            </button>
          </>
        ) : filters.action === '' ? (
          <>
            Showing every entry.{' '}
            <button type="button" class="link" onClick={() => withShow('')}>
              Hide listing entries
            </button>
          </>
        ) : (
          <>Showing the actions filtered for.</>
        )}
      </p>
      <PagedTable noun="audit entries" list={list} empty="No audit entries match." columns={AUDIT_COLUMNS} />
    </>
  );
}
