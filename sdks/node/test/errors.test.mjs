// Typed errors: status, the gateway's error / error_description / request_id, and what each adds.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  DBaudit, DBauditError, APIError, AuthenticationError, PermissionDeniedError, NotFoundError, RateLimitError,
  ServiceUnavailableError, APIConnectionError, APITimeoutError,
} from '@dbaudit/sdk';
import { startStub, gatewayError, ok, fakeTime } from './helpers.mjs';

let answer = null;
const server = await startStub(() => answer);
after(() => server.close());

async function failure(response, call = (c) => c.databases.list()) {
  answer = response;
  const time = fakeTime();
  const c = new DBaudit({ apiKey: 'dbaudit_test_key', baseURL: server.url, clock: time.clock, sleep: time.sleep, maxRetries: 0 });
  try {
    await call(c);
  } catch (error) {
    return error;
  }
  assert.fail('no error');
}

test('401: AuthenticationError with the RFC 6750 error of WWW-Authenticate', async () => {
  const response = gatewayError(401, 'invalid_token', 'The API key is unknown, revoked or expired.', {
    'www-authenticate': 'Bearer realm="dbaudit", error="invalid_token", error_description="The API key is unknown, revoked or expired."',
  });
  const error = await failure(response);
  assert.ok(error instanceof AuthenticationError && error instanceof APIError && error instanceof DBauditError && error instanceof Error);
  assert.equal(error.name, 'AuthenticationError');
  assert.equal(error.status, 401);
  assert.equal(error.error, 'invalid_token');
  assert.equal(error.errorDescription, 'The API key is unknown, revoked or expired.');
  assert.equal(error.requestId, response.body.request_id);
  assert.match(error.message, /^401 invalid_token: The API key is unknown, revoked or expired\. \(request id req-/);
});

test('403: PermissionDeniedError names the missing scope', async () => {
  const error = await failure(gatewayError(403, 'insufficient_scope', 'The credential lacks the scope write:policies.', {
    'www-authenticate': 'Bearer realm="dbaudit", error="insufficient_scope", scope="write:policies"',
  }), (c) => c.policies.create({}));
  assert.ok(error instanceof PermissionDeniedError);
  assert.equal(error.scope, 'write:policies');
  assert.equal(error.error, 'insufficient_scope');
  assert.equal(error.status, 403);
});

test('429 RateLimitError, 503 ServiceUnavailableError with retryAfter; 404 NotFoundError; others APIError', async () => {
  const limited = await failure(gatewayError(429, 'rate_limited', 'Slow down.', { 'retry-after': '7' }));
  assert.ok(limited instanceof RateLimitError);
  assert.equal(limited.retryAfter, 7);
  assert.equal(limited.error, 'rate_limited');
  const down = await failure(gatewayError(503, 'auth_unavailable', 'Store down.', { 'retry-after': '1' }));
  assert.ok(down instanceof ServiceUnavailableError);
  assert.equal(down.retryAfter, 1);
  assert.equal(down.error, 'auth_unavailable');
  const missing = await failure(gatewayError(404, 'not_found', 'No route.'), (c) => c.alerts.get('nope'));
  assert.ok(missing instanceof NotFoundError);
  const conflict = await failure(gatewayError(409, 'key_limit_reached', 'Too many keys.'), (c) => c.apiKeys.create({ name: 'n', scopes: [] }));
  assert.ok(conflict instanceof APIError && conflict.constructor === APIError);
  assert.equal(conflict.status, 409);
  assert.equal(conflict.error, 'key_limit_reached');
});

test('an upstream error without the gateway body: status, text body, X-Request-Id header', async () => {
  const error = await failure({ status: 500, headers: { 'content-type': 'text/plain', 'x-request-id': 'up-1' }, body: 'boom' });
  assert.equal(error.status, 500);
  assert.equal(error.error, null);
  assert.equal(error.body, 'boom');
  assert.equal(error.requestId, 'up-1');
});

test('a redirect is not followed (the credential stays with the base URL)', async () => {
  const error = await failure({ status: 302, headers: { location: `${server.url}/elsewhere`, 'x-request-id': 'r-302' }, body: null });
  assert.ok(error instanceof APIError);
  assert.equal(error.status, 302);
  assert.equal(error.requestId, 'r-302');
  assert.equal(server.requests.filter((r) => r.path === '/elsewhere').length, 0);
});

test('transport errors have no status', async () => {
  const closed = await startStub(() => ok({}));
  const url = closed.url;
  await closed.close();
  const c = new DBaudit({ apiKey: 'k', baseURL: url, maxRetries: 0 });
  const error = await c.databases.list().catch((e) => e);
  assert.ok(error instanceof APIConnectionError && error instanceof APIError);
  assert.equal(error.status, null);
  assert.ok(new APITimeoutError() instanceof APIConnectionError);
});

test('results carry the X-Request-Id as a non-enumerable requestId', async () => {
  answer = ok({ databases: [{ id: 'db_1' }] }, 'rid-42');
  const c = new DBaudit({ apiKey: 'k', baseURL: server.url });
  const result = await c.databases.list();
  assert.equal(result.requestId, 'rid-42');
  assert.equal(JSON.stringify(result), '{"databases":[{"id":"db_1"}]}');
  assert.deepEqual(Object.keys(result), ['databases']);
});
