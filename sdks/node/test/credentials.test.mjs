// Credentials: API key (option, DBAUDIT_API_KEY), base URL, User-Agent; OAuth client
// credentials and user sessions with one token fetch or refresh for any number of callers.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { DBaudit, DBauditError, MissingCredentialError, AuthenticationError, DEFAULT_BASE_URL, VERSION } from '@dbaudit/sdk';
import { startStub, gatewayError, ok, fakeTime, withEnv } from './helpers.mjs';

const stubs = [];
after(async () => { for (const stub of stubs) await stub.close(); });
async function stub(handler) {
  const server = await startStub(handler);
  stubs.push(server);
  return server;
}
const expired = (token) => gatewayError(401, 'invalid_token', 'The token expired.', { 'www-authenticate': 'Bearer realm="dbaudit", error="invalid_token"' });

test('a missing key is an error naming DBAUDIT_API_KEY', async () => {
  await withEnv({ DBAUDIT_API_KEY: undefined }, () => {
    assert.throws(() => new DBaudit(), (e) => e instanceof MissingCredentialError && e instanceof DBauditError && /DBAUDIT_API_KEY/.test(e.message) && /apiKey/.test(e.message));
    assert.throws(() => new DBaudit({ apiKey: '' }), DBauditError);
  });
  await withEnv({ DBAUDIT_API_KEY: '  ' }, () => assert.throws(() => new DBaudit(), /DBAUDIT_API_KEY/));
});

test('the apiKey option, else DBAUDIT_API_KEY; sent as a bearer token with the User-Agent', async () => {
  const server = await stub(() => ok([]));
  await withEnv({ DBAUDIT_API_KEY: 'dbaudit_test_from_env', DBAUDIT_BASE_URL: server.url }, async () => {
    await new DBaudit().databases.list();
    await new DBaudit({ apiKey: 'dbaudit_test_explicit' }).databases.list();
  });
  assert.equal(server.requests[0].headers.authorization, 'Bearer dbaudit_test_from_env');
  assert.equal(server.requests[1].headers.authorization, 'Bearer dbaudit_test_explicit');
  const version = JSON.parse(readFileSync(new URL('../package.json', import.meta.url))).version;
  assert.equal(VERSION, version);
  assert.equal(server.requests[0].headers['user-agent'], `dbaudit-node/${version}`);
  assert.equal(server.requests[0].headers.accept, 'application/json');
});

test('baseURL: the option, else DBAUDIT_BASE_URL, else the documented default', async () => {
  assert.equal(DEFAULT_BASE_URL, 'https://api.dbaudit.ai');
  await withEnv({ DBAUDIT_BASE_URL: undefined }, () => assert.equal(new DBaudit({ apiKey: 'k' }).baseURL, 'https://api.dbaudit.ai'));
  await withEnv({ DBAUDIT_BASE_URL: 'http://127.0.0.1:9/' }, () => {
    assert.equal(new DBaudit({ apiKey: 'k' }).baseURL, 'http://127.0.0.1:9');
    assert.equal(new DBaudit({ apiKey: 'k', baseURL: 'https://gw.example/api/' }).baseURL, 'https://gw.example/api');
  });
  assert.throws(() => new DBaudit({ apiKey: 'k', baseURL: 'ftp://x' }), DBauditError);
  assert.throws(() => new DBaudit({ apiKey: 'k', baseURL: 'https://user:pw@x' }), DBauditError);
});

function tokenServer({ lifetime = 3600 } = {}) {
  let issued = 0;
  return stub((request) => {
    if (request.path === '/oauth/token') {
      issued += 1;
      return ok({ access_token: `at-${issued}`, token_type: 'Bearer', expires_in: lifetime, scope: 'read:databases' });
    }
    return ok({ token: request.headers.authorization });
  });
}

test('OAuth client credentials: Basic auth, form body, one fetch for 10 concurrent calls, cached until shortly before expiry', async () => {
  const server = await tokenServer();
  const time = fakeTime();
  const c = new DBaudit({ clientId: 'svc id', clientSecret: 's3cr:et', scope: ['read:databases', 'read:logs'], baseURL: server.url, clock: time.clock, sleep: time.sleep });
  const first = await Promise.all(Array.from({ length: 10 }, () => c.databases.list()));
  assert.equal(server.count('/oauth/token'), 1);
  assert.ok(first.every((r) => r.token === 'Bearer at-1'));
  const fetch = server.requests.find((r) => r.path === '/oauth/token');
  assert.equal(fetch.method, 'POST');
  assert.equal(fetch.headers['content-type'], 'application/x-www-form-urlencoded');
  assert.equal(Buffer.from(fetch.headers.authorization.replace(/^Basic /, ''), 'base64').toString(), 'svc+id:s3cr%3Aet');
  assert.deepEqual(Object.fromEntries(new URLSearchParams(fetch.body)), { grant_type: 'client_credentials', scope: 'read:databases read:logs' });

  time.advance(3_600_000 - 31_000); // still 31 s left: cached
  await c.databases.list();
  assert.equal(server.count('/oauth/token'), 1);
  time.advance(2_000); // 29 s left: refreshed before it expires
  await c.databases.list();
  assert.equal(server.count('/oauth/token'), 2);

  time.advance(7_200_000); // expired
  const results = await Promise.all(Array.from({ length: 10 }, () => c.databases.list()));
  assert.equal(server.count('/oauth/token'), 3, 'ten concurrent calls with an expired token: exactly one token fetch');
  assert.ok(results.every((r) => r.token === 'Bearer at-3'));
});

test('OAuth: a 401 from the gateway renews the token once and retries once', async () => {
  let issued = 0;
  let accept = 'at-2';
  const server = await stub((request) => {
    if (request.path === '/oauth/token') {
      issued += 1;
      return ok({ access_token: `at-${issued}`, token_type: 'Bearer', expires_in: 3600 });
    }
    return request.headers.authorization === `Bearer ${accept}` ? ok({ ok: true }) : expired();
  });
  const time = fakeTime();
  const c = new DBaudit({ clientId: 'id', clientSecret: 'secret', baseURL: server.url, clock: time.clock, sleep: time.sleep });
  assert.deepEqual(await c.policies.create({ name: 'p' }), { ok: true });
  assert.equal(server.count('/oauth/token'), 2);
  assert.equal(server.count('/v1/policies'), 2);
  accept = 'never';
  await assert.rejects(c.databases.list(), AuthenticationError);
  assert.equal(server.count('/oauth/token'), 3, 'renewed once, not in a loop');
  assert.equal(server.count('/v1/databases'), 2);
});

function sessionServer() {
  let generation = 0;
  const live = new Set();
  const refreshTokens = new Set();
  const server = stub((request) => {
    if (request.path === '/v1/auth/logout') {
      live.delete((request.headers.authorization ?? '').replace(/^Bearer /, ''));
      refreshTokens.delete(JSON.parse(request.body || '{}').refresh_token);
      return ok({ logged_out: true });
    }
    if (request.path === '/v1/auth/login' || request.path === '/v1/auth/refresh') {
      const body = JSON.parse(request.body);
      if (request.path === '/v1/auth/login' && body.password !== 'correct horse') return gatewayError(401, 'invalid_credentials', 'Wrong e-mail or password.');
      if (request.path === '/v1/auth/refresh') {
        if (!refreshTokens.delete(body.refresh_token)) return gatewayError(401, 'invalid_grant', 'The refresh token is spent.');
      }
      generation += 1;
      live.add(`access-${generation}`);
      refreshTokens.add(`refresh-${generation}`);
      return ok({ access_token: `access-${generation}`, refresh_token: `refresh-${generation}`, expires_in: 3600, token_type: 'Bearer', scope: 'read:databases' });
    }
    const token = (request.headers.authorization ?? '').replace(/^Bearer /, '');
    return live.has(token) ? ok({ token }) : expired();
  });
  return Promise.all([server]).then(([s]) => Object.assign(s, { revokeAll: () => live.clear(), refreshTokens }));
}

test('user session: login once; ten concurrent calls with an expired session cause exactly one refresh', async () => {
  const server = await sessionServer();
  const time = fakeTime();
  const c = new DBaudit({ email: 'ana@example.com', password: 'correct horse', baseURL: server.url, clock: time.clock, sleep: time.sleep });
  const first = await Promise.all(Array.from({ length: 10 }, () => c.databases.list()));
  assert.equal(server.count('/v1/auth/login'), 1);
  assert.ok(first.every((r) => r.token === 'access-1'));
  assert.deepEqual(JSON.parse(server.requests.find((r) => r.path === '/v1/auth/login').body), { email: 'ana@example.com', password: 'correct horse' });

  time.advance(3_600_000 + 1);
  const results = await Promise.all(Array.from({ length: 10 }, () => c.databases.list()));
  assert.equal(server.count('/v1/auth/refresh'), 1, 'exactly one refresh');
  assert.equal(server.count('/v1/auth/login'), 1);
  assert.deepEqual(JSON.parse(server.requests.find((r) => r.path === '/v1/auth/refresh').body), { refresh_token: 'refresh-1' });
  assert.ok(results.every((r) => r.token === 'access-2'));
});

test('user session: a 401 refreshes once and retries the call once; a spent refresh token logs in again', async () => {
  const server = await sessionServer();
  const time = fakeTime();
  const c = new DBaudit({ email: 'ana@example.com', password: 'correct horse', baseURL: server.url, clock: time.clock, sleep: time.sleep });
  await c.databases.list();
  server.revokeAll(); // the access token is refused before it expires
  const results = await Promise.all(Array.from({ length: 10 }, () => c.databases.list()));
  assert.ok(results.every((r) => r.token === 'access-2'));
  assert.equal(server.count('/v1/auth/refresh'), 1, 'ten 401s with the same token: one refresh');
  assert.equal(server.count('/v1/databases'), 21);

  server.revokeAll();
  server.refreshTokens.clear();
  assert.deepEqual(await c.databases.list(), { token: 'access-3' });
  assert.equal(server.count('/v1/auth/refresh'), 2);
  assert.equal(server.count('/v1/auth/login'), 2, 'refused refresh token: logged in again');
});

test('user session: a wrong password surfaces as AuthenticationError without retries', async () => {
  const server = await sessionServer();
  const c = new DBaudit({ email: 'ana@example.com', password: 'wrong', baseURL: server.url, sleep: fakeTime().sleep });
  await assert.rejects(c.databases.list(), (e) => e instanceof AuthenticationError && e.error === 'invalid_credentials');
  assert.equal(server.count('/v1/auth/login'), 1);
  assert.equal(server.count('/v1/databases'), 0);
});

test('half-given OAuth or user credentials are errors', () => {
  assert.throws(() => new DBaudit({ clientId: 'id' }), /clientSecret/);
  assert.throws(() => new DBaudit({ email: 'a@example.com' }), /password/);
});

test('auth.login makes the session the client credential; auth.refresh renews it; auth.logout ends it', async () => {
  const server = await sessionServer();
  const time = fakeTime();
  const c = new DBaudit({ apiKey: 'dbaudit_test_key', baseURL: server.url, clock: time.clock, sleep: time.sleep });
  await assert.rejects(c.auth.refresh(), MissingCredentialError);
  const answer = await c.auth.login({ email: 'ana@example.com', password: 'correct horse' });
  assert.equal(answer.access_token, 'access-1');
  assert.ok(answer.requestId);
  const sent = (path) => server.requests.filter((r) => r.path === path);
  assert.equal(sent('/v1/auth/login')[0].headers.authorization, undefined);
  assert.deepEqual(await c.databases.list(), { token: 'access-1' });

  const refreshed = await c.auth.refresh();
  assert.equal(refreshed.access_token, 'access-2');
  assert.deepEqual(JSON.parse(sent('/v1/auth/refresh')[0].body), { refresh_token: 'refresh-1' });
  assert.deepEqual(await c.databases.list(), { token: 'access-2' });

  time.advance(3_600_000); // the session renews itself from then on
  assert.deepEqual(await c.databases.list(), { token: 'access-3' });
  assert.deepEqual(JSON.parse(sent('/v1/auth/refresh')[1].body), { refresh_token: 'refresh-2' });

  assert.deepEqual(await c.auth.logout(), { logged_out: true });
  const logout = sent('/v1/auth/logout')[0];
  assert.deepEqual(JSON.parse(logout.body), { refresh_token: 'refresh-3' });
  assert.equal(logout.headers.authorization, 'Bearer access-3');
  // A session begun by auth.login keeps no password: after logout there is nothing to renew.
  await assert.rejects(c.databases.list(), MissingCredentialError);
  assert.equal(sent('/v1/auth/login').length, 1);
});

test('a client built with email and password logs in again after logout', async () => {
  const server = await sessionServer();
  const c = new DBaudit({ email: 'ana@example.com', password: 'correct horse', baseURL: server.url });
  await c.databases.list();
  await c.auth.logout();
  assert.deepEqual(await c.databases.list(), { token: 'access-2' });
  assert.equal(server.count('/v1/auth/login'), 2);
});
