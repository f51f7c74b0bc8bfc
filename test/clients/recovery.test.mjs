// test/clients/recovery.test.mjs
// Account recovery and identity changes with node `pg`, as an application
// would run them, everything through bind parameters:
//   - a password reset requested by an anonymous login role, the token taken
//     by a mail-sender login role (audiotricks_mailer) from at_mail_outbox,
//     the reset, and every old session refused afterwards;
//   - an email change that keeps the old address until the new one is
//     verified (and reserves the new one meanwhile);
//   - a username change.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { connect, freshDatabase, ensureRole, errorOf } from './lib.mjs';
import { withUser } from './with_user.mjs';

const DB = 'clients_recovery';
let su, cleanup, anon, mailer, app, pool;

before(async () => {
  ({ su, cleanup } = await freshDatabase(DB));
  await ensureRole(su, 'recovery_anon', 'LOGIN');
  await ensureRole(su, 'recovery_mailer', 'LOGIN');
  await ensureRole(su, 'recovery_app', 'LOGIN');
  await su.query('GRANT audiotricks_anon TO recovery_anon');
  await su.query('GRANT audiotricks_mailer TO recovery_mailer');
  await su.query('GRANT audiotricks_user TO recovery_app');
  anon = await connect(DB, 'recovery_anon');
  mailer = await connect(DB, 'recovery_mailer');
  app = await connect(DB, 'recovery_app');
  pool = new pg.Pool({
    host: process.env.PGHOST,
    port: process.env.PGPORT ? Number(process.env.PGPORT) : undefined,
    user: 'recovery_app',
    database: DB,
    max: 2,
  });
  await anon.query('SELECT audiotricks.at_register($1, $2, $3)', ['rose@example.com', 'rose', 'Pass-rose-1']);
  await anon.query('SELECT audiotricks.at_register($1, $2, $3)', ['sam@example.com', 'sam', 'Pass-sam-1']);
});

after(async () => {
  await pool.end();
  await cleanup(anon, mailer, app);
});

// what the mail sender does: take the queued mails in a transaction, send
// them, commit
async function takeMail() {
  await mailer.query('BEGIN');
  const { rows } = await mailer.query('SELECT recipient, kind, token FROM audiotricks.at_mail_outbox($1)', [100]);
  await mailer.query('COMMIT');
  return rows;
}

const login = async (l, p) => (await anon.query(
  'SELECT token FROM audiotricks.at_login($1, $2)', [l, p])).rows[0].token;

test('password reset: anon asks, only the mailer sees the token, the reset ends every session', async () => {
  const t1 = await login('rose', 'Pass-rose-1');
  const t2 = await login('rose@example.com', 'Pass-rose-1');
  // the same (empty) answer for a known and an unknown login
  const known = await anon.query('SELECT audiotricks.at_request_password_reset($1) AS r', ['ROSE']);
  const unknown = await anon.query('SELECT audiotricks.at_request_password_reset($1) AS r', ['nobody@example.com']);
  assert.deepEqual(known.rows, unknown.rows);
  assert.deepEqual(known.rows, [{ r: '' }]);
  // anon can read no token or mail; the application role neither
  for (const c of [anon, app]) {
    assert.equal((await errorOf(() => c.query('SELECT * FROM audiotricks.account_tokens')))?.code, '42501');
    assert.equal((await errorOf(() => c.query('SELECT * FROM audiotricks.mail_outbox')))?.code, '42501');
    assert.equal((await errorOf(() => c.query('SELECT * FROM audiotricks.at_mail_outbox()')))?.code, '42501');
  }
  // the mailer gets one mail (the unknown login's decoy is never handed out)
  const mails = await takeMail();
  assert.deepEqual(mails.map((m) => [m.recipient, m.kind]), [['rose@example.com', 'password_reset']]);
  assert.match(mails[0].token, /^[A-Za-z0-9_-]{43}$/);
  // the new password must follow the rules; then the token works once
  assert.equal((await errorOf(() => anon.query('SELECT audiotricks.at_reset_password($1, $2)',
    [mails[0].token, 'weak'])))?.code, '22023');
  await anon.query('SELECT audiotricks.at_reset_password($1, $2)', [mails[0].token, 'Pass-rose-2']);
  assert.equal((await errorOf(() => anon.query('SELECT audiotricks.at_reset_password($1, $2)',
    [mails[0].token, 'Pass-rose-3'])))?.code, '28000', 'used once');
  // every old session is refused
  for (const t of [t1, t2]) {
    const e = await errorOf(() => withUser(pool, t, (c) => c.query('SELECT 1')));
    assert.equal(e?.code, '28000');
  }
  assert.equal((await errorOf(() => login('rose', 'Pass-rose-1')))?.code, '28P01');
  const t3 = await login('rose', 'Pass-rose-2');
  const id = await withUser(pool, t3, async (c) => (await c.query('SELECT audiotricks.at_current_user_id() AS id')).rows[0].id);
  const events = (await su.query(`SELECT event FROM audiotricks.audit_log WHERE user_id = $1
    AND event LIKE 'password_reset%' ORDER BY id`, [id])).rows.map((r) => r.event);
  assert.deepEqual(events, ['password_reset_requested', 'password_reset']);
});

test('email change: the old address stays until the new one is verified', async () => {
  const token = await login('sam', 'Pass-sam-1');
  await takeMail();
  const me = () => withUser(pool, token, async (c) => (await c.query(
    'SELECT email, email_verified_at FROM audiotricks.users')).rows[0]);
  // a wrong password, an address another account has
  let e = await errorOf(() => withUser(pool, token, (c) => c.query(
    'SELECT audiotricks.at_change_email($1, $2)', ['Pass-sam-9', 'sam2@example.com'])));
  assert.equal(e?.code, '28P01');
  e = await errorOf(() => withUser(pool, token, (c) => c.query(
    'SELECT audiotricks.at_change_email($1, $2)', ['Pass-sam-1', 'ROSE@example.com'])));
  assert.equal(e?.code, '23505');
  await withUser(pool, token, (c) => c.query(
    'SELECT audiotricks.at_change_email($1, $2)', ['Pass-sam-1', 'sam2@example.com']));
  assert.equal((await me()).email, 'sam@example.com', 'unchanged until verified');
  await login('sam@example.com', 'Pass-sam-1');
  assert.equal((await errorOf(() => login('sam2@example.com', 'Pass-sam-1')))?.code, '28P01');
  // reserved meanwhile
  e = await errorOf(() => anon.query('SELECT audiotricks.at_register($1, $2, $3)',
    ['SAM2@example.com', 'squatter', 'Pass-squat-1']));
  assert.equal(e?.code, '23505');
  const mails = await takeMail();
  assert.deepEqual(mails.map((m) => [m.recipient, m.kind]), [['sam2@example.com', 'email_change']]);
  await anon.query('SELECT audiotricks.at_verify_email($1)', [mails[0].token]);
  const after = await me();
  assert.equal(after.email, 'sam2@example.com');
  assert.ok(after.email_verified_at instanceof Date, 'the new address is verified');
  await login('sam2@example.com', 'Pass-sam-1');
  assert.equal((await errorOf(() => login('sam@example.com', 'Pass-sam-1')))?.code, '28P01');
  assert.equal((await errorOf(() => anon.query('SELECT audiotricks.at_verify_email($1)', [mails[0].token])))?.code,
    '28000', 'used once');
});

test('username change: password re-checked, unique in any case, audited', async () => {
  const token = await login('sam', 'Pass-sam-1');
  const change = (pw, name) => withUser(pool, token, (c) => c.query(
    'SELECT audiotricks.at_change_username($1, $2)', [pw, name]));
  assert.equal((await errorOf(() => change('Pass-sam-9', 'samuel')))?.code, '28P01');
  assert.equal((await errorOf(() => change('Pass-sam-1', 'ROSE')))?.code, '23505');
  assert.equal((await errorOf(() => change('Pass-sam-1', 'sam uel')))?.code, '22023');
  await change('Pass-sam-1', 'samuel');
  await login('SAMUEL', 'Pass-sam-1');
  assert.equal((await errorOf(() => login('sam', 'Pass-sam-1')))?.code, '28P01');
  const { rows } = await su.query(`SELECT count(*)::int AS n FROM audiotricks.audit_log
    WHERE event = 'username_changed' AND user_id = (SELECT id FROM audiotricks.users WHERE username = 'samuel')`);
  assert.equal(rows[0].n, 1);
});
