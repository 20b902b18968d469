import { useEffect, useState } from 'preact/hooks';
import { ApiError, request, session } from './api';
import { ErrorBox, Notice } from './ui';

/** Sign in with the InsForge admin login (when configured) or by pasting an admin token. */
export function SignIn({ reason, onSignedIn }: { reason: string | null; onSignedIn: () => void }) {
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  // The username/password form only where the server has a login (GET /console/config.json).
  const [loginEnabled, setLoginEnabled] = useState(false);
  useEffect(() => {
    fetch('/console/config.json')
      .then((r): Promise<{ login?: boolean }> | { login?: boolean } => (r.ok ? r.json() : {}))
      .then((c) => setLoginEnabled(c.login === true))
      .catch(() => setLoginEnabled(false));
  }, []);

  const login = async (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const data = new FormData(form);
    setBusy(true);
    setError(null);
    try {
      const { body } = await request<{ accessToken: string }>('POST', '/api/auth/admin/sessions', {
        auth: false,
        body: { username: String(data.get('username') ?? ''), password: String(data.get('password') ?? '') },
      });
      form.reset();
      session.set(body.accessToken);
      onSignedIn();
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        setError(
          new ApiError(404, {
            message: 'Username and password sign-in is not enabled on this server',
            nextActions:
              'Set ROOT_ADMIN_USERNAME and ROOT_ADMIN_PASSWORD on the server, or paste an admin token below (npm run token)',
          }),
        );
      } else setError(err);
    } finally {
      setBusy(false);
    }
  };

  const useToken = async (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const token = String(new FormData(form).get('token') ?? '').trim();
    if (!token) return;
    setBusy(true);
    setError(null);
    session.set(token);
    try {
      // Checks the token (and that it is an admin's) before showing the console.
      await request('GET', '/api/keys/status', { signOutOn401: false });
      form.reset();
      onSignedIn();
    } catch (err) {
      session.clear();
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main id="main" class="sign-in">
      <h1>Secrets console</h1>
      {reason ? <Notice>{reason}</Notice> : null}
      <ErrorBox error={error} />
      {loginEnabled ? (
        <section aria-labelledby="login-h">
          <h2 id="login-h">Sign in as admin</h2>
          <form onSubmit={login} aria-busy={busy}>
            <label>
              Username
              <input name="username" autocomplete="username" required />
            </label>
            <label>
              Password
              <input name="password" type="password" autocomplete="current-password" required />
            </label>
            <button type="submit" disabled={busy}>
              Sign in
            </button>
          </form>
        </section>
      ) : null}
      <section aria-labelledby="token-h">
        <h2 id="token-h">{loginEnabled ? 'Or use an admin token' : 'Sign in with an admin token'}</h2>
        <form onSubmit={useToken} aria-busy={busy}>
          <label>
            Admin token (JWT)
            <input name="token" type="password" autocomplete="off" spellcheck={false} required />
          </label>
          <button type="submit" disabled={busy}>
            Use token
          </button>
        </form>
        {loginEnabled ? null : (
          <p class="hint">
            Mint one on the server with <code>npm run -s token -- --sub NAME</code>. Username and password
            sign-in appears here when ROOT_ADMIN_USERNAME and ROOT_ADMIN_PASSWORD are set.
          </p>
        )}
        <p class="hint">
          The token is kept in this tab's session storage only and is removed when you sign out or close the
          tab.
        </p>
      </section>
    </main>
  );
}
