import { createSecretsClient, type SecretsClient } from '../../src/client/index.js';
import { createTestApp, type TestApp, type TestAppOptions, type UseOptions, useFixture } from './app.js';

/** A test app listening on 127.0.0.1 (random port), with a typed client logged in as admin. */
export interface TestServer extends TestApp {
  url: string;
  client: SecretsClient;
}

export async function createTestServer(opts: TestAppOptions = {}): Promise<TestServer> {
  const t = await createTestApp(opts);
  const url = await t.app.listen({ host: '127.0.0.1', port: 0 });
  return { ...t, url, client: createSecretsClient({ baseUrl: url, token: t.token() }) };
}

/** One listening app for the whole file (see useFixture in ./app.ts). */
export function useTestServer(opts: TestAppOptions & UseOptions = {}): TestServer {
  const { resetEachTest, ...appOpts } = opts;
  return useFixture(() => createTestServer(appOpts), { resetEachTest });
}
