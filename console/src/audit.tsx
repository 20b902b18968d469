import { useState } from 'preact/hooks';
import { type AuditEntry, q, request } from './api';
import { BROWSING_ACTIONS } from './audit-actions';
import { ErrorBox, isoToLocal, Loading, localToIso, Pager, usePage, When } from './ui';

interface Verify {
  intact: boolean;
  checked: number;
  firstBrokenId: string | null;
  reason: string | null;
}

/** The audit log with filters and paging, and the hash-chain check. */
const FILTERS = ['key', 'actor', 'action', 'from', 'to', 'show'] as const;

/** The filters live in the URL (/console/audit?key=...): back, reload and links keep them. */
export function AuditPage(props: { query: URLSearchParams; onFilter: (q: Record<string, string>) => void }) {
  const filters = Object.fromEntries(FILTERS.map((f) => [f, props.query.get(f) ?? '']));
  const setFilters = props.onFilter;
  const [cursors, setCursors] = useState<(string | undefined)[]>([undefined]);
  const [verify, setVerify] = useState<Verify | null>(null);
  const [verifying, setVerifying] = useState(false);
  const cursor = cursors[cursors.length - 1];
  const showAll = filters.show === 'all';
  const hideBrowsing = !showAll && filters.action === '';
  const { show: _show, ...apiFilters } = filters;

  const { data, loading, error, setError } = usePage<{ entries: AuditEntry[]; nextCursor: string | null }>(
    `/api/audit${q({ ...apiFilters, excludeAction: hideBrowsing ? BROWSING_ACTIONS.join(',') : '', limit: '50', cursor })}`,
    props.query.toString(),
  );
  const withShow = (show: string) => {
    setCursors([undefined]);
    setFilters({ ...filters, show });
  };

  const search = (e: Event) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget as HTMLFormElement);
    const text = (n: string) => String(f.get(n) ?? '').trim();
    setCursors([undefined]);
    setFilters({
      key: text('key'),
      actor: text('actor'),
      action: text('action'),
      from: localToIso(text('from')) ?? '',
      to: localToIso(text('to')) ?? '',
      show: filters.show ?? '',
    });
  };

  const runVerify = async () => {
    setVerifying(true);
    setError(null);
    setVerify(null);
    try {
      setVerify((await request<Verify>('GET', '/api/audit/verify')).body);
    } catch (err) {
      setError(err);
    } finally {
      setVerifying(false);
    }
  };

  return (
    <>
      <h1>Audit log</h1>
      <div class="verify">
        <button type="button" onClick={runVerify} disabled={verifying}>
          Verify chain
        </button>
        {verifying ? <Loading what="the verification" /> : null}
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
      <ErrorBox error={error} />
      {loading ? <Loading what="the audit log" /> : null}
      {!loading && data?.entries.length === 0 ? <p class="empty">No audit entries match.</p> : null}
      {data && data.entries.length > 0 ? (
        <div class="table-wrap">
          <table>
            <caption class="sr-only">Audit entries, newest first</caption>
            <thead>
              <tr>
                <th scope="col">#</th>
                <th scope="col">At</th>
                <th scope="col">Actor</th>
                <th scope="col">Action</th>
                <th scope="col">Key</th>
                <th scope="col">Version</th>
                <th scope="col">Outcome</th>
                <th scope="col">Client</th>
                <th scope="col">Sealed</th>
              </tr>
            </thead>
            <tbody>
              {data.entries.map((a) => (
                <tr key={a.id}>
                  <th scope="row">{a.id}</th>
                  <td>
                    <When iso={a.at} />
                  </td>
                  <td>{a.actor}</td>
                  <td>{a.action}</td>
                  <td>{a.key ?? '—'}</td>
                  <td>{a.version ?? '—'}</td>
                  <td>{a.outcome}</td>
                  <td>{a.clientIp ?? '—'}</td>
                  <td>{a.sealed ? 'Yes' : 'No'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      <Pager label="Audit pages" cursors={cursors} setCursors={setCursors} nextCursor={data?.nextCursor} />
    </>
  );
}
