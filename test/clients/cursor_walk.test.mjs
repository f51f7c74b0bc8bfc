// test/clients/cursor_walk.test.mjs
// Paging with cursors from node `pg`, whose Date has millisecond precision:
// 100 entries, 60 of them added in one transaction (one created_at), walked
// 7 per page by passing each page's last `cursor` back.  Every entry comes
// back exactly once, newest first; the same for search results over more
// than 50 matches; damaged and foreign cursors are refused with 22023.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, freshDatabase, ensureRole, errorOf } from './lib.mjs';

const DB = 'clients_cursor_walk';
let su, cleanup, app, token;
const added = [];                 // ids, oldest first

const ROW_COLUMNS = ['id', 'user_id', 'title', 'audio_url', 'file_size_bytes', 'duration_seconds',
  'transcript', 'summary', 'key_moments', 'processing_options', 'created_at', 'rank', 'cursor'];

before(async () => {
  ({ su, cleanup } = await freshDatabase(DB));
  await ensureRole(su, 'app_cursor', 'LOGIN');
  await su.query('GRANT audiotricks_user TO app_cursor');
  app = await connect(DB, 'app_cursor');
  await app.query('SELECT audiotricks.at_register($1, $2, $3)', ['walk@example.com', 'walker', 'Secret-walk-9']);
  token = (await app.query('SELECT token FROM audiotricks.at_login($1, $2)', ['walker', 'Secret-walk-9'])).rows[0].token;

  // 60 entries in one transaction share one created_at (now() is the
  // transaction's start), then 40 more one transaction each; every fifth
  // mentions "zebra" (20 of the 100), all of them mention "budget"
  const add = async (i) => (await app.query(
    'SELECT audiotricks.at_history_add(title => $1, transcript => $2) AS id',
    [`entry ${i}`, `${i % 5 === 0 ? 'zebra ' : ''}budget review number ${i}`])).rows[0].id;
  await app.query('BEGIN');
  await app.query('SELECT audiotricks.at_authenticate($1)', [token]);
  for (let i = 0; i < 60; i++) added.push(await add(i));
  await app.query('COMMIT');
  for (let i = 60; i < 100; i++) {
    await app.query('BEGIN');
    await app.query('SELECT audiotricks.at_authenticate($1)', [token]);
    added.push(await add(i));
    await app.query('COMMIT');
  }
  const { rows: [r] } = await su.query(
    'SELECT count(DISTINCT created_at)::int AS n FROM audiotricks.audio_history');
  assert.equal(r.n, 41, '60 rows share one created_at, 40 have their own');
});

after(async () => cleanup(app));

// runs fn(client) inside a transaction authenticated with the token
async function asUser(fn) {
  await app.query('BEGIN');
  try {
    await app.query('SELECT audiotricks.at_authenticate($1)', [token]);
    const r = await fn(app);
    await app.query('COMMIT');
    return r;
  } catch (e) {
    await app.query('ROLLBACK');
    throw e;
  }
}

// walks pages of size 7 through call(cursor) until an empty page
async function walk(call, limit) {
  const seen = [];
  let cursor = null;
  for (let pages = 0; ; pages++) {
    assert.ok(pages <= limit, `the walk did not end after ${limit} pages`);
    const rows = await asUser((c) => call(c, cursor));
    if (rows.length === 0) return { seen, pages };
    assert.ok(rows.length <= 7);
    for (const r of rows) {
      assert.equal(typeof r.cursor, 'string');
      assert.match(r.cursor, /^[A-Za-z0-9_-]+$/, 'URL-safe');
    }
    seen.push(...rows);
    cursor = rows[rows.length - 1].cursor;
  }
}

test('a page row has the user-facing columns, rank and cursor, and no search internals', async () => {
  const { fields, rows } = await asUser((c) => c.query('SELECT * FROM audiotricks.at_history_page(1)'));
  assert.deepEqual(fields.map((f) => f.name), ROW_COLUMNS);
  assert.equal(rows[0].rank, null, 'a page has no rank');
});

test('walking at_history_page 7 at a time returns all 100 entries once, newest first', async () => {
  const { seen, pages } = await walk(async (c, cursor) =>
    (await c.query('SELECT id, created_at, cursor FROM audiotricks.at_history_page($1, $2)', [7, cursor])).rows, 20);
  assert.equal(pages, 15, '100 rows, 7 a page: 15 pages, then an empty one');
  const ids = seen.map((r) => r.id);
  assert.equal(new Set(ids).size, 100, 'no row twice');
  assert.deepEqual(ids, [...added].reverse(), 'every row, newest first (UUIDv7 ids are in insertion order)');
});

test('the same walk with created_at round-tripped through a JS Date would lose rows', async () => {
  // the recipe cursors replace: (created_at, id) of the last row, created_at
  // as node `pg` gives it (a Date, milliseconds); this shows why the cursor
  // carries the microseconds itself
  const all = (await su.query(
    'SELECT id, created_at FROM audiotricks.audio_history ORDER BY created_at DESC, id DESC')).rows;
  const last = all[44];             // inside the 60 rows that share created_at
  const { rows: [r] } = await su.query(
    `SELECT count(*)::int AS n FROM audiotricks.audio_history
      WHERE (created_at, id) < ($1::timestamptz, $2::uuid)`, [last.created_at, last.id]);
  assert.ok(r.n < 100 - 45, `the millisecond Date skips rows (${r.n} left instead of 55)`);
});

test('walking at_history_search over 100 matches returns each once, best first', async () => {
  const { seen } = await walk(async (c, cursor) =>
    (await c.query('SELECT id, rank, cursor FROM audiotricks.at_history_search($1, $2, $3)',
      ['budget', 7, cursor])).rows, 20);
  const ids = seen.map((r) => r.id);
  assert.equal(ids.length, 100);
  assert.equal(new Set(ids).size, 100, 'no row twice');
  for (let i = 1; i < seen.length; i++)
    assert.ok(seen[i].rank <= seen[i - 1].rank, `rank does not increase at ${i}`);
});

test('a search with 20 matches of different ranks walks them all once', async () => {
  const { seen } = await walk(async (c, cursor) =>
    (await c.query('SELECT id, title, rank, cursor FROM audiotricks.at_history_search($1, $2, $3)',
      ['zebra or budget', 7, cursor])).rows, 20);
  assert.equal(new Set(seen.map((r) => r.id)).size, 100);
  const zebras = seen.slice(0, 20).map((r) => Number(r.title.split(' ')[1]));
  assert.ok(zebras.every((i) => i % 5 === 0), 'the 20 zebra entries rank first');
});

test('damaged, truncated and foreign cursors are 22023, never another page', async () => {
  const [first] = await asUser(async (c) => (await c.query(
    'SELECT cursor FROM audiotricks.at_history_page(1)')).rows);
  const [found] = await asUser(async (c) => (await c.query(
    'SELECT cursor FROM audiotricks.at_history_search($1, 1)', ['budget'])).rows);
  const flip = (s, i) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
  const cases = [
    ['page', first.cursor.slice(0, -1), 'truncated'],
    ['page', `${first.cursor}A`, 'one character extra'],
    ['page', flip(first.cursor, 10), 'one character changed'],
    ['page', first.cursor.replace(/[-_]/g, '+'), 'not URL-safe'],
    ['page', '', 'empty'],
    ['page', 'not a cursor', 'garbage'],
    ['page', found.cursor, 'a search cursor'],
    ['search', first.cursor, 'a page cursor'],
  ];
  for (const [fn, cursor, what] of cases) {
    if (fn === 'page' && cursor === first.cursor) continue;   // replace found nothing to replace
    const e = await errorOf(() => asUser((c) => fn === 'page'
      ? c.query('SELECT * FROM audiotricks.at_history_page(7, $1)', [cursor])
      : c.query('SELECT * FROM audiotricks.at_history_search($1, 7, $2)', ['budget', cursor])));
    assert.equal(e?.code, '22023', `${fn}: ${what}`);
    assert.match(e?.message ?? '', /cursor/, `${fn}: ${what}: the message names the cursor`);
  }
  const e = await errorOf(() => asUser((c) => c.query(
    'SELECT * FROM audiotricks.at_history_search($1, 7, $2)', ['zebra', found.cursor])));
  assert.equal(e?.code, '22023', 'a search cursor with another query');
});

test('a cursor is only a position: another user gets their own rows after it', async () => {
  await app.query('SELECT audiotricks.at_register($1, $2, $3)', ['other@example.com', 'other', 'Secret-other-9']);
  const other = (await app.query('SELECT token FROM audiotricks.at_login($1, $2)', ['other', 'Secret-other-9'])).rows[0].token;
  const [last] = await asUser(async (c) => (await c.query(
    'SELECT cursor FROM audiotricks.at_history_page(100)')).rows.slice(-1));
  await app.query('BEGIN');
  await app.query('SELECT audiotricks.at_authenticate($1)', [other]);
  const { rows } = await app.query('SELECT * FROM audiotricks.at_history_page(7, $1)', [last.cursor]);
  await app.query('COMMIT');
  assert.deepEqual(rows, [], 'the other user has no rows: none of the walker\'s leak');
});
