// Compiled by `tsc --noEmit` (never run): the ES-module surface as a TypeScript user sees it.
// The @ts-expect-error lines fail the check if the types ever become too loose.
import {
  DBaudit, APIError, AuthenticationError, PermissionDeniedError, RateLimitError, ServiceUnavailableError,
  NotFoundError, APIConnectionError, APITimeoutError, DBauditError, MissingCredentialError, VERSION, DEFAULT_BASE_URL,
} from '@dbaudit/sdk';
import type { ApiKeyRecord, ClientOptions, RequestOptions, JSONValue } from '@dbaudit/sdk';

const client = new DBaudit({ apiKey: 'k', baseURL: 'http://127.0.0.1:8080', maxRetries: 3, timeout: 5_000 });
const fromEnv = new DBaudit();
const oauth = new DBaudit({ clientId: 'id', clientSecret: 's', scope: ['read:databases'] });
const user = new DBaudit({ email: 'a@example.com', password: 'p', logger: console });
const options: ClientOptions = { clock: () => 0, sleep: async (_ms: number) => {}, random: () => 0.5, fetch };

const databases = await client.databases.list();
const requestId: string | null = databases.requestId;
const one: JSONValue = await client.databases.get('db_1', { timeout: 1_000, maxRetries: 0 });
await client.policies.create({ name: 'p' }, { idempotencyKey: true });
interface PolicyInput { name: string; rules: string[] }
const policy: PolicyInput = { name: 'p', rules: ['r'] };
await client.policies.create(policy);
await client.alerts.update('a', { acknowledged: true });
await client.alerts.delete(7);
await client.logs.list({ limit: 10, since: null });
await client.reports.create({ kind: 'soc2' });

const created = await client.apiKeys.create({ name: 'ci', scopes: ['read:logs'], expires_in: '90d' });
const secret: string = created.key;
for await (const key of client.apiKeys.list({ limit: 50 })) {
  const record: ApiKeyRecord = key;
  const id: string = record.id;
}
for await (const page of client.apiKeys.list().pages()) {
  const next: string | null = page.next_cursor;
}
const all: ApiKeyRecord[] = await client.apiKeys.list().toArray();
await client.apiKeys.revoke(created.id);

const tokens = await user.auth.login({ email: 'a@example.com', password: 'p' });
const refreshed = await user.auth.refresh();
await user.auth.refresh({ refresh_token: tokens.refresh_token });
const out: boolean = (await user.auth.logout({ timeout: 1_000 })).logged_out;
const expires: number = refreshed.expires_in;

const controller = new AbortController();
const perRequest: RequestOptions = { signal: controller.signal, headers: { 'x-trace': '1' }, idempotencyKey: 'abc' };

try {
  await client.databases.list({}, perRequest);
} catch (error) {
  if (error instanceof PermissionDeniedError) {
    const scope: string | null = error.scope;
  } else if (error instanceof RateLimitError || error instanceof ServiceUnavailableError) {
    const seconds: number | null = error.retryAfter;
  } else if (error instanceof AuthenticationError || error instanceof NotFoundError) {
    const code: string | null = error.error;
  } else if (error instanceof APITimeoutError || error instanceof APIConnectionError) {
    const none: null = error.status;
  } else if (error instanceof APIError) {
    const status: number | null = error.status;
    const description: string | null = error.errorDescription;
    const id: string | null = error.requestId;
  } else if (error instanceof MissingCredentialError) {
    const missing: string = error.message;
  } else if (error instanceof DBauditError) {
    const message: string = error.message;
  }
}
const version: string = VERSION + DEFAULT_BASE_URL + client.baseURL + String(fromEnv) + JSON.stringify(oauth) + String(options);

// @ts-expect-error apiKey is a string
new DBaudit({ apiKey: 42 });
// @ts-expect-error logs cannot be created
await client.logs.create({});
// @ts-expect-error reports cannot be deleted
await client.reports.delete('r');
// @ts-expect-error an API key list is iterated, not awaited as an array
const wrong: ApiKeyRecord[] = await client.apiKeys.list();
// @ts-expect-error unknown option
new DBaudit({ apikey: 'k' });
// @ts-expect-error logout takes request options, not a body
await user.auth.logout({ refresh_token: 'r' });
// @ts-expect-error a body is an object or an array
await client.databases.create('text');
