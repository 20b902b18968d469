import { useEffect, useState } from 'preact/hooks';
import { request } from './api';
import { DataTable } from './table';
import { ErrorBox, Loading } from './ui';

interface KeyStatus {
  activeKid: string;
  kids: { kid: string; rows: number; active: boolean; inKeyring: boolean }[];
  pendingRewrap: number;
}

/** Key-rotation status: which key-encryption key wraps how many stored versions. */
export function KeysPage() {
  const [data, setData] = useState<KeyStatus | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    request<KeyStatus>('GET', '/api/keys/status').then(
      (r) => setData(r.body),
      (err) => setError(err),
    );
  }, []);
  return (
    <>
      <h1>Encryption keys</h1>
      <ErrorBox error={error} />
      {!data && !error ? <Loading what="key status" /> : null}
      {data ? (
        <>
          <p>
            Active key id: <code>{data.activeKid}</code>.{' '}
            {data.pendingRewrap === 0
              ? 'Every stored version is wrapped by the active key.'
              : `${data.pendingRewrap} stored versions still use an older key: run npm run rewrap (or POST /api/keys/rewrap).`}
          </p>
          <DataTable
            caption="Key-encryption keys"
            rows={data.kids}
            rowKey={(k) => k.kid}
            columns={[
              { label: 'Key id', cell: (k) => k.kid },
              { label: 'Stored versions', cell: (k) => k.rows },
              { label: 'Active', cell: (k) => (k.active ? 'Yes' : 'No') },
              { label: 'In keyring', cell: (k) => (k.inKeyring ? 'Yes' : 'No (cannot decrypt these rows)') },
            ]}
          />
        </>
      ) : null}
    </>
  );
}
