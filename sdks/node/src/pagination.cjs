'use strict';
const { DBauditError } = require('./errors.cjs');

/**
 * The pages of a cursor-paged list (`{"<items>": [...], "next_cursor": "..." | null}`).
 * `for await (const item of pager)` yields every item of every page; `pages()` yields the
 * pages themselves; `toArray()` collects all items. Each iteration starts from the first
 * page again; a page is fetched only when the previous one is used up.
 */
class Pager {
  #fetchPage;
  #itemsKey;
  #query;
  constructor(fetchPage, itemsKey, query) {
    this.#fetchPage = fetchPage;
    this.#itemsKey = itemsKey;
    this.#query = { ...query };
  }

  async *pages() {
    let cursor = this.#query.cursor ?? null;
    const seen = new Set();
    for (;;) {
      const query = { ...this.#query };
      if (cursor !== null) query.cursor = cursor;
      else delete query.cursor;
      const page = await this.#fetchPage(query);
      yield page;
      const next = page?.next_cursor ?? null;
      if (next === null || next === '') return;
      if (seen.has(next)) throw new DBauditError('The server returned a cursor it had returned before; stopping the iteration.');
      seen.add(next);
      cursor = next;
    }
  }

  async *[Symbol.asyncIterator]() {
    for await (const page of this.pages()) {
      const items = page?.[this.#itemsKey];
      if (!Array.isArray(items)) throw new DBauditError(`The page has no "${this.#itemsKey}" list.`);
      yield* items;
    }
  }

  async toArray() {
    const all = [];
    for await (const item of this) all.push(item);
    return all;
  }
}

module.exports = { Pager };
