// test/clients/pg_flow.test.mjs
// The plain-application-role flow with node `pg`, everything through bind
// parameters: register, log in, and units of work that authenticate inside
// their own transaction; the identity is gone after COMMIT and after
// ROLLBACK on the same connection; a named prepared statement reused across
// transactions and identities (generic plan) stays correct.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { connect, freshDatabase, ensureRole, errorOf } from './lib.mjs';
import { withUser } from './with_user.mjs';

const DB = 'clients_pg_flow';
let su, cleanup, app;
const tokens = {};
const ids = {};

before(async () => {
  ({ su, cleanup } = await freshDatabase(DB));
  // the plain application role of README's install section
  await ensureRole(su, 'app_flow', 'LOGIN');
  await su.query('GRANT audiotricks_user TO app_flow');
  app = await connect(DB, 'app_flow');
});

after(async () => cleanup(app));

const one = async (sql, params) => (await app.query(sql, params)).rows[0];
const whoami = async () => (await one('SELECT audiotricks.at_current_user_id() AS id')).id;

test('the application role is not privileged', async () => {
  const r = (await su.query(
    "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = 'app_flow'")).rows[0];
  assert.deepEqual(r, { rolsuper: false, rolbypassrls: false });
});

test('register with bind parameters', async () => {
  for (const name of ['erin', 'frank']) {
    const { id } = await one('SELECT audiotricks.at_register($1, $2, $3) AS id',
      [`${name}@example.com`, name, `Secret-${name}-9`]);
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'a UUIDv7');
    ids[name] = id;
  }
  const e = await errorOf(() => app.query('SELECT audiotricks.at_register($1, $2, $3)',
    ['ERIN@example.com', 'erin2', 'Secret-erin-9']));
  assert.equal(e?.code, '23505');
  assert.equal(e?.message, 'email already registered');
  const e2 = await errorOf(() => app.query('SELECT audiotricks.at_register($1, $2, $3)',
    ['gina@example.com', 'gina', 'alllowercase1']));
  assert.equal(e2?.code, '22023');
});

test('login by username or email, any case', async () => {
  for (const [name, login] of [['erin', 'Erin'], ['frank', 'FRANK@example.com']]) {
    const r = await one(
      'SELECT token, user_id, session_id, expires_at FROM audiotricks.at_login($1, $2)',
      [login, `Secret-${name}-9`]);
    assert.equal(r.user_id, ids[name]);
    assert.ok(r.expires_at > new Date());
    tokens[name] = r.token;
  }
  const e = await errorOf(() => app.query('SELECT * FROM audiotricks.at_login($1, $2)',
    ['erin', 'Wrong-pass-1']));
  assert.equal(e?.code, '28P01');
  assert.equal(e?.message, 'invalid login or password');
});

test('an authenticated unit of work, then the identity is gone after COMMIT', async () => {
  await app.query('BEGIN');
  const { id } = await one('SELECT audiotricks.at_authenticate($1) AS id', [tokens.erin]);
  assert.equal(id, ids.erin);
  assert.equal(await whoami(), ids.erin);
  const ins = await one(
    'INSERT INTO audiotricks.audio_history (title, duration_seconds) VALUES ($1, $2) RETURNING user_id',
    ['standup', 61]);
  assert.equal(ins.user_id, ids.erin, 'user_id defaults to the identity');
  assert.equal((await one('SELECT count(*)::int AS n FROM audiotricks.audio_history')).n, 1);
  assert.equal((await one('SELECT count(*)::int AS n FROM audiotricks.users')).n, 1);
  await app.query('COMMIT');

  assert.equal(await whoami(), null, 'no identity after COMMIT');
  assert.equal((await one('SELECT count(*)::int AS n FROM audiotricks.audio_history')).n, 0);
  assert.equal((await one('SELECT count(*)::int AS n FROM audiotricks.users')).n, 0);
});

test('the identity is gone after ROLLBACK, and after an error', async () => {
  await app.query('BEGIN');
  await app.query('SELECT audiotricks.at_authenticate($1)', [tokens.frank]);
  await app.query('INSERT INTO audiotricks.audio_history (title) VALUES ($1)', ['draft']);
  assert.equal(await whoami(), ids.frank);
  await app.query('ROLLBACK');
  assert.equal(await whoami(), null, 'no identity after ROLLBACK');
  assert.equal((await su.query(
    'SELECT count(*)::int AS n FROM audiotricks.audio_history WHERE user_id = $1', [ids.frank])).rows[0].n,
  0, 'the rolled-back insert is gone');

  await app.query('BEGIN');
  await app.query('SELECT audiotricks.at_authenticate($1)', [tokens.frank]);
  const e = await errorOf(() => app.query('SELECT 1 / $1::int', [0]));
  assert.equal(e?.code, '22012');
  await app.query('ROLLBACK');
  assert.equal(await whoami(), null, 'no identity after a failed transaction');
});

test('outside a transaction block at_authenticate lasts one statement', async () => {
  await app.query('SELECT audiotricks.at_authenticate($1)', [tokens.erin]);
  assert.equal(await whoami(), null);
});

test('row-level security as the application role', async () => {
  await app.query('BEGIN');
  await app.query('SELECT audiotricks.at_authenticate($1)', [tokens.frank]);
  // frank cannot write rows for erin
  const e = await errorOf(() => app.query(
    'INSERT INTO audiotricks.audio_history (user_id, title) VALUES ($1, $2)', [ids.erin, 'x']));
  assert.equal(e?.code, '42501');
  await app.query('ROLLBACK');
  await app.query('BEGIN');
  await app.query('SELECT audiotricks.at_authenticate($1)', [tokens.frank]);
  const d = await app.query('DELETE FROM audiotricks.audio_history');
  assert.equal(d.rowCount, 0, "frank's DELETE does not reach erin's row");
  const s = await errorOf(() => app.query('SELECT password_hash FROM audiotricks.users'));
  assert.equal(s?.code, '42501', 'password_hash is not readable');
  await app.query('ROLLBACK');
  assert.equal((await su.query('SELECT count(*)::int AS n FROM audiotricks.audio_history')).rows[0].n, 1);
});

test('a named prepared statement reused across transactions and identities', async () => {
  const history = {
    name: 'history_page',
    text: 'SELECT user_id, title FROM audiotricks.audio_history ORDER BY created_at DESC, id DESC LIMIT $1',
  };
  // more than 5 executions: the plan cache switches to a generic plan
  for (let i = 0; i < 12; i++) {
    const who = ['erin', 'frank', null][i % 3];
    await app.query('BEGIN');
    if (who) await app.query('SELECT audiotricks.at_authenticate($1)', [tokens[who]]);
    const { rows } = await app.query({ ...history, values: [20] });
    await app.query('COMMIT');
    if (who === 'erin') assert.deepEqual(rows, [{ user_id: ids.erin, title: 'standup' }], `run ${i}`);
    else assert.deepEqual(rows, [], `run ${i} (${who ?? 'no identity'})`);
  }
});

test('request.headers counts only when set for the transaction', async () => {
  const headers = JSON.stringify({ authorization: `Bearer ${tokens.erin}` });
  await app.query('BEGIN');
  await app.query("SELECT set_config('request.headers', $1, true)", [headers]);
  assert.equal(await whoami(), ids.erin, 'transaction-local, as PostgREST sets it');
  await app.query('COMMIT');
  assert.equal(await whoami(), null);
  // a session-level value would outlive the transaction on a pooled connection
  await app.query("SELECT set_config('request.headers', $1, false)", [headers]);
  try {
    await app.query('BEGIN');
    assert.equal(await whoami(), null, 'session-level request.headers is ignored');
    await app.query('COMMIT');
  } finally {
    await app.query('RESET request.headers');
  }
});

test('a bad token is 28000 and leaves no identity', async () => {
  await app.query('BEGIN');
  const e = await errorOf(() => app.query('SELECT audiotricks.at_authenticate($1)',
    [`${tokens.erin.slice(0, -1)}${tokens.erin.endsWith('A') ? 'B' : 'A'}`]));
  await app.query('ROLLBACK');
  assert.equal(e?.code, '28000');
  assert.equal(await whoami(), null);
});

test('withUser: a unit of work through a pool, then the connection carries nothing', async () => {
  const pool = new pg.Pool({
    host: process.env.PGHOST,
    port: process.env.PGPORT ? Number(process.env.PGPORT) : undefined,
    user: 'app_flow',
    database: DB,
    max: 1,                     // one connection: the next query reuses it
  });
  try {
    const rows = await withUser(pool, tokens.erin, async (client) => {
      await client.query('INSERT INTO audiotricks.audio_history (title) VALUES ($1)', ['via withUser']);
      return (await client.query(
        'SELECT user_id, title FROM audiotricks.audio_history ORDER BY created_at DESC, id DESC LIMIT 20')).rows;
    });
    assert.ok(rows.length >= 1 && rows.every((r) => r.user_id === ids.erin), 'only erin\'s rows');
    assert.equal(rows[0].title, 'via withUser');
    const { rows: [r] } = await pool.query('SELECT audiotricks.at_current_user_id() AS id');
    assert.equal(r.id, null, 'no identity after withUser');
    const e = await errorOf(() => withUser(pool, `${tokens.erin}x`, async () => 'never'));
    assert.equal(e?.code, '28000', 'a bad token rejects with 28000');
    const { rows: [after] } = await pool.query('SELECT audiotricks.at_current_user_id() AS id');
    assert.equal(after.id, null);
  } finally {
    await pool.end();
  }
});

test('logout with bind parameters ends the token', async () => {
  assert.equal((await one('SELECT audiotricks.at_logout($1) AS ok', [tokens.frank])).ok, true);
  await app.query('BEGIN');
  const e = await errorOf(() => app.query('SELECT audiotricks.at_authenticate($1)', [tokens.frank]));
  await app.query('ROLLBACK');
  assert.equal(e?.code, '28000');
});
