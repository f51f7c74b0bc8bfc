// test/clients/pgbouncer_flow.test.mjs
// The node `pg` flow through a real pgbouncer in transaction mode with ONE
// server connection (default_pool_size = 1), so every client below shares
// the same backend: register, log in, authenticated units of work
// (BEGIN; SELECT audiotricks.at_authenticate($1); ...; COMMIT), concurrent
// users, ROLLBACK, logout.  No client ever sees another's identity or rows.
//
// The test starts /usr/sbin/pgbouncer itself on a free loopback port (as
// the postgres user when run as root: pgbouncer refuses root) and stops it
// in `after`, which node's runner calls also when tests fail; an exit
// handler kills it if the process dies first.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, chownSync, rmSync, readFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freshDatabase, ensureRole, errorOf } from './lib.mjs';

const PGBOUNCER = '/usr/sbin/pgbouncer';
const DB = 'clients_pgbouncer';
const ROLE = 'app_bouncer';
let su, cleanup, bouncer, dir, port, pool;
const ids = {};
const tokens = {};

// a TCP port nobody listens on right now
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port: p } = srv.address();
      srv.close(() => resolve(p));
    });
  });
}

const stopBouncer = () => {
  if (bouncer && bouncer.exitCode === null && bouncer.signalCode === null) bouncer.kill('SIGKILL');
};
process.on('exit', stopBouncer);

// a client of the database behind pgbouncer
const bouncerClient = (user = ROLE, database = DB) =>
  new pg.Client({ host: '127.0.0.1', port, user, database, application_name: 'pgbouncer-flow' });

async function startBouncer() {
  dir = mkdtempSync(join(tmpdir(), 'audiotricks-pgbouncer-'));
  port = await freePort();
  writeFileSync(join(dir, 'userlist.txt'), `"${ROLE}" ""\n"pgbouncer_admin" ""\n`);
  writeFileSync(join(dir, 'pgbouncer.ini'), [
    '[databases]',
    `${DB} = host=${process.env.PGHOST} port=${process.env.PGPORT} dbname=${DB}`,
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    'unix_socket_dir =',
    'auth_type = trust',
    `auth_file = ${join(dir, 'userlist.txt')}`,
    'admin_users = pgbouncer_admin',
    'pool_mode = transaction',
    'default_pool_size = 1',
    'min_pool_size = 0',
    'reserve_pool_size = 0',
    'max_client_conn = 20',
    // no reset query: transaction mode never runs one between clients
    'server_reset_query =',
    `logfile = ${join(dir, 'pgbouncer.log')}`,
    `pidfile = ${join(dir, 'pgbouncer.pid')}`,
    '',
  ].join('\n'));
  const args = [];
  if (process.getuid?.() === 0) {
    // pgbouncer will not run as root: -u switches to postgres at start-up
    const uid = Number(execFileSync('id', ['-u', 'postgres']));
    const gid = Number(execFileSync('id', ['-g', 'postgres']));
    for (const f of ['', 'userlist.txt', 'pgbouncer.ini']) chownSync(join(dir, f), uid, gid);
    args.push('-u', 'postgres');
  }
  let stderr = '';
  bouncer = spawn(PGBOUNCER, [...args, join(dir, 'pgbouncer.ini')], { stdio: ['ignore', 'ignore', 'pipe'] });
  bouncer.stderr.on('data', (d) => { stderr += d; });
  // wait (at most 15 s) until it accepts connections
  for (let i = 0; ; i++) {
    const c = bouncerClient();
    try {
      await c.connect();
      await c.query('SELECT 1');
      await c.end();
      return;
    } catch (e) {
      await c.end().catch(() => {});
      if (bouncer.exitCode !== null || i >= 150) {
        const log = existsSync(join(dir, 'pgbouncer.log')) ? readFileSync(join(dir, 'pgbouncer.log'), 'utf8') : '';
        throw new Error(`pgbouncer did not start: ${e.message}\n${stderr}\n${log}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

before(async () => {
  assert.ok(existsSync(PGBOUNCER), `${PGBOUNCER} is installed`);
  ({ su, cleanup } = await freshDatabase(DB));
  await ensureRole(su, ROLE, 'LOGIN');
  await su.query(`GRANT audiotricks_user TO ${ROLE}`);
  await startBouncer();
  pool = new pg.Pool({ host: '127.0.0.1', port, user: ROLE, database: DB, max: 4 });
});

after(async () => {
  await pool?.end().catch(() => {});
  if (bouncer && bouncer.exitCode === null) {
    const exited = new Promise((r) => bouncer.once('exit', r));
    bouncer.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    stopBouncer();
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
  await cleanup();
});

test('pgbouncer runs in transaction mode', async () => {
  const admin = bouncerClient('pgbouncer_admin', 'pgbouncer');
  await admin.connect();
  try {
    const { rows } = await admin.query('SHOW CONFIG');
    const conf = Object.fromEntries(rows.map((r) => [r.key, r.value]));
    assert.equal(conf.pool_mode, 'transaction');
    assert.equal(conf.default_pool_size, '1');
  } finally {
    await admin.end();
  }
});

test('register and log in through pgbouncer', async () => {
  for (const name of ['hana', 'ivan']) {
    const { rows: [{ id }] } = await pool.query('SELECT audiotricks.at_register($1, $2, $3) AS id',
      [`${name}@example.com`, name, `Bouncer-${name}-5`]);
    ids[name] = id;
    const { rows: [row] } = await pool.query(
      'SELECT token, user_id FROM audiotricks.at_login($1, $2)', [name, `Bouncer-${name}-5`]);
    assert.equal(row.user_id, id);
    tokens[name] = row.token;
  }
  const e = await errorOf(() => pool.query('SELECT * FROM audiotricks.at_login($1, $2)',
    ['hana', 'Wrong-pass-5']));
  assert.equal(e?.code, '28P01');
});

// one unit of work as `name`: BEGIN; at_authenticate; fn(client); COMMIT
async function asUser(name, fn) {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const { rows: [{ id }] } = await client.query('SELECT audiotricks.at_authenticate($1) AS id', [tokens[name]]);
    assert.equal(id, ids[name]);
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (e) {
    await client.query('ROLLBACK').catch(() => {});
    throw e;
  } finally {
    client.release();
  }
}

test('an authenticated unit of work, then another client on the same backend sees nothing', async () => {
  const pid = await asUser('hana', async (c) => {
    await c.query('INSERT INTO audiotricks.audio_history (title) VALUES ($1)', ['hana via pgbouncer']);
    const { rows } = await c.query(
      'SELECT user_id, title FROM audiotricks.audio_history ORDER BY created_at DESC, id DESC LIMIT 20');
    assert.deepEqual(rows, [{ user_id: ids.hana, title: 'hana via pgbouncer' }]);
    return (await c.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
  });

  // a separate client connection to pgbouncer: same (only) server backend
  const other = bouncerClient();
  await other.connect();
  try {
    await other.query('BEGIN');
    const { rows: [r] } = await other.query(
      'SELECT pg_backend_pid() AS pid, audiotricks.at_current_user_id() AS id, '
      + '(SELECT count(*)::int FROM audiotricks.audio_history) AS n');
    await other.query('COMMIT');
    assert.equal(r.pid, pid, 'the same server connection');
    assert.equal(r.id, null, 'no identity carried over');
    assert.equal(r.n, 0, 'no rows visible');
  } finally {
    await other.end();
  }
});

test('concurrent users share one backend and stay apart', async () => {
  const ROUNDS = 40;
  const pids = new Set();
  const worker = async (name) => {
    for (let i = 0; i < ROUNDS; i++) {
      if (i % 4 === 3) {
        // an unauthenticated transaction in between
        const { rows: [r] } = await pool.query(
          'SELECT audiotricks.at_current_user_id() AS id, (SELECT count(*)::int FROM audiotricks.audio_history) AS n');
        assert.deepEqual(r, { id: null, n: 0 }, `${name} round ${i} without identity`);
        continue;
      }
      await asUser(name, async (c) => {
        await c.query('INSERT INTO audiotricks.audio_history (title) VALUES ($1)', [`${name} ${i}`]);
        const { rows } = await c.query(
          'SELECT DISTINCT user_id, audiotricks.at_current_user_id() AS me, pg_backend_pid() AS pid FROM audiotricks.audio_history');
        assert.equal(rows.length, 1, `${name} round ${i} sees one user's rows`);
        assert.equal(rows[0].user_id, ids[name]);
        assert.equal(rows[0].me, ids[name]);
        pids.add(rows[0].pid);
      });
    }
  };
  await Promise.all([worker('hana'), worker('ivan')]);
  assert.equal(pids.size, 1, 'every transaction ran on the one server connection');
  const { rows } = await su.query(
    'SELECT u.username, count(*)::int AS n FROM audiotricks.audio_history h JOIN audiotricks.users u ON u.id = h.user_id GROUP BY 1 ORDER BY 1');
  assert.deepEqual(rows, [{ username: 'hana', n: 1 + 30 }, { username: 'ivan', n: 30 }]);
});

test('ROLLBACK ends the identity and the work', async () => {
  const e = await errorOf(() => asUser('ivan', async (c) => {
    await c.query('INSERT INTO audiotricks.audio_history (title) VALUES ($1)', ['never']);
    throw new Error('abandon');
  }));
  assert.equal(e?.message, 'abandon');
  const { rows: [r] } = await pool.query('SELECT audiotricks.at_current_user_id() AS id');
  assert.equal(r.id, null);
  assert.equal((await su.query(
    "SELECT count(*)::int AS n FROM audiotricks.audio_history WHERE title = 'never'")).rows[0].n, 0);
});

test('logout through pgbouncer; the revoked token is refused', async () => {
  const { rows: [{ ok }] } = await pool.query('SELECT audiotricks.at_logout($1) AS ok', [tokens.ivan]);
  assert.equal(ok, true);
  const e = await errorOf(() => asUser('ivan', async () => {}));
  assert.equal(e?.code, '28000');
  // hana is unaffected
  const n = await asUser('hana', async (c) =>
    (await c.query('SELECT count(*)::int AS n FROM audiotricks.audio_history')).rows[0].n);
  assert.equal(n, 31);
});
