'use strict';
// The three ways a client authenticates. Each holds its secret in a private field (invisible
// to util.inspect, JSON and toString) and hands out the bearer credential for one request.
// Token credentials share one fetch among every concurrent caller: N calls with an expired
// token cause one token request, and all N wait for it.

/** Refresh this long before a token expires (at most half its lifetime). */
const REFRESH_MARGIN_MS = 30_000;

function refreshAt(nowMs, expiresInSeconds) {
  const lifetime = Number.isFinite(expiresInSeconds) && expiresInSeconds > 0 ? expiresInSeconds * 1000 : 3_600_000;
  return nowMs + lifetime - Math.min(REFRESH_MARGIN_MS, lifetime / 2);
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
}

/**
 * An access token cached until shortly before it expires. `renew` (given by the subclass)
 * fetches a new one; the pending promise is shared so concurrent callers cause one fetch.
 */
class CachedToken {
  #clock;
  #token = null;
  #refreshAt = 0;
  #pending = null;
  constructor(clock) {
    this.#clock = clock;
  }
  get renewable() {
    return true;
  }
  async bearer() {
    if (this.#token !== null && this.#clock() < this.#refreshAt) return this.#token;
    if (this.#pending === null) {
      this.#pending = (async () => {
        try {
          const { accessToken, expiresIn } = await this.renew();
          this.#token = accessToken;
          this.#refreshAt = refreshAt(this.#clock(), expiresIn);
          return accessToken;
        } finally {
          this.#pending = null;
        }
      })();
    }
    return this.#pending;
  }
  /** Forget `token` after the gateway refused it, unless it was already replaced. */
  invalidate(token) {
    if (token !== null && token === this.#token) this.#refreshAt = 0;
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
}

/**
 * A user session of the gateway's own issuer: logs in with e-mail and password, then
 * renews through `/v1/auth/refresh` (the refresh token is spent by each use, so only one
 * refresh may be in flight: the shared pending promise guarantees it). When the refresh
 * token is refused, it logs in again.
 */
class UserSession extends CachedToken {
  #email;
  #password;
  #refreshToken = null;
  #login;
  #refresh;
  constructor({ email, password, clock, login, refresh }) {
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
        if (error?.status !== 401) throw error;
      }
    }
    if (tokens === null) tokens = await this.#login(this.#email, this.#password);
    this.#refreshToken = tokens.refreshToken ?? null;
    return tokens;
  }
}

module.exports = { ApiKeyCredential, ClientCredentials, UserSession, REFRESH_MARGIN_MS };
