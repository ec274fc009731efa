'use strict';
// The resources: thin maps from method calls to routes. The DB Audit API's own bodies are
// passed through as JSON; the gateway's endpoints take the field names of docs/endpoints.md.
const { Pager } = require('./pagination.cjs');

const segment = (id) => {
  if (typeof id !== 'string' && typeof id !== 'number') throw new TypeError('id must be a string or a number');
  const text = String(id);
  if (text === '') throw new TypeError('id must not be empty');
  return encodeURIComponent(text);
};

/** A resource of the DB Audit API under `/v1/<name>`, with the methods its routes allow. */
class Resource {
  #request;
  #base;
  constructor(request, base) {
    this.#request = request;
    this.#base = base;
  }
  _list(query, options) {
    return this.#request({ method: 'GET', path: this.#base, query }, options);
  }
  _get(id, options) {
    return this.#request({ method: 'GET', path: `${this.#base}/${segment(id)}` }, options);
  }
  _create(body, options) {
    return this.#request({ method: 'POST', path: this.#base, body }, options);
  }
  _update(id, body, options) {
    return this.#request({ method: 'PATCH', path: `${this.#base}/${segment(id)}`, body }, options);
  }
  _delete(id, options) {
    return this.#request({ method: 'DELETE', path: `${this.#base}/${segment(id)}` }, options);
  }
}

/** list, get, create, update (PATCH), delete. */
class CrudResource extends Resource {
  list(query, options) { return this._list(query, options); }
  get(id, options) { return this._get(id, options); }
  create(body, options) { return this._create(body, options); }
  update(id, body, options) { return this._update(id, body, options); }
  delete(id, options) { return this._delete(id, options); }
}

/** `/v1/logs`: read only. */
class Logs extends Resource {
  list(query, options) { return this._list(query, options); }
  get(id, options) { return this._get(id, options); }
}

/** `/v1/reports`: list, get, create (generate). */
class Reports extends Resource {
  list(query, options) { return this._list(query, options); }
  get(id, options) { return this._get(id, options); }
  create(body, options) { return this._create(body, options); }
}

/** The gateway's API-key management (`/v1/api-keys`). */
class ApiKeys {
  #request;
  constructor(request) {
    this.#request = request;
  }
  /** `POST /v1/api-keys`; the result's `key` is shown this once. */
  create(body, options) {
    return this.#request({ method: 'POST', path: '/v1/api-keys', body }, options);
  }
  /** Every key of every page, newest first: `for await (const key of client.apiKeys.list())`. */
  list(query = {}, options) {
    return new Pager((pageQuery) => this.#request({ method: 'GET', path: '/v1/api-keys', query: pageQuery }, options), 'api_keys', query);
  }
  /** `DELETE /v1/api-keys/{id}`: the revoked record. */
  revoke(id, options) {
    return this.#request({ method: 'DELETE', path: `/v1/api-keys/${segment(id)}` }, options);
  }
}

/**
 * The gateway's session endpoints. `login` makes the session the client's credential
 * (renewed by refresh from then on), `refresh` renews it now, `logout` ends it.
 */
class Auth {
  #handlers;
  constructor(handlers) {
    this.#handlers = handlers;
  }
  login(credentials, options) {
    return this.#handlers.login(credentials, options);
  }
  refresh(body = {}, options) {
    return this.#handlers.refresh(body, options);
  }
  logout(options) {
    return this.#handlers.logout(options);
  }
}

module.exports = { CrudResource, Logs, Reports, ApiKeys, Auth };
