import { useEffect, useState } from 'preact/hooks';
import { request } from './api';
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
          <div class="table-wrap">
            <table>
              <caption class="sr-only">Key-encryption keys</caption>
              <thead>
                <tr>
                  <th scope="col">Key id</th>
                  <th scope="col">Stored versions</th>
                  <th scope="col">Active</th>
                  <th scope="col">In keyring</th>
                </tr>
              </thead>
              <tbody>
                {data.kids.map((k) => (
                  <tr key={k.kid}>
                    <th scope="row">{k.kid}</th>
                    <td>{k.rows}</td>
                    <td>{k.active ? 'Yes' : 'No'}</td>
                    <td>{k.inKeyring ? 'Yes' : 'No (cannot decrypt these rows)'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      ) : null}
    </>
  );
}
