// Resources map to the routes the gateway knows; api keys page with `for await`.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { DBaudit, DBauditError } from '@dbaudit/sdk';
import { startStub, ok } from './helpers.mjs';

const KEYS = Array.from({ length: 7 }, (_, i) => ({ id: `key_${i}`, name: `k${i}` }));
let repeatCursor = false;
const server = await startStub((request) => {
  const url = new URL(request.url, 'http://x');
  if (url.pathname === '/v1/api-keys' && request.method === 'GET') {
    const limit = Number(url.searchParams.get('limit') ?? 100);
    const start = Number(url.searchParams.get('cursor') ?? 0);
    const end = start + limit;
    const next = end < KEYS.length ? String(repeatCursor ? start : end) : null;
    return ok({ api_keys: KEYS.slice(start, end), next_cursor: repeatCursor && start > 0 ? String(start) : next });
  }
  return { status: request.method === 'POST' ? 201 : 200, headers: {}, body: { method: request.method, url: request.url, body: request.body } };
});
after(() => server.close());
const client = new DBaudit({ apiKey: 'k', baseURL: server.url });

test('DB Audit resources: the methods and routes of each', async () => {
  for (const name of ['databases', 'policies', 'alerts']) {
    const r = client[name];
    assert.deepEqual(await r.list({ limit: 5, status: ['a', 'b'], skip: undefined }), { method: 'GET', url: `/v1/${name}?limit=5&status=a&status=b`, body: '' });
    assert.deepEqual(await r.get('id/1'), { method: 'GET', url: `/v1/${name}/id%2F1`, body: '' });
    assert.deepEqual(await r.create({ name: 'x' }), { method: 'POST', url: `/v1/${name}`, body: '{"name":"x"}' });
    assert.deepEqual(await r.update('i1', { name: 'y' }), { method: 'PATCH', url: `/v1/${name}/i1`, body: '{"name":"y"}' });
    assert.deepEqual(await r.delete('i1'), { method: 'DELETE', url: `/v1/${name}/i1`, body: '' });
  }
  assert.deepEqual(await client.logs.list(), { method: 'GET', url: '/v1/logs', body: '' });
  assert.deepEqual(await client.logs.get('l1'), { method: 'GET', url: '/v1/logs/l1', body: '' });
  assert.equal(client.logs.create, undefined);
  assert.equal(client.logs.delete, undefined);
  assert.deepEqual(await client.reports.create({ kind: 'soc2' }), { method: 'POST', url: '/v1/reports', body: '{"kind":"soc2"}' });
  assert.deepEqual(await client.reports.get('r1'), { method: 'GET', url: '/v1/reports/r1', body: '' });
  assert.equal(client.reports.update, undefined);
  assert.equal(client.reports.delete, undefined);
  assert.throws(() => client.databases.get(''), TypeError);
});

test("the gateway's API-key endpoints", async () => {
  assert.deepEqual(await client.apiKeys.create({ name: 'ci', scopes: ['read:logs'] }), { method: 'POST', url: '/v1/api-keys', body: '{"name":"ci","scopes":["read:logs"]}' });
  assert.deepEqual(await client.apiKeys.revoke('key_1'), { method: 'DELETE', url: '/v1/api-keys/key_1', body: '' });
});

test('auth.logout without a session sends no body (the gateway refuses an empty object)', async () => {
  assert.deepEqual(await client.auth.logout(), { method: 'POST', url: '/v1/auth/logout', body: '' });
  const sent = server.requests.at(-1);
  assert.equal(sent.headers['content-type'], undefined);
  assert.equal(sent.headers.authorization, undefined);
});

test('apiKeys.list iterates every page with for await, passing next_cursor back', async () => {
  const before = server.count('/v1/api-keys');
  const seen = [];
  for await (const key of client.apiKeys.list({ limit: 3 })) seen.push(key.id);
  assert.deepEqual(seen, KEYS.map((k) => k.id));
  const pageRequests = server.requests.filter((r) => r.path === '/v1/api-keys').slice(before).map((r) => r.url);
  assert.deepEqual(pageRequests, ['/v1/api-keys?limit=3', '/v1/api-keys?limit=3&cursor=3', '/v1/api-keys?limit=3&cursor=6']);

  const pages = [];
  for await (const page of client.apiKeys.list({ limit: 4 }).pages()) pages.push(page.api_keys.length);
  assert.deepEqual(pages, [4, 3]);
  assert.equal((await client.apiKeys.list()).constructor.name, 'Pager');
  assert.equal((await client.apiKeys.list().toArray()).length, 7);

  // Stops early without fetching the rest.
  const early = server.count('/v1/api-keys');
  for await (const key of client.apiKeys.list({ limit: 2 })) if (key) break;
  assert.equal(server.count('/v1/api-keys') - early, 1);

  repeatCursor = true;
  await assert.rejects(client.apiKeys.list({ limit: 3 }).toArray(), DBauditError);
  repeatCursor = false;
});
