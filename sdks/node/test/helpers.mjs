// Test doubles: a counting HTTP stub on loopback, a fake clock and a recording sleep.
import http from 'node:http';
import { randomUUID } from 'node:crypto';

/**
 * An HTTP server on 127.0.0.1 that records every request and answers with `handler(request)`
 * ({status, headers, body}; a body object is sent as JSON). `handler` may return a promise,
 * `null` to never answer (for timeouts), or `'reset'` to drop the connection unanswered.
 */
export async function startStub(handler) {
  const requests = [];
  const held = new Set();
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', async () => {
      const record = { method: req.method, url: req.url, path: req.url.split('?')[0], headers: req.headers, body: Buffer.concat(chunks).toString() };
      requests.push(record);
      const answer = await handler(record, requests.length);
      if (answer === null) {
        held.add(res);
        return;
      }
      if (answer === 'reset') {
        req.socket.destroy();
        return;
      }
      const { status = 200, headers = {}, body = null } = answer;
      const text = body === null ? '' : typeof body === 'string' ? body : JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
      res.end(text);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    count: (path) => requests.filter((r) => r.path === path).length,
    async close() {
      for (const res of held) res.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** An error as the gateway writes its own: JSON body and X-Request-Id with one id. */
export function gatewayError(status, error, description = 'Refused.', headers = {}) {
  const requestId = `req-${randomUUID()}`;
  return { status, headers: { 'x-request-id': requestId, 'cache-control': 'no-store', ...headers }, body: { error, error_description: description, request_id: requestId } };
}

/** A success with a request id. */
export function ok(body, requestId = `req-${randomUUID()}`) {
  return { status: 200, headers: { 'x-request-id': requestId }, body };
}

/** Injected time: `clock()` reads it, `advance(ms)` moves it; `sleep` records and returns at once. */
export function fakeTime(start = 1_800_000_000_000) {
  let now = start;
  const delays = [];
  return {
    clock: () => now,
    advance: (ms) => { now += ms; },
    delays,
    sleep: async (ms) => { delays.push(ms); now += ms; },
  };
}

/** Runs `fn` with environment variables set (undefined removes one), then restores them. */
export async function withEnv(vars, fn) {
  const saved = {};
  for (const [name, value] of Object.entries(vars)) {
    saved[name] = process.env[name];
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  try {
    return await fn();
  } finally {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}
