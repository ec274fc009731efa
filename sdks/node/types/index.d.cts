// Hand-written types of @dbaudit/sdk (both the `import` and the `require` entry).
// Checked with `tsc --noEmit -p test/types/tsconfig.json` against test/types/usage.mts and usage.cts.

/** Any JSON value the DB Audit API sends or accepts. */
export type JSONValue = string | number | boolean | null | JSONValue[] | { [key: string]: JSONValue };
export type JSONObject = { [key: string]: JSONValue };
/** A request body: any object or array that JSON.stringify can write (interfaces included). */
export type RequestBody = object;

/** A result with the `X-Request-Id` of its response (a non-enumerable property). */
export type WithRequestId<T> = T & { readonly requestId: string | null };

/** A query string: `undefined` and `null` values are left out, arrays repeat the name. */
export type Query = Record<string, string | number | boolean | null | undefined | ReadonlyArray<string | number | boolean>>;

/** Where log lines go (e.g. `console`). Lines never contain a credential. */
export interface Logger {
  debug?(message: string): void;
}

export interface ClientOptions {
  /** An API key; else `DBAUDIT_API_KEY`. */
  apiKey?: string;
  /** OAuth 2.0 client credentials: tokens from `POST /oauth/token`, cached and renewed. */
  clientId?: string;
  clientSecret?: string;
  /** Scopes to ask the token endpoint for (space-separated, or a list). */
  scope?: string | readonly string[];
  /** A user of the gateway's own issuer: logs in, refreshes before expiry or after a 401. */
  email?: string;
  password?: string;
  /** Else `DBAUDIT_BASE_URL`, else `https://api.dbaudit.ai`. */
  baseURL?: string;
  /** Milliseconds per attempt (default 60000). */
  timeout?: number;
  /** Retries after the first attempt (default 2). */
  maxRetries?: number;
  /** The longest `Retry-After` honoured, in milliseconds (default 60000); longer ones are cut to it. */
  maxRetryAfter?: number;
  /** Send an SDK-made `Idempotency-Key` with every POST, PATCH and DELETE, making them retryable. */
  idempotencyKeys?: boolean;
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
  /** Milliseconds since the epoch (default `Date.now`): token expiry and `Retry-After` dates. */
  clock?: () => number;
  /** Waits between attempts (default: a timer). */
  sleep?: (ms: number) => Promise<void>;
  /** A number in [0, 1) for the backoff jitter (default `Math.random`). */
  random?: () => number;
  logger?: Logger;
}

export interface RequestOptions {
  /** Milliseconds per attempt, instead of the client's. */
  timeout?: number;
  /** Retries, instead of the client's. */
  maxRetries?: number;
  /** Cancels the call. */
  signal?: AbortSignal;
  /** Extra request headers. */
  headers?: Record<string, string>;
  /**
   * `true`: the SDK makes an `Idempotency-Key` once and sends it with every attempt, so the
   * call may be retried; a string: that key; `false`: none, even with `idempotencyKeys`.
   */
  idempotencyKey?: boolean | string;
}

/** A DB Audit API resource with every route the gateway knows for it. */
export interface CrudResource {
  list(query?: Query, options?: RequestOptions): Promise<WithRequestId<JSONValue>>;
  get(id: string | number, options?: RequestOptions): Promise<WithRequestId<JSONValue>>;
  create(body: RequestBody, options?: RequestOptions): Promise<WithRequestId<JSONValue>>;
  update(id: string | number, body: RequestBody, options?: RequestOptions): Promise<WithRequestId<JSONValue>>;
  delete(id: string | number, options?: RequestOptions): Promise<WithRequestId<JSONValue>>;
}

export interface LogsResource {
  list(query?: Query, options?: RequestOptions): Promise<WithRequestId<JSONValue>>;
  get(id: string | number, options?: RequestOptions): Promise<WithRequestId<JSONValue>>;
}

export interface ReportsResource extends LogsResource {
  create(body: RequestBody, options?: RequestOptions): Promise<WithRequestId<JSONValue>>;
}

/** An API-key record (`docs/endpoints.md`); it never contains the key. */
export interface ApiKeyRecord {
  id: string;
  name: string;
  scopes: string[];
  owner: string;
  created_at: number | null;
  expires_at: number | null;
  last_used_at: number | null;
  revoked: boolean;
  last4: string;
  environment: 'live' | 'test';
  rate_limit?: string;
}

export interface CreatedApiKey extends ApiKeyRecord {
  /** The key itself, shown this once. */
  key: string;
}

export interface ApiKeyCreateParams {
  name: string;
  scopes: string[];
  expires_in?: number | string;
  test?: boolean;
  rate_limit?: string;
}

export interface ApiKeyPage {
  api_keys: ApiKeyRecord[];
  next_cursor: string | null;
}

/** Every item of a cursor-paged list; pages are fetched as the iteration needs them. */
export declare class Pager<Item, Page> implements AsyncIterable<Item> {
  private constructor();
  [Symbol.asyncIterator](): AsyncIterator<Item>;
  pages(): AsyncIterable<WithRequestId<Page>>;
  toArray(): Promise<Item[]>;
}

export interface ApiKeysResource {
  create(body: ApiKeyCreateParams, options?: RequestOptions): Promise<WithRequestId<CreatedApiKey>>;
  list(query?: { limit?: number; cursor?: string }, options?: RequestOptions): Pager<ApiKeyRecord, ApiKeyPage>;
  revoke(id: string, options?: RequestOptions): Promise<WithRequestId<ApiKeyRecord>>;
}

export interface TokenPair {
  access_token: string;
  refresh_token: string;
  expires_in: number;
  token_type: 'Bearer';
  scope?: string;
}

/**
 * The gateway's session endpoints. `login` makes the session the client's credential (it is
 * refreshed before expiry or after a 401 from then on); `refresh` renews it now (or with the
 * given refresh token); `logout` ends it at the gateway and forgets it.
 */
export interface AuthResource {
  login(credentials: { email: string; password: string }, options?: RequestOptions): Promise<WithRequestId<TokenPair>>;
  refresh(body?: { refresh_token?: string }, options?: RequestOptions): Promise<WithRequestId<TokenPair>>;
  logout(options?: RequestOptions): Promise<WithRequestId<{ logged_out: boolean }>>;
}

/** A client of the DB Audit API behind dbaudit-gateway. */
export declare class DBaudit {
  /** Throws `MissingCredentialError` naming `DBAUDIT_API_KEY` when no credential is given or set. */
  constructor(options?: ClientOptions);
  readonly baseURL: string;
  readonly databases: CrudResource;
  readonly policies: CrudResource;
  readonly alerts: CrudResource;
  readonly logs: LogsResource;
  readonly reports: ReportsResource;
  readonly apiKeys: ApiKeysResource;
  readonly auth: AuthResource;
  toJSON(): { baseURL: string; credential: 'api_key' | 'oauth_client_credentials' | 'user_session'; maxRetries: number; timeout: number };
  toString(): string;
}

export declare const DEFAULT_BASE_URL: string;
export declare const VERSION: string;

export declare class DBauditError extends Error {}
/** No credential given or set (the message names `DBAUDIT_API_KEY`), or no session to renew. */
export declare class MissingCredentialError extends DBauditError {}

export interface APIErrorFields {
  message?: string;
  status?: number | null;
  error?: string | null;
  errorDescription?: string | null;
  requestId?: string | null;
  headers?: Headers | null;
  body?: JSONValue | string | null;
  cause?: unknown;
}

export declare class APIError extends DBauditError {
  constructor(fields?: APIErrorFields);
  /** The HTTP status; null when no response arrived. */
  readonly status: number | null;
  /** The body's `error` code (for 401, the RFC 6750 code of `WWW-Authenticate`). */
  readonly error: string | null;
  readonly errorDescription: string | null;
  readonly requestId: string | null;
  readonly headers: Headers | null;
  readonly body: JSONValue | string | null;
}
export declare class AuthenticationError extends APIError {}
export declare class PermissionDeniedError extends APIError {
  /** The missing scope named by `WWW-Authenticate`. */
  readonly scope: string | null;
}
export declare class NotFoundError extends APIError {}
export declare class RateLimitError extends APIError {
  /** `Retry-After` in seconds. */
  readonly retryAfter: number | null;
}
export declare class ServiceUnavailableError extends APIError {
  readonly retryAfter: number | null;
}
export declare class APIConnectionError extends APIError {
  readonly status: null;
}
export declare class APITimeoutError extends APIConnectionError {}
