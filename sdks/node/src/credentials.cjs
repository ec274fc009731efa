'use strict';
// The three ways a client authenticates. Each holds its secret in a private field (invisible
// to util.inspect, JSON and toString) and hands out the bearer credential for one request.
// Token credentials share one fetch among every concurrent caller: N calls with an expired
// token cause one token request, and all N wait for it.
const { MissingCredentialError } = require('./errors.cjs');

/** Renew this long before a token expires: 30 s, or a quarter of a short lifetime. */
const REFRESH_MARGIN_MS = 30_000;

/** When a token obtained at `startedMs` (clock read before asking) should be renewed. */
function renewAt(startedMs, expiresInSeconds) {
  if (!Number.isFinite(expiresInSeconds) || expiresInSeconds <= 0) return Infinity;
  const lifetime = expiresInSeconds * 1000;
  return startedMs + lifetime - Math.min(REFRESH_MARGIN_MS, lifetime / 4);
}

/** A long-lived API key. */
class ApiKeyCredential {
  #key;
  constructor(key) {
    this.#key = key;
  }
  get kind() {
    return 'api_key';
  }
  /** Whether a 401 can be cured by getting a new token (never for a key). */
  get renewable() {
    return false;
  }
  async bearer() {
    return this.#key;
  }
  invalidate() {}
  /** Every secret this credential holds, for scrubbing what a server echoes back. */
  secrets() {
    return [this.#key];
  }
}

/**
 * An access token cached until shortly before it expires. `renew` (given by the subclass)
 * fetches a new one; the pending promise is shared so concurrent callers cause one fetch.
 */
class CachedToken {
  #clock;
  #token = null;
  #renewAt = 0;
  #pending = null;
  constructor(clock) {
    this.#clock = clock;
  }
  get renewable() {
    return true;
  }
  async bearer() {
    if (this.#token !== null && this.#clock() < this.#renewAt) return this.#token;
    if (this.#pending === null) {
      this.#pending = (async () => {
        try {
          const started = this.#clock();
          const tokens = await this.renew();
          this.store(tokens, started);
          return tokens.accessToken;
        } finally {
          this.#pending = null;
        }
      })();
    }
    return this.#pending;
  }
  /** Keeps `accessToken` until shortly before `expiresIn` seconds after `startedMs`. */
  store({ accessToken, expiresIn }, startedMs) {
    this.#token = accessToken;
    this.#renewAt = renewAt(startedMs, expiresIn);
  }
  /** Forget `token` after the gateway refused it, unless it was already replaced. */
  invalidate(token) {
    if (token !== null && token === this.#token) this.#renewAt = 0;
  }
  clear() {
    this.#token = null;
    this.#renewAt = 0;
  }
  get accessToken() {
    return this.#token;
  }
  secrets() {
    return [this.#token];
  }
}

/** OAuth 2.0 client credentials: tokens from `POST /oauth/token`. */
class ClientCredentials extends CachedToken {
  #clientId;
  #clientSecret;
  #scope;
  #fetchToken;
  constructor({ clientId, clientSecret, scope, clock, fetchToken }) {
    super(clock);
    this.#clientId = clientId;
    this.#clientSecret = clientSecret;
    this.#scope = scope;
    this.#fetchToken = fetchToken;
  }
  get kind() {
    return 'oauth_client_credentials';
  }
  renew() {
    return this.#fetchToken({ clientId: this.#clientId, clientSecret: this.#clientSecret, scope: this.#scope });
  }
  secrets() {
    return [...super.secrets(), this.#clientSecret];
  }
}

/**
 * A user session of the gateway's own issuer. Renews through `/v1/auth/refresh` (each use
 * spends the refresh token, so only one refresh may be in flight: the shared pending
 * promise guarantees it); logs in with e-mail and password when it has them and there is no
 * session yet or the refresh token was refused. A session begun by `client.auth.login`
 * keeps no password.
 */
class UserSession extends CachedToken {
  #email;
  #password;
  #refreshToken = null;
  #login;
  #refresh;
  constructor({ email = null, password = null, clock, login, refresh }) {
    super(clock);
    this.#email = email;
    this.#password = password;
    this.#login = login;
    this.#refresh = refresh;
  }
  get kind() {
    return 'user_session';
  }
  async renew() {
    let tokens = null;
    if (this.#refreshToken !== null) {
      try {
        tokens = await this.#refresh(this.#refreshToken);
      } catch (error) {
        if (error?.status !== 401 || this.#password === null) throw error;
      }
    }
    if (tokens === null) {
      if (this.#password === null) throw new MissingCredentialError('No session: call client.auth.login({ email, password }) first.');
      tokens = await this.#login(this.#email, this.#password);
    }
    this.#refreshToken = tokens.refreshToken ?? this.#refreshToken;
    return tokens;
  }
  /** Takes over tokens from an explicit login or refresh. */
  adopt(tokens, startedMs) {
    this.store(tokens, startedMs);
    this.#refreshToken = tokens.refreshToken ?? this.#refreshToken;
  }
  get refreshToken() {
    return this.#refreshToken;
  }
  /** Forgets the session (after logout); with a password, the next call logs in again. */
  end() {
    this.clear();
    this.#refreshToken = null;
  }
  secrets() {
    return [...super.secrets(), this.#refreshToken, this.#password];
  }
}

module.exports = { ApiKeyCredential, ClientCredentials, UserSession, REFRESH_MARGIN_MS };
