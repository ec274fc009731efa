// Retries and backoff against a stub that counts attempts, on an injected clock: no real sleeping.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { DBaudit, APIError, APIConnectionError, APITimeoutError, RateLimitError, ServiceUnavailableError } from '@dbaudit/sdk';
import { startStub, gatewayError, ok, fakeTime } from './helpers.mjs';

const stubs = [];
after(async () => { for (const stub of stubs) await stub.close(); });

async function stub(handler) {
  const server = await startStub(handler);
  stubs.push(server);
  return server;
}

function client(url, time, options = {}) {
  return new DBaudit({ apiKey: 'dbaudit_test_key', baseURL: url, clock: time.clock, sleep: time.sleep, ...options });
}

const upstream502 = () => ({ status: 502, headers: { 'x-request-id': 'r1' }, body: { error: 'upstream_unavailable', error_description: 'x', request_id: 'r1' } });

test('GET: 2 retries by default, 0.5 s doubling, jitter factor within [0.75, 1]', async () => {
  const server = await stub(() => upstream502());
  for (const [random, expected] of [[0, [500, 1000]], [0.999999, [375, 750]], [0.5, [437.5, 875]]]) {
    const time = fakeTime();
    const before = server.count('/v1/databases');
    await assert.rejects(client(server.url, time, { random: () => random }).databases.list(), (e) => e instanceof APIError && e.status === 502);
    assert.equal(server.count('/v1/databases') - before, 3);
    assert.equal(time.delays.length, 2);
    time.delays.forEach((delay, i) => assert.ok(Math.abs(delay - expected[i]) < 0.01, `delay ${i}: ${delay} vs ${expected[i]}`));
  }
  // Math.random: every delay within its bounds.
  const time = fakeTime();
  await assert.rejects(client(server.url, time, { maxRetries: 5 }).databases.list());
  const bounds = [500, 1000, 2000, 4000, 8000];
  time.delays.forEach((delay, i) => assert.ok(delay > bounds[i] * 0.75 - 1e-9 && delay <= bounds[i], `retry ${i}: ${delay}`));
});

test('backoff is capped at 8 s', async () => {
  const server = await stub(() => upstream502());
  const time = fakeTime();
  await assert.rejects(client(server.url, time, { maxRetries: 7, random: () => 0 }).databases.list());
  assert.deepEqual(time.delays, [500, 1000, 2000, 4000, 8000, 8000, 8000]);
  assert.equal(server.requests.length, 8);
});

test('Retry-After is honoured, and capped at maxRetryAfter', async () => {
  let retryAfter = '3';
  const server = await stub((_r, n) => (n % 2 === 1 ? gatewayError(429, 'rate_limited', 'Slow down.', { 'retry-after': retryAfter }) : ok([{ id: 'db' }])));
  let time = fakeTime();
  const result = await client(server.url, time).databases.list();
  assert.deepEqual(result, [{ id: 'db' }]);
  assert.deepEqual(time.delays, [3000]);

  retryAfter = '3600';
  time = fakeTime();
  await client(server.url, time).databases.list();
  assert.deepEqual(time.delays, [60_000], 'default cap');
  time = fakeTime();
  await client(server.url, time, { maxRetryAfter: 2_000 }).databases.list();
  assert.deepEqual(time.delays, [2_000], 'client cap');

  time = fakeTime();
  retryAfter = new Date(time.clock() + 5_000).toUTCString();
  await client(server.url, time).databases.list();
  assert.deepEqual(time.delays, [5_000], 'HTTP date on the injected clock');
});

test('429 retries spent: RateLimitError with retryAfter', async () => {
  const server = await stub(() => gatewayError(429, 'rate_limited', 'Slow down.', { 'retry-after': '2' }));
  const time = fakeTime();
  await assert.rejects(client(server.url, time).databases.list(), (e) => e instanceof RateLimitError && e.retryAfter === 2 && e.status === 429);
  assert.equal(server.requests.length, 3);
  assert.deepEqual(time.delays, [2000, 2000]);
});

test('POST is not retried after an ambiguous 502 without an idempotency key', async () => {
  const server = await stub(() => upstream502());
  const time = fakeTime();
  await assert.rejects(client(server.url, time).policies.create({ name: 'p' }), (e) => e instanceof APIError && e.status === 502);
  assert.equal(server.requests.length, 1);
  assert.deepEqual(time.delays, []);
  assert.equal(server.requests[0].headers['idempotency-key'], undefined);
  // Neither PATCH nor DELETE.
  await assert.rejects(client(server.url, time).policies.update('p1', { a: 1 }));
  await assert.rejects(client(server.url, time).policies.delete('p1'));
  assert.equal(server.requests.length, 3);
  // Nor after a 503 or 429 the upstream itself sent (its body is not the gateway's).
  const upstream503 = await stub(() => ({ status: 503, headers: { 'x-request-id': 'gw-id', 'retry-after': '1' }, body: { error: 'auth_unavailable', request_id: 'other' } }));
  await assert.rejects(client(upstream503.url, time).policies.create({}), ServiceUnavailableError);
  assert.equal(upstream503.requests.length, 1);
  const plain429 = await stub(() => ({ status: 429, headers: { 'retry-after': '1' }, body: 'slow down' }));
  await assert.rejects(client(plain429.url, time).alerts.create({}), RateLimitError);
  assert.equal(plain429.requests.length, 1);
  assert.deepEqual(time.delays, []);
});

test('POST with an SDK-made Idempotency-Key is retried with the same key', async () => {
  const server = await stub(() => upstream502());
  const time = fakeTime();
  await assert.rejects(client(server.url, time).policies.create({ name: 'p' }, { idempotencyKey: true }), APIError);
  assert.equal(server.requests.length, 3);
  const keys = server.requests.map((r) => r.headers['idempotency-key']);
  assert.match(keys[0], /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(new Set(keys).size, 1, 'one key for every attempt');

  // Client-wide: every POST/PATCH/DELETE gets its own key; `false` opts out per request.
  const wide = client(server.url, time, { idempotencyKeys: true });
  await assert.rejects(wide.alerts.update('a1', { x: 1 }));
  await assert.rejects(wide.alerts.delete('a1'));
  const next = server.requests.slice(3).map((r) => r.headers['idempotency-key']);
  assert.equal(next.length, 6);
  assert.equal(new Set(next.slice(0, 3)).size, 1);
  assert.equal(new Set(next.slice(3)).size, 1);
  assert.notEqual(next[0], next[3]);
  await assert.rejects(wide.alerts.create({}, { idempotencyKey: false }));
  assert.equal(server.requests.length, 10);
  await assert.rejects(client(server.url, time).alerts.create({}, { idempotencyKey: 'mine-1' }));
  assert.deepEqual(server.requests.slice(10).map((r) => r.headers['idempotency-key']), ['mine-1', 'mine-1', 'mine-1']);
});

test("POST is retried after the gateway's own 429 and 503 (they never reached the upstream)", async () => {
  for (const refusal of [
    gatewayError(503, 'auth_unavailable', 'Store down.', { 'retry-after': '1' }),
    gatewayError(503, 'rate_limit_unavailable', 'Store down.', { 'retry-after': '1' }),
    gatewayError(429, 'rate_limited', 'Slow down.', { 'retry-after': '1' }),
  ]) {
    const server = await stub((_r, n) => (n === 1 ? refusal : { status: 201, headers: { 'x-request-id': 'done' }, body: { id: 'pol_1' } }));
    const time = fakeTime();
    const created = await client(server.url, time).policies.create({ name: 'p' });
    assert.deepEqual(created, { id: 'pol_1' });
    assert.equal(created.requestId, 'done');
    assert.equal(server.requests.length, 2, refusal.body.error);
    assert.deepEqual(time.delays, [1000]);
    assert.equal(server.requests[1].body, '{"name":"p"}');
  }
});

test('retried statuses: 408, 429, 502, 503, 504; others are final', async () => {
  for (const status of [408, 502, 503, 504]) {
    const server = await stub(() => ({ status, body: { error: 'x' } }));
    await assert.rejects(client(server.url, fakeTime()).logs.list());
    assert.equal(server.requests.length, 3, `status ${status}`);
  }
  for (const status of [400, 401, 403, 404, 409, 500]) {
    const server = await stub(() => ({ status, body: { error: 'x' } }));
    await assert.rejects(client(server.url, fakeTime()).logs.list());
    assert.equal(server.requests.length, 1, `status ${status}`);
  }
});

test('maxRetries per client and per request', async () => {
  const server = await stub(() => upstream502());
  await assert.rejects(client(server.url, fakeTime(), { maxRetries: 0 }).databases.list());
  assert.equal(server.requests.length, 1);
  await assert.rejects(client(server.url, fakeTime(), { maxRetries: 4 }).databases.list());
  assert.equal(server.requests.length, 6);
  await assert.rejects(client(server.url, fakeTime(), { maxRetries: 4 }).databases.list({}, { maxRetries: 1 }));
  assert.equal(server.requests.length, 8);
  await assert.rejects(client(server.url, fakeTime()).databases.get('d', { maxRetries: 0 }));
  assert.equal(server.requests.length, 9);
});

test('connection errors: GET retried; POST only when no connection was made', async () => {
  const server = await startStub(() => ok({}));
  const url = server.url;
  await server.close();
  let time = fakeTime();
  await assert.rejects(client(url, time).databases.list(), (e) => e instanceof APIConnectionError && !(e instanceof APITimeoutError) && e.status === null);
  assert.equal(time.delays.length, 2);
  // Refused: the request never left, so even a POST is sent again.
  time = fakeTime();
  await assert.rejects(client(url, time).databases.create({}), APIConnectionError);
  assert.equal(time.delays.length, 2);

  // Dropped after the request was sent: ambiguous, a POST is not repeated; a GET is.
  const dropping = await stub(() => 'reset');
  time = fakeTime();
  await assert.rejects(client(dropping.url, time).policies.create({ name: 'p' }), APIConnectionError);
  assert.equal(dropping.requests.length, 1);
  assert.equal(time.delays.length, 0);
  await assert.rejects(client(dropping.url, time).policies.list(), APIConnectionError);
  assert.equal(dropping.requests.length, 4);
  await assert.rejects(client(dropping.url, time).policies.create({}, { idempotencyKey: true }), APIConnectionError);
  assert.equal(dropping.requests.length, 7);
});

test('timeouts per client and per request: APITimeoutError (AbortSignal)', async () => {
  const server = await stub(() => null);
  const time = fakeTime();
  await assert.rejects(client(server.url, time, { timeout: 50, maxRetries: 0 }).databases.list(), (e) => e instanceof APITimeoutError && /50 ms/.test(e.message));
  await assert.rejects(client(server.url, time, { maxRetries: 1 }).databases.list({}, { timeout: 40 }), (e) => e instanceof APITimeoutError && /40 ms/.test(e.message));
  assert.equal(server.requests.length, 3, 'the GET that timed out was retried once');
  assert.equal(time.delays.length, 1);
});

test("the caller's AbortSignal cancels without retries (with and without AbortSignal.any)", async () => {
  const any = AbortSignal.any;
  for (const withAny of [true, false]) {
    if (!withAny) AbortSignal.any = undefined;
    try {
      const server = await stub(() => null);
      const time = fakeTime();
      const controller = new AbortController();
      const pending = client(server.url, time).databases.list({}, { signal: controller.signal });
      setTimeout(() => controller.abort(new Error('cancelled by caller')), 30);
      await assert.rejects(pending, /cancelled by caller/);
      assert.equal(server.requests.length, 1);
      assert.equal(time.delays.length, 0);
      await assert.rejects(client(server.url, time, { maxRetries: 0 }).databases.list({}, { timeout: 30, signal: new AbortController().signal }), APITimeoutError);
    } finally {
      AbortSignal.any = any;
    }
  }
});
