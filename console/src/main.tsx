import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { AccessKeysPage } from './access-keys';
import { session, setUnauthorizedHandler } from './api';
import { AuditPage } from './audit';
import { EnvironmentsPage } from './environments';
import { KeysPage } from './keys';
import { navigate, onLinkClick, type Page, pageUrl, secretsUrl, useRoute } from './route';
import { SecretsPage } from './secrets';
import { SignIn } from './sign-in';
import { TrustsPage } from './trusts';
import { labelTableCells } from './ui';
import { WebhooksPage } from './webhooks';
import './style.css';

const PAGES: { id: Page; label: string }[] = [
  { id: 'secrets', label: 'Secrets' },
  { id: 'environments', label: 'Environments' },
  { id: 'webhooks', label: 'Webhooks' },
  { id: 'access-keys', label: 'Access keys' },
  { id: 'trusts', label: 'Workload identity' },
  { id: 'audit', label: 'Audit log' },
  { id: 'keys', label: 'Encryption keys' },
];

function App() {
  const [signedIn, setSignedIn] = useState(() => session.token !== null);
  const [reason, setReason] = useState<string | null>(null);
  const route = useRoute();
  const page = route.page;
  // The Secrets link returns to the environment last shown there.
  const [secretsEnv, setSecretsEnv] = useState(route.env);
  useEffect(() => {
    if (page === 'secrets') setSecretsEnv(route.env);
  }, [page, route.env]);

  useEffect(() => {
    setUnauthorizedHandler((message) => {
      setReason(`Your session ended: ${message}. Sign in again.`);
      setSignedIn(false);
    });
  }, []);

  useEffect(() => {
    const label = PAGES.find((p) => p.id === page)?.label ?? '';
    document.title = signedIn ? `${label} · Secrets console` : 'Sign in · Secrets console';
  }, [page, signedIn]);

  if (!signedIn) {
    return (
      <SignIn
        reason={reason}
        onSignedIn={() => {
          setReason(null);
          setSignedIn(true);
        }}
      />
    );
  }

  return (
    <>
      <header class="top">
        <span class="brand">Secrets console</span>
        <nav aria-label="Sections">
          <ul>
            {PAGES.map((p) => (
              <li key={p.id}>
                <a
                  href={p.id === 'secrets' ? secretsUrl(secretsEnv) : pageUrl(p.id)}
                  class="nav"
                  aria-current={page === p.id ? 'page' : undefined}
                  onClick={onLinkClick}
                >
                  {p.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <button
          type="button"
          class="sign-out"
          onClick={() => {
            session.clear();
            setReason('You signed out.');
            setSignedIn(false);
          }}
        >
          Sign out
        </button>
      </header>
      <main id="main">
        {page === 'secrets' && (
          <SecretsPage
            // A fresh page (filters, paging, forms) for each environment.
            key={route.env}
            env={route.env}
            opened={route.item}
            onOpen={(key) => navigate(secretsUrl(route.env, key))}
            onEnv={(env) => navigate(secretsUrl(env))}
          />
        )}
        {page === 'environments' && (
          <EnvironmentsPage
            query={route.query}
            onCompare={(query) => navigate(pageUrl('environments', null, query))}
          />
        )}
        {page === 'webhooks' && (
          <WebhooksPage opened={route.item} onOpen={(id) => navigate(pageUrl('webhooks', id))} />
        )}
        {page === 'access-keys' && <AccessKeysPage />}
        {page === 'trusts' && <TrustsPage />}
        {page === 'audit' && (
          <AuditPage query={route.query} onFilter={(query) => navigate(pageUrl('audit', null, query))} />
        )}
        {page === 'keys' && <KeysPage />}
      </main>
    </>
  );
}

const root = document.getElementById('app');
if (root) {
  render(<App />, root);
  labelTableCells(root);
}
