// A canary secret given as API key, client secret and password must never show in
// util.inspect, toString, JSON, log lines or any error (message, inspect, JSON).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import util from 'node:util';
import { DBaudit } from '@dbaudit/sdk';
import { startStub, gatewayError, ok, fakeTime, withEnv } from './helpers.mjs';

const CANARY = 'dbaudit_live_CANARYcanary0123456789abcdefghijkl';
const forms = [CANARY, 'CANARYcanary', encodeURIComponent(CANARY), Buffer.from(CANARY).toString('base64').slice(0, 24)];

let mode = 'ok';
const server = await startStub((request) => {
  if (request.path === '/oauth/token' || request.path === '/v1/auth/login') {
    return mode === 'token-refused' ? gatewayError(401, 'invalid_client', 'Client authentication failed.') : ok({ access_token: 'at', refresh_token: 'rt', expires_in: 3600 });
  }
  if (mode === 'ok') return ok({ fine: true });
  if (mode === '401') return gatewayError(401, 'invalid_token', 'Unknown key.', { 'www-authenticate': 'Bearer realm="dbaudit", error="invalid_token"' });
  if (mode === '503') return gatewayError(503, 'auth_unavailable', 'Store down.', { 'retry-after': '1' });
  if (mode === 'echo') {
    // A server that echoes what it got (credential and body) into its error.
    const echoed = `${request.headers.authorization} ${request.body}`;
    return { status: 400, headers: { 'x-echo': echoed.replace(/[^\x20-\x7e]/g, '') }, body: { error: 'bad', error_description: echoed, request_id: echoed, detail: [echoed] } };
  }
  return null; // hang: timeout
});
after(() => server.close());

function assertClean(text, where) {
  for (const form of forms) assert.ok(!String(text).includes(form), `${where} contains the canary: ${text}`);
}

function exposeAll(value, where) {
  assertClean(util.inspect(value, { showHidden: true, depth: Infinity, getters: true }), `${where} inspect`);
  assertClean(util.inspect(value, { showHidden: true, depth: Infinity, customInspect: false }), `${where} raw inspect`);
  assertClean(String(value), `${where} toString`);
  assertClean(JSON.stringify(value) ?? '', `${where} JSON`);
  if (value instanceof Error) {
    assertClean(value.message, `${where} message`);
    assertClean(value.stack, `${where} stack`);
    assertClean(util.format('%o', value), `${where} %o`);
  }
}

test('the canary never appears in inspect, toString, JSON, logs or errors', async () => {
  const lines = [];
  const logger = { debug: (line) => lines.push(line) };
  const time = fakeTime();
  const common = { baseURL: server.url, logger, clock: time.clock, sleep: time.sleep, timeout: 100 };
  const clients = [
    new DBaudit({ apiKey: CANARY, ...common }),
    new DBaudit({ clientId: 'svc', clientSecret: CANARY, ...common }),
    new DBaudit({ email: 'ana@example.com', password: CANARY, ...common }),
    await withEnv({ DBAUDIT_API_KEY: CANARY }, () => new DBaudit(common)),
  ];
  for (const [index, client] of clients.entries()) {
    exposeAll(client, `client ${index}`);
    for (const name of ['databases', 'policies', 'alerts', 'logs', 'reports', 'apiKeys', 'auth']) exposeAll(client[name], `client ${index}.${name}`);
    for (const m of ['ok', '401', '503', 'hang', 'echo', 'token-refused']) {
      mode = m;
      let result;
      try {
        result = await client.databases.list();
      } catch (error) {
        result = error;
      }
      exposeAll(result, `client ${index} ${m}`);
      exposeAll(client, `client ${index} after ${m}`);
    }
  }
  // Connection errors too.
  const closed = await startStub(() => ok({}));
  await closed.close();
  const error = await new DBaudit({ apiKey: CANARY, baseURL: closed.url, logger, sleep: time.sleep }).databases.list().catch((e) => e);
  exposeAll(error, 'connection error');
  assert.ok(lines.length > 20, 'the logger was used');
  lines.forEach((line) => assertClean(line, 'log line'));
  // The canary did reach the server, so the test looks at a client that really holds it.
  assert.ok(server.requests.some((r) => r.headers.authorization === `Bearer ${CANARY}`));
  assert.ok(server.requests.some((r) => r.body.includes(CANARY)));
  assert.ok(server.requests.some((r) => r.path === '/oauth/token' && Buffer.from(r.headers.authorization.slice(6), 'base64').toString().includes(CANARY)));
});
