'use strict';
// The client: picks the credential, builds each request, and runs the retry loop.
// Every secret lives in a private field of this class or of a credential; the public
// surface (util.inspect, toString, toJSON, log lines, errors) never reads them.
const { VERSION } = require('./version.cjs');
const { DBauditError, MissingCredentialError, APIError, APIConnectionError, APITimeoutError } = require('./errors.cjs');
const { ApiKeyCredential, ClientCredentials, UserSession } = require('./credentials.cjs');
const retry = require('./retry.cjs');
const { parseBody, withRequestId, errorFor, redactor } = require('./response.cjs');
const { CrudResource, Logs, Reports, ApiKeys, Auth } = require('./resources.cjs');

/** The API's documented host. */
const DEFAULT_BASE_URL = 'https://api.dbaudit.ai';
const DEFAULT_TIMEOUT_MS = 60_000;
const DEFAULT_MAX_RETRIES = 2;
const INSPECT = Symbol.for('nodejs.util.inspect.custom');

const given = (value) => value !== undefined && value !== null;
const nonEmpty = (value) => (typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined);

function requireString(value, name) {
  if (typeof value !== 'string' || value === '') throw new MissingCredentialError(`The ${name} option must be a non-empty string.`);
  return value;
}

/** Connection failures that prove the request was never sent (no connection was made). */
const NEVER_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'UND_ERR_CONNECT_TIMEOUT']);

function neverSent(error) {
  const cause = error?.cause;
  const codes = [cause?.code, ...(Array.isArray(cause?.errors) ? cause.errors.map((e) => e?.code) : [])];
  return codes.some((code) => NEVER_SENT_CODES.has(code));
}

function checkTimeout(value, name) {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw new DBauditError(`The ${name} option must be a positive number of milliseconds.`);
  return Math.ceil(value);
}

function checkCount(value, name) {
  if (!Number.isInteger(value) || value < 0) throw new DBauditError(`The ${name} option must be a whole number of 0 or more.`);
  return value;
}

function parseBaseURL(value) {
  let url;
  try {
    url = new URL(String(value));
  } catch {
    throw new DBauditError('The base URL is not a valid URL.');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new DBauditError('The base URL must be http or https.');
  if (url.username || url.password) throw new DBauditError('The base URL must not contain credentials.');
  if (url.search || url.hash) throw new DBauditError('The base URL must not have a query or fragment.');
  return url.href.replace(/\/+$/, '');
}

/** application/x-www-form-urlencoded, as RFC 6749 section 2.3.1 wants for Basic credentials. */
const formEncode = (text) => encodeURIComponent(text).replace(/%20/g, '+');

/** The token fields of a token-endpoint or login answer. */
function tokenFields(data, source) {
  if (data === null || typeof data !== 'object' || typeof data.access_token !== 'string' || data.access_token === '') {
    throw new APIError({ message: `The ${source} answered without an access_token.`, requestId: data?.requestId ?? null });
  }
  return {
    accessToken: data.access_token,
    expiresIn: Number(data.expires_in),
    refreshToken: typeof data.refresh_token === 'string' ? data.refresh_token : null,
  };
}

/** Aborts when either signal does (AbortSignal.any arrived in Node 20.3). */
function anySignal(a, b) {
  if (typeof AbortSignal.any === 'function') return AbortSignal.any([a, b]);
  const controller = new AbortController();
  for (const signal of [a, b]) {
    if (signal.aborted) {
      controller.abort(signal.reason);
      break;
    }
    signal.addEventListener('abort', () => controller.abort(signal.reason), { once: true, signal: controller.signal });
  }
  return controller.signal;
}

/** A client of the DB Audit API behind dbaudit-gateway. */
class DBaudit {
  #baseURL;
  #credential;
  #timeout;
  #maxRetries;
  #maxRetryAfter;
  #idempotencyKeys;
  #fetch;
  #clock;
  #sleep;
  #random;
  #logger;

  constructor(options = {}) {
    if (options === null || typeof options !== 'object') throw new TypeError('options must be an object');
    const env = process.env;
    this.#clock = options.clock ?? Date.now;
    this.#sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.#random = options.random ?? Math.random;
    this.#fetch = options.fetch ?? globalThis.fetch;
    if (typeof this.#fetch !== 'function') throw new DBauditError('No fetch function: use Node 20 or newer, or pass the fetch option.');
    this.#logger = options.logger ?? null;
    this.#timeout = checkTimeout(options.timeout ?? DEFAULT_TIMEOUT_MS, 'timeout');
    this.#maxRetries = checkCount(options.maxRetries ?? DEFAULT_MAX_RETRIES, 'maxRetries');
    this.#maxRetryAfter = checkTimeout(options.maxRetryAfter ?? retry.DEFAULT_MAX_RETRY_AFTER_MS, 'maxRetryAfter');
    this.#idempotencyKeys = options.idempotencyKeys === true;
    this.#baseURL = parseBaseURL(options.baseURL ?? nonEmpty(env.DBAUDIT_BASE_URL) ?? DEFAULT_BASE_URL);
    this.#credential = this.#chooseCredential(options, env);

    const request = (spec, requestOptions) => this.#request(spec, requestOptions);
    this.databases = new CrudResource(request, '/v1/databases');
    this.policies = new CrudResource(request, '/v1/policies');
    this.alerts = new CrudResource(request, '/v1/alerts');
    this.logs = new Logs(request, '/v1/logs');
    this.reports = new Reports(request, '/v1/reports');
    this.apiKeys = new ApiKeys(request);
    this.auth = new Auth({
      login: (credentials, requestOptions) => this.#startSession(credentials, requestOptions),
      refresh: (body, requestOptions) => this.#refreshExplicitly(body, requestOptions),
      logout: (requestOptions) => this.#endSession(requestOptions),
    });
  }

  /** The base URL every request goes to. */
  get baseURL() {
    return this.#baseURL;
  }

  #chooseCredential(options, env) {
    const clock = this.#clock;
    if (given(options.apiKey)) return new ApiKeyCredential(requireString(options.apiKey, 'apiKey'));
    if (given(options.clientId) || given(options.clientSecret)) {
      return new ClientCredentials({
        clientId: requireString(options.clientId, 'clientId'),
        clientSecret: requireString(options.clientSecret, 'clientSecret'),
        scope: Array.isArray(options.scope) ? options.scope.join(' ') : options.scope ?? null,
        clock,
        fetchToken: (client) => this.#fetchClientToken(client),
      });
    }
    if (given(options.email) || given(options.password)) {
      return new UserSession({
        email: requireString(options.email, 'email'),
        password: requireString(options.password, 'password'),
        clock,
        login: (email, password) => this.#login(email, password),
        refresh: (refreshToken) => this.#refreshSession(refreshToken),
      });
    }
    const fromEnv = nonEmpty(env.DBAUDIT_API_KEY);
    if (fromEnv !== undefined) return new ApiKeyCredential(fromEnv);
    throw new MissingCredentialError('No API key: pass the apiKey option or set the DBAUDIT_API_KEY environment variable (or use clientId/clientSecret, or email/password).');
  }

  async #fetchClientToken({ clientId, clientSecret, scope }) {
    this.#log('fetching an OAuth access token (client credentials)');
    const form = new URLSearchParams({ grant_type: 'client_credentials' });
    if (scope) form.set('scope', scope);
    const basic = Buffer.from(`${formEncode(clientId)}:${formEncode(clientSecret)}`).toString('base64');
    const data = await this.#request({
      method: 'POST', path: '/oauth/token', form, auth: false, repeatable: true, headers: { authorization: `Basic ${basic}` },
    });
    return tokenFields(data, 'token endpoint');
  }

  async #login(email, password, options) {
    this.#log('logging in');
    const answer = await this.#request({ method: 'POST', path: '/v1/auth/login', body: { email, password }, auth: false }, options);
    return { ...tokenFields(answer, 'login endpoint'), answer };
  }

  async #refreshSession(refreshToken, options) {
    this.#log('refreshing the session');
    const answer = await this.#request({ method: 'POST', path: '/v1/auth/refresh', body: { refresh_token: refreshToken }, auth: false }, options);
    return { ...tokenFields(answer, 'refresh endpoint'), answer };
  }

  /** The client's session, made from here on (a client built with another credential switches to it). */
  #session() {
    if (!(this.#credential instanceof UserSession)) {
      this.#credential = new UserSession({
        clock: this.#clock,
        login: (email, password) => this.#login(email, password),
        refresh: (refreshToken) => this.#refreshSession(refreshToken),
      });
    }
    return this.#credential;
  }

  /** `auth.login`: logs in and makes the session this client's credential. */
  async #startSession({ email, password } = {}, options) {
    requireString(email, 'email');
    requireString(password, 'password');
    const started = this.#clock();
    const tokens = await this.#login(email, password, options);
    this.#session().adopt(tokens, started);
    return tokens.answer;
  }

  /** `auth.refresh`: renews the client's session now (or with the given refresh token). */
  async #refreshExplicitly({ refresh_token: given } = {}, options) {
    const refreshToken = given ?? (this.#credential instanceof UserSession ? this.#credential.refreshToken : null);
    if (refreshToken === null || refreshToken === undefined) throw new MissingCredentialError('No refresh token: log in first.');
    const started = this.#clock();
    const tokens = await this.#refreshSession(requireString(refreshToken, 'refresh_token'), options);
    this.#session().adopt(tokens, started);
    return tokens.answer;
  }

  /** `auth.logout`: ends the client's session at the gateway (refresh token and access token) and forgets it. */
  async #endSession(options) {
    const session = this.#credential instanceof UserSession ? this.#credential : null;
    const body = {};
    const headers = {};
    if (session?.refreshToken) body.refresh_token = session.refreshToken;
    if (session?.accessToken) headers.authorization = `Bearer ${session.accessToken}`;
    // The gateway takes {"refresh_token"} or no body at all (not an empty object).
    const answer = await this.#request({ method: 'POST', path: '/v1/auth/logout', body: body.refresh_token ? body : undefined, headers, auth: false }, options);
    session?.end();
    return answer;
  }

  #url(path, query) {
    const url = new URL(this.#baseURL + path);
    if (query !== undefined && query !== null) {
      for (const [name, value] of Object.entries(query)) {
        if (!given(value)) continue;
        for (const item of Array.isArray(value) ? value : [value]) url.searchParams.append(name, String(item));
      }
    }
    return url.href;
  }

  #idempotencyKey(method, requested) {
    if (typeof requested === 'string' && requested !== '') return requested;
    if (requested === true) return crypto.randomUUID();
    if (requested === undefined && this.#idempotencyKeys && !retry.IDEMPOTENT_METHODS.has(method)) return crypto.randomUUID();
    return null;
  }

  /**
   * One call: attempts until success, a final error, or the retries are spent. A request
   * that may have reached the upstream is repeated only if repeating it is harmless: an
   * idempotent method, or an Idempotency-Key made once here and sent with every attempt;
   * otherwise only after a refusal the gateway made before forwarding.
   */
  async #request(spec, options = {}) {
    const opts = options ?? {};
    const method = spec.method;
    const maxRetries = opts.maxRetries === undefined ? this.#maxRetries : checkCount(opts.maxRetries, 'maxRetries');
    const timeout = opts.timeout === undefined ? this.#timeout : checkTimeout(opts.timeout, 'timeout');
    const idempotencyKey = this.#idempotencyKey(method, opts.idempotencyKey);
    const repeatable = spec.repeatable === true || retry.IDEMPOTENT_METHODS.has(method) || idempotencyKey !== null;
    const url = this.#url(spec.path, spec.query);
    let body;
    let contentType = null;
    if (spec.form !== undefined) {
      body = spec.form.toString();
      contentType = 'application/x-www-form-urlencoded';
    } else if (spec.body !== undefined) {
      body = JSON.stringify(spec.body);
      contentType = 'application/json';
    }
    let retries = 0;
    let renewed = false;
    for (;;) {
      const bearer = spec.auth === false ? null : await this.#credential.bearer();
      const headers = { accept: 'application/json', 'user-agent': `dbaudit-node/${VERSION}` };
      for (const [name, value] of Object.entries(opts.headers ?? {})) headers[name.toLowerCase()] = value;
      Object.assign(headers, spec.headers);
      if (contentType !== null) headers['content-type'] = contentType;
      if (bearer !== null) headers.authorization = `Bearer ${bearer}`;
      if (idempotencyKey !== null) headers['idempotency-key'] = idempotencyKey;

      let outcome;
      try {
        outcome = await this.#exchange(url, { method, headers, body }, timeout, opts.signal);
      } catch (error) {
        if (error instanceof APIConnectionError && (repeatable || neverSent(error.cause)) && retries < maxRetries) {
          const delay = retry.retryDelayMs({ retry: retries, random: this.#random });
          this.#log(`${method} ${spec.path} failed (${error.message}); retry ${retries + 1} of ${maxRetries} in ${Math.round(delay)} ms`);
          await this.#pause(delay, opts.signal);
          retries += 1;
          continue;
        }
        throw error;
      }

      const { status, headers: responseHeaders, text } = outcome;
      const parsed = parseBody(text, responseHeaders);
      const requestId = responseHeaders.get('x-request-id');
      this.#log(`${method} ${spec.path} -> ${status} (request id ${requestId ?? 'none'})`);
      if (status < 300) return withRequestId(parsed, requestId);

      const refusal = retry.isGatewayRefusal(status, parsed, responseHeaders);
      if (status === 401 && bearer !== null && !renewed && this.#credential.renewable && (repeatable || refusal)) {
        renewed = true;
        this.#credential.invalidate(bearer);
        this.#log(`${method} ${spec.path}: credential refused, renewing it and trying once more`);
        continue;
      }
      if (retry.RETRY_STATUSES.has(status) && retries < maxRetries && (repeatable || refusal)) {
        const delay = retry.retryDelayMs({
          retry: retries,
          retryAfterMs: retry.parseRetryAfter(responseHeaders.get('retry-after'), this.#clock()),
          random: this.#random,
          maxRetryAfterMs: this.#maxRetryAfter,
        });
        this.#log(`${method} ${spec.path} -> ${status}; retry ${retries + 1} of ${maxRetries} in ${Math.round(delay)} ms`);
        await this.#pause(delay, opts.signal);
        retries += 1;
        continue;
      }
      throw errorFor(status, responseHeaders, parsed, this.#clock(), redactor(this.#credential.secrets()));
    }
  }

  /** One attempt under its own timeout (and the caller's signal, if any). */
  async #exchange(url, init, timeoutMs, signal) {
    const timeoutSignal = AbortSignal.timeout(timeoutMs);
    const combined = signal ? anySignal(signal, timeoutSignal) : timeoutSignal;
    try {
      // No redirects: following one could carry the credential somewhere else.
      const response = await this.#fetch(url, { ...init, signal: combined, redirect: 'manual' });
      const text = await response.text();
      return { status: response.status, headers: response.headers, text };
    } catch (error) {
      if (signal?.aborted) throw signal.reason ?? error;
      if (timeoutSignal.aborted) throw new APITimeoutError({ message: `Request timed out after ${timeoutMs} ms.`, cause: error });
      const reason = error?.cause?.code ?? error?.cause?.message ?? error?.message ?? 'unknown';
      throw new APIConnectionError({ message: `Connection error: ${redactor(this.#credential.secrets())(String(reason))}.`, cause: error });
    }
  }

  async #pause(ms, signal) {
    await this.#sleep(ms);
    signal?.throwIfAborted();
  }

  #log(message) {
    this.#logger?.debug?.(`dbaudit: ${message}`);
  }

  #describe() {
    return { baseURL: this.#baseURL, credential: this.#credential.kind, maxRetries: this.#maxRetries, timeout: this.#timeout };
  }

  [INSPECT](depth, inspectOptions, inspect) {
    return `DBaudit ${inspect(this.#describe(), inspectOptions)}`;
  }

  toJSON() {
    return this.#describe();
  }

  toString() {
    return `DBaudit(${this.#baseURL}, ${this.#credential.kind})`;
  }
}

module.exports = { DBaudit, DEFAULT_BASE_URL, DEFAULT_TIMEOUT_MS, DEFAULT_MAX_RETRIES };
