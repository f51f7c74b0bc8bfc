// test/clients/postgrest_replay.test.mjs
// Replays, over one `authenticator` connection, what PostgREST 12 sends for
// each HTTP request (see postgrest.conf beside this file; db-schemas is
// audiotricks_api, so PostgREST's search_path is that schema, then public):
//
//   BEGIN ISOLATION LEVEL READ COMMITTED [READ ONLY]
//   select set_config('search_path', $1, true), set_config('role', $2, true),
//          set_config('request.jwt.claims', $3, true), set_config('request.method', $4, true),
//          set_config('request.path', $5, true), set_config('request.headers', $6, true),
//          set_config('request.cookies', $7, true)
//   select "audiotricks_api"."at_postgrest_pre_request"()          -- db-pre-request
//   WITH pgrst_source AS (...) SELECT ... json_agg(_postgrest_t) AS body ...
//   COMMIT                                   (ROLLBACK when anything failed)
//
// set_config('role', r, true) is PostgREST's SET LOCAL ROLE.  PostgREST
// itself checks the JWT's signature before this; the forged-token cases
// below send what a PostgREST that let them through (or a client talking
// to the database directly) would send, and the database must still refuse.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as jose from 'jose';
import { connect, freshDatabase, ensureRole, errorOf, b64url } from './lib.mjs';

const DB = 'clients_postgrest';
let su, cleanup, authenticator, secret;
const users = {};

const PREQUERY = `select set_config('search_path', $1, true), set_config('role', $2, true), `
  + `set_config('request.jwt.claims', $3, true), set_config('request.method', $4, true), `
  + `set_config('request.path', $5, true), set_config('request.headers', $6, true), `
  + `set_config('request.cookies', $7, true)`;
const PRE_REQUEST = 'select "audiotricks"."at_postgrest_pre_request"()';
const RESPONSE = `null::bigint AS total_result_set, pg_catalog.count(_postgrest_t) AS page_total, `
  + `coalesce(json_agg(_postgrest_t), '[]') AS body, `
  + `nullif(current_setting('response.headers', true), '') AS response_headers, `
  + `nullif(current_setting('response.status', true), '') AS response_status, `
  + `'' AS response_inserted`;
const GET_HISTORY = `WITH pgrst_source AS ( SELECT "audiotricks_api"."audio_history".* `
  + `FROM "audiotricks_api"."audio_history"    )  SELECT ${RESPONSE} FROM ( SELECT * FROM pgrst_source ) _postgrest_t`;
const RPC_LOGIN = `WITH pgrst_source AS (SELECT "pgrst_call".* FROM "audiotricks_api"."at_login"`
  + `("login" := $1, "password" := $2) pgrst_call) SELECT ${RESPONSE} `
  + `FROM (SELECT "pgrst_call".* FROM pgrst_source AS "pgrst_call") _postgrest_t`;
// GET /<table>?select=<columns> (select=* when columns is omitted)
const getTableQuery = (table, columns) => {
  const cols = columns
    ? columns.map((c) => `"audiotricks_api"."${table}"."${c}"`).join(', ')
    : `"audiotricks_api"."${table}".*`;
  return `WITH pgrst_source AS ( SELECT ${cols} FROM "audiotricks_api"."${table}"    )  `
    + `SELECT ${RESPONSE} FROM ( SELECT * FROM pgrst_source ) _postgrest_t`;
};
// DELETE /audio_history?id=eq.<id> (Prefer: return=minimal)
const DELETE_HISTORY = `WITH pgrst_source AS (DELETE FROM "audiotricks_api"."audio_history" `
  + `WHERE  "audiotricks_api"."audio_history"."id" = $1 RETURNING 1) `
  + `SELECT '' AS total_result_set, pg_catalog.count(_postgrest_t) AS page_total, array[]::text[] AS header, `
  + `''::text AS body, nullif(current_setting('response.headers', true), '') AS response_headers, `
  + `nullif(current_setting('response.status', true), '') AS response_status, '' AS response_inserted `
  + `FROM (SELECT * FROM pgrst_source) _postgrest_t`;
// POST /audio_history with a JSON body whose keys are `columns` (PostgREST
// sends the body as one parameter of type json)
const insertHistoryQuery = (columns) => {
  const types = { title: 'character varying(500)', user_id: 'uuid', duration_seconds: 'integer' };
  return `WITH pgrst_source AS (INSERT INTO "audiotricks_api"."audio_history"(${columns.map((c) => `"${c}"`).join(', ')}) `
    + `SELECT ${columns.map((c) => `"pgrst_body"."${c}"`).join(', ')} FROM (SELECT $1::json AS json_data) pgrst_payload, `
    + `LATERAL (SELECT CASE WHEN json_typeof(pgrst_payload.json_data) = 'array' THEN pgrst_payload.json_data `
    + `ELSE json_build_array(pgrst_payload.json_data) END AS val) pgrst_uniform_json, `
    + `LATERAL (SELECT ${columns.map((c) => `"${c}"`).join(', ')} FROM json_to_recordset(pgrst_uniform_json.val) `
    + `AS _(${columns.map((c) => `"${c}" ${types[c]}`).join(', ')}) ) pgrst_body  RETURNING "audiotricks_api"."audio_history".*) `
    + `SELECT '' AS total_result_set, pg_catalog.count(_postgrest_t) AS page_total, array[]::text[] AS header, `
    + `coalesce(json_agg(_postgrest_t), '[]')::text AS body, `
    + `nullif(current_setting('response.headers', true), '') AS response_headers, `
    + `nullif(current_setting('response.status', true), '') AS response_status, '' AS response_inserted `
    + `FROM (SELECT * FROM pgrst_source) _postgrest_t`;
};
const RPC_LOGOUT = `WITH pgrst_source AS (SELECT "audiotricks_api"."at_logout"() pgrst_scalar) `
  + `SELECT ${RESPONSE} FROM (SELECT "pgrst_scalar" FROM pgrst_source) _postgrest_t`;

// One request.  role: what PostgREST would switch to (the JWT's role claim,
// else db-anon-role); claims: what it would put in request.jwt.claims.
// Returns { body } or { error } (a pg error, after ROLLBACK).
async function request({
  method, path, token, role, claims, query, params = [], readOnly, extraHeaders = {}, scheme = 'Bearer',
}) {
  const headers = {
    'user-agent': 'replay/1', accept: 'application/json', host: 'localhost:3000', ...extraHeaders,
  };
  if (token !== undefined) headers.authorization = `${scheme} ${token}`;
  await authenticator.query(
    `BEGIN ISOLATION LEVEL READ COMMITTED${readOnly ? ' READ ONLY' : ''}`);
  try {
    await authenticator.query(PREQUERY, [
      '"audiotricks_api", "public"', role, JSON.stringify(claims ?? { role }), method, path,
      JSON.stringify(headers), '{}']);
    await authenticator.query(PRE_REQUEST);
    const res = await authenticator.query(query, params);
    await authenticator.query('COMMIT');
    return { body: res.rows[0].body, count: Number(res.rows[0].page_total) };
  } catch (error) {
    await authenticator.query('ROLLBACK');
    return { error };
  }
}

const getHistory = (opts) => request({
  method: 'GET', path: '/audio_history', query: GET_HISTORY, readOnly: true, ...opts,
});

async function rpcLogin(login, password) {
  return request({
    method: 'POST', path: '/rpc/at_login', role: 'anon', query: RPC_LOGIN, params: [login, password],
  });
}

async function loginToken(name) {
  const { body, error } = await rpcLogin(name, `Pass-${name}-1`);
  assert.equal(error, undefined, String(error));
  return body[0].token;
}

// a bearer token's claims, as PostgREST would decode them
const claimsOf = (token) => jose.decodeJwt(token);

before(async () => {
  ({ su, cleanup } = await freshDatabase(DB));
  secret = Object.values((await su.query('SHOW audiotricks.jwt_secret')).rows[0])[0];
  // the PostgREST setup of README.md ("PostgREST")
  await ensureRole(su, 'authenticator', 'LOGIN NOINHERIT');
  await ensureRole(su, 'anon', 'NOLOGIN');
  await ensureRole(su, 'authenticated', 'NOLOGIN');
  await su.query('GRANT anon, authenticated TO authenticator');
  await su.query('GRANT audiotricks_anon TO anon');
  await su.query('GRANT audiotricks_user TO authenticated');
  for (const [name, rows] of [['alice', 2], ['bob', 3]]) {
    const id = (await su.query('SELECT audiotricks.at_register($1, $2, $3) AS id',
      [`${name}@example.com`, name, `Pass-${name}-1`])).rows[0].id;
    await su.query(`INSERT INTO audiotricks.audio_history (user_id, title)
      SELECT $1, $2 || g FROM generate_series(1, $3) g`, [id, `${name} talk `, rows]);
    const ids = (await su.query(
      'SELECT id FROM audiotricks.audio_history WHERE user_id = $1 ORDER BY id', [id])).rows.map((r) => r.id);
    users[name] = { id, rows: ids };
  }
  authenticator = await connect(DB, 'authenticator');
});

after(async () => cleanup(authenticator));

const idsOf = (body) => body.map((r) => r.id).sort();

test('postgrest.conf holds the settings this replay assumes', async () => {
  const conf = Object.fromEntries(
    readFileSync(new URL('./postgrest.conf', import.meta.url), 'utf8').split('\n')
      .map((l) => l.match(/^([a-z-]+)\s*=\s*"?([^"]*)"?\s*$/)).filter(Boolean)
      .map((m) => [m[1], m[2]]));
  assert.equal(conf['db-schemas'], 'audiotricks_api');
  assert.equal(conf['db-anon-role'], 'anon');
  assert.equal(conf['db-pre-request'], 'audiotricks.at_postgrest_pre_request');
  assert.equal(conf['jwt-role-claim-key'], '.role');
  assert.match(conf['db-uri'], /^postgres:\/\/authenticator[:@]/);
  assert.ok(conf['jwt-secret'], 'jwt-secret is set');
  // the pre-request function exists under exactly that name and anon may call it
  const { rows } = await su.query(
    "SELECT has_function_privilege('anon', $1::regprocedure, 'EXECUTE') AS ok",
    [`${conf['db-pre-request']}()`]);
  assert.equal(rows[0].ok, true);
});

test('the authenticator has no privileges of its own', async () => {
  const e = await errorOf(() => authenticator.query('SELECT count(*) FROM audiotricks.audio_history'));
  assert.equal(e?.code, '42501');
});

test('POST /rpc/at_login works as anon and returns a token for the user', async () => {
  const { body, error } = await rpcLogin('ALICE@example.com', 'Pass-alice-1');
  assert.equal(error, undefined, String(error));
  assert.equal(body.length, 1);
  assert.equal(body[0].user_id, users.alice.id);
  assert.match(body[0].token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
  const { payload } = await jose.jwtVerify(body[0].token, new TextEncoder().encode(secret),
    { algorithms: ['HS256'], issuer: 'audiotricks' });
  assert.equal(payload.role, 'authenticated', 'the role PostgREST will switch to');
});

test('POST /rpc/at_login with a wrong password: 28P01, no token', async () => {
  const { body, error } = await rpcLogin('alice', 'Wrong-pass-1');
  assert.equal(body, undefined);
  assert.equal(error.code, '28P01');
});

test('GET /audio_history with a valid token returns exactly that user\'s rows', async () => {
  for (const name of ['alice', 'bob']) {
    const token = await loginToken(name);
    const claims = claimsOf(token);
    const { body, error } = await getHistory({ token, role: claims.role, claims });
    assert.equal(error, undefined, String(error));
    assert.deepEqual(idsOf(body), users[name].rows, `${name} sees exactly their rows`);
    assert.ok(body.every((r) => r.user_id === users[name].id));
  }
});

test('real-world headers around the bearer token (escapes, unicode, scheme case)', async () => {
  const token = await loginToken('bob');
  const claims = claimsOf(token);
  const extraHeaders = {
    'user-agent': 'Mozilla/5.0 (X11; "quoted" \\ back\\slash) Ünïcode/✓',
    cookie: 'a=1; b="two"',
    'x-forwarded-for': '203.0.113.7, 10.0.0.1',
    'x-json': '{"authorization":"Bearer not-this-one"}',
  };
  for (const scheme of ['Bearer', 'bearer', 'Bearer  ']) {
    const r = await getHistory({ token, role: claims.role, claims, extraHeaders, scheme });
    assert.equal(r.error, undefined, `${JSON.stringify(scheme)}: ${r.error}`);
    assert.deepEqual(idsOf(r.body), users.bob.rows, `scheme ${JSON.stringify(scheme)}`);
  }
  // not a bearer credential at all: refused, not ignored
  const r = await getHistory({ token: 'dXNlcjpwYXNz', role: 'authenticated', extraHeaders, scheme: 'Basic' });
  assert.equal(r.error?.code, '28000');
});

test('GET /audio_history without a token (anon): permission denied, no rows', async () => {
  const { body, error } = await getHistory({ role: 'anon' });
  assert.equal(body, undefined);
  assert.equal(error.code, '42501');
});

test('GET /audio_history as authenticated without a bearer token: empty', async () => {
  // a PostgREST whose db-anon-role were `authenticated`
  const { body, error } = await getHistory({ role: 'authenticated' });
  assert.equal(error, undefined, String(error));
  assert.deepEqual(body, []);
});

test('request.jwt.claims naming another user grants nothing', async () => {
  const bobClaims = { sub: users.bob.id, role: 'authenticated', iss: 'audiotricks' };
  // no bearer token at all
  let r = await getHistory({ role: 'authenticated', claims: bobClaims });
  assert.equal(r.error, undefined, String(r.error));
  assert.deepEqual(r.body, [], 'claims alone see nothing');
  // an invalid bearer token
  r = await getHistory({ token: 'not.a.token', role: 'authenticated', claims: bobClaims });
  assert.equal(r.error?.code, '28000');
  // alice's valid token, claims saying bob: alice's rows only
  const alice = await loginToken('alice');
  r = await getHistory({ token: alice, role: 'authenticated', claims: bobClaims });
  assert.equal(r.error, undefined, String(r.error));
  assert.deepEqual(idsOf(r.body), users.alice.rows);
});

test('a revoked token (POST /rpc/at_logout) gets 28000 from the pre-request', async () => {
  const token = await loginToken('alice');
  const claims = claimsOf(token);
  let r = await getHistory({ token, role: claims.role, claims });
  assert.deepEqual(idsOf(r.body), users.alice.rows, 'works before logout');
  r = await request({
    method: 'POST', path: '/rpc/at_logout', token, role: claims.role, claims, query: RPC_LOGOUT,
  });
  assert.equal(r.error, undefined, String(r.error));
  assert.deepEqual(r.body, [{ pgrst_scalar: true }], 'at_logout() ends the bearer\'s session');
  r = await getHistory({ token, role: claims.role, claims });
  assert.equal(r.error?.code, '28000');
  assert.equal(r.error?.message, 'invalid or expired token');
  assert.equal(r.body, undefined);
});

test('forged tokens get 28000 from the pre-request and see no rows', async () => {
  const real = await loginToken('alice');
  const claims = claimsOf(real);
  const key = new TextEncoder().encode(secret);
  const [h, p, s] = real.split('.');
  const bobPayload = b64url(JSON.stringify({ ...claims, sub: users.bob.id }));
  const forged = {
    'wrong secret': await new jose.SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .sign(new TextEncoder().encode(`${secret}-not`)),
    'alg none': `${b64url('{"alg":"none","typ":"JWT"}')}.${p}.`,
    'alg none, signature kept': `${b64url('{"alg":"none","typ":"JWT"}')}.${p}.${s}`,
    'HS512 under the right secret': await new jose.SignJWT(claims)
      .setProtectedHeader({ alg: 'HS512', typ: 'JWT' }).sign(key),
    'tampered payload (sub = bob)': `${h}.${bobPayload}.${s}`,
    'tampered signature': `${h}.${p}.${s.slice(0, -2)}${s.endsWith('AA') ? 'BA' : 'AA'}`,
    'expired, correctly signed': await new jose.SignJWT({ ...claims, iat: 1000, exp: 2000 })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(key),
    'correctly signed, not issued': await new jose.SignJWT({ ...claims, jti: 'x' })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(key),
  };
  for (const [what, token] of Object.entries(forged)) {
    assert.notEqual(token, real);
    const c = { ...claims, sub: users.bob.id };
    const r = await getHistory({ token, role: 'authenticated', claims: c });
    assert.equal(r.error?.code, '28000', `${what}: ${r.error ?? JSON.stringify(r.body)}`);
    assert.equal(r.body, undefined, `${what}: no rows`);
  }
  // the real one still works after all that
  const r = await getHistory({ token: real, role: 'authenticated', claims });
  assert.deepEqual(idsOf(r.body), users.alice.rows);
});

test('nothing survives the request on the pooled authenticator connection', async () => {
  const token = await loginToken('bob');
  await getHistory({ token, role: 'authenticated', claims: claimsOf(token) });
  const { rows } = await authenticator.query(
    "SELECT current_user, coalesce(current_setting('request.headers', true), '') AS headers, "
    + "coalesce(current_setting('request.jwt.claims', true), '') AS claims");
  assert.deepEqual(rows[0], { current_user: 'authenticator', headers: '', claims: '' });
  const r = await getHistory({ role: 'authenticated' });
  assert.deepEqual(r.body, [], 'the next request without a token sees nothing');
});

test('GET /<view>?select=* for every table: own rows only, no secret column', async () => {
  const token = await loginToken('alice');
  const claims = claimsOf(token);
  const as = { token, role: claims.role, claims, method: 'GET', readOnly: true };
  const secret = /password|token_hash|api_key_encrypted|search_tsv|search_config/;
  const expected = {
    users: ['id', 'email', 'username', 'created_at', 'updated_at', 'last_login_at', 'is_active', 'email_verified_at'],
    sessions: ['id', 'user_id', 'expires_at', 'created_at', 'family_id', 'refreshed_at'],
    user_settings: ['user_id', 'preferred_language', 'summary_quality', 'settings_json', 'updated_at',
      'openai_api_key_set_at', 'elevenlabs_api_key_set_at'],
    audio_history: ['id', 'user_id', 'title', 'audio_url', 'file_size_bytes', 'duration_seconds',
      'transcript', 'summary', 'key_moments', 'processing_options', 'created_at'],
    audit_log: ['id', 'user_id', 'session_id', 'event', 'detail', 'client_addr', 'created_at'],
  };
  for (const [table, columns] of Object.entries(expected)) {
    const r = await request({ ...as, path: `/${table}`, query: getTableQuery(table) });
    assert.equal(r.error, undefined, `GET /${table}: ${r.error}`);
    assert.ok(r.body.length >= 1, `GET /${table} returns alice's rows`);
    for (const row of r.body) {
      assert.deepEqual(Object.keys(row), columns, `GET /${table}: exactly the readable columns`);
      assert.ok(!Object.keys(row).some((k) => secret.test(k)));
      assert.equal(table === 'users' ? row.id : row.user_id, users.alice.id, `${table}: only alice's rows`);
    }
  }
  // and without a token: nothing (authenticated) or 42501 (anon)
  for (const table of Object.keys(expected)) {
    const r = await request({ role: 'authenticated', method: 'GET', path: `/${table}`, readOnly: true, query: getTableQuery(table) });
    assert.deepEqual(r.body, [], `GET /${table} without a token`);
    const a = await request({ role: 'anon', method: 'GET', path: `/${table}`, readOnly: true, query: getTableQuery(table) });
    assert.equal(a.error?.code, '42501', `GET /${table} as anon`);
  }
  // the tables themselves are not reachable through PostgREST's search_path
  const t = await request({ ...as, path: '/users', query: getTableQuery('users').replaceAll('"audiotricks_api"', '"audiotricks"') });
  assert.equal(t.error?.code, '42501', 'select=* on the table with its secret column');
});

// PATCH /user_settings (Prefer: return=representation): supabase-js
// .from('user_settings').update({...}).select()
const patchSettingsQuery = (columns) => {
  const types = { summary_quality: 'character varying(20)', preferred_language: 'character varying(10)', settings_json: 'jsonb' };
  return `WITH pgrst_source AS (UPDATE "audiotricks_api"."user_settings" SET `
    + `${columns.map((c) => `"${c}" = "pgrst_body"."${c}"`).join(', ')} `
    + `FROM (SELECT $1::json AS json_data) pgrst_payload, `
    + `LATERAL (SELECT CASE WHEN json_typeof(pgrst_payload.json_data) = 'array' THEN pgrst_payload.json_data `
    + `ELSE json_build_array(pgrst_payload.json_data) END AS val) pgrst_uniform_json, `
    + `LATERAL (SELECT ${columns.map((c) => `"${c}"`).join(', ')} FROM json_to_recordset(pgrst_uniform_json.val) `
    + `AS _(${columns.map((c) => `"${c}" ${types[c]}`).join(', ')}) LIMIT 1) pgrst_body  `
    + `RETURNING "audiotricks_api"."user_settings".*) `
    + `SELECT '' AS total_result_set, pg_catalog.count(_postgrest_t) AS page_total, array[]::text[] AS header, `
    + `coalesce(json_agg(_postgrest_t), '[]')::text AS body, `
    + `nullif(current_setting('response.headers', true), '') AS response_headers, `
    + `nullif(current_setting('response.status', true), '') AS response_status, '' AS response_inserted `
    + `FROM (SELECT "user_settings".* FROM "pgrst_source" AS "user_settings") _postgrest_t`;
};

test('PATCH /user_settings with return=representation changes and returns only the own row', async () => {
  const token = await loginToken('bob');
  const claims = claimsOf(token);
  const as = { token, role: claims.role, claims, method: 'PATCH', path: '/user_settings' };
  let r = await request({ ...as, query: patchSettingsQuery(['summary_quality', 'settings_json']),
    params: [JSON.stringify({ summary_quality: 'detailed', settings_json: { theme: 'dark' } })] });
  assert.equal(r.error, undefined, String(r.error));
  const rows = JSON.parse(r.body);
  assert.equal(rows.length, 1);
  assert.equal(rows[0].user_id, users.bob.id);
  assert.equal(rows[0].summary_quality, 'detailed');
  assert.deepEqual(rows[0].settings_json, { theme: 'dark' });
  assert.ok(!('openai_api_key_encrypted' in rows[0]));
  const other = (await su.query('SELECT summary_quality FROM audiotricks.user_settings WHERE user_id = $1', [users.alice.id])).rows[0];
  assert.equal(other.summary_quality, 'balanced', "alice's row untouched");
  // an invalid value: 23514 naming the column and the rule
  r = await request({ ...as, query: patchSettingsQuery(['summary_quality']), params: [JSON.stringify({ summary_quality: 'slow' })] });
  assert.equal(r.error?.code, '23514');
  assert.equal(r.error?.message, 'summary_quality must be fast, balanced or detailed');
  assert.equal(r.error?.column, 'summary_quality');
  assert.equal(r.error?.table, 'user_settings');
  assert.equal(r.error?.constraint, 'user_settings_summary_quality_check');
  r = await request({ ...as, query: patchSettingsQuery(['settings_json']), params: [JSON.stringify({ settings_json: { autoSave: 1 } })] });
  assert.equal(r.error?.code, '23514');
  assert.equal(r.error?.column, 'settings_json');
});

test('POST and DELETE /audio_history stay inside the token\'s rows', async () => {
  const token = await loginToken('alice');
  const claims = claimsOf(token);
  const as = { token, role: claims.role, claims, method: 'POST', path: '/audio_history' };
  // insert: user_id comes from the identity
  let r = await request({ ...as, query: insertHistoryQuery(['title']), params: [JSON.stringify({ title: 'posted' })] });
  assert.equal(r.error, undefined, String(r.error));
  const row = JSON.parse(r.body)[0];
  assert.equal(row.user_id, users.alice.id);
  // insert for bob: refused by the policy
  r = await request({
    ...as, query: insertHistoryQuery(['title', 'user_id']),
    params: [JSON.stringify({ title: 'for bob', user_id: users.bob.id })],
  });
  assert.equal(r.error?.code, '42501', String(r.error ?? r.body));
  // delete bob's row with alice's token: nothing happens
  r = await request({
    ...as, method: 'DELETE', path: `/audio_history?id=eq.${users.bob.rows[0]}`,
    query: DELETE_HISTORY, params: [users.bob.rows[0]],
  });
  assert.equal(r.error, undefined, String(r.error));
  assert.equal(r.count, 0, "no row deleted");
  // delete alice's own new row works
  r = await request({
    ...as, method: 'DELETE', path: `/audio_history?id=eq.${row.id}`, query: DELETE_HISTORY, params: [row.id],
  });
  assert.equal(r.count, 1);
  const left = (await su.query('SELECT user_id, count(*)::int AS n FROM audiotricks.audio_history GROUP BY 1')).rows;
  assert.deepEqual(Object.fromEntries(left.map((x) => [x.user_id, x.n])),
    { [users.alice.id]: users.alice.rows.length, [users.bob.id]: users.bob.rows.length });
  // without a token, anon may not write at all
  r = await request({
    method: 'POST', path: '/audio_history', role: 'anon', query: insertHistoryQuery(['title']),
    params: [JSON.stringify({ title: 'anon' })],
  });
  assert.equal(r.error?.code, '42501');
});

test('an expired token and an inactive user\'s token get 28000', async () => {
  // expired: issued with a three-second lifetime (whole seconds: valid for 2-3 s)
  await su.query("SET audiotricks.session_ttl = '3s'");
  const short = (await su.query("SELECT token FROM audiotricks.at_login('bob', 'Pass-bob-1')")).rows[0].token;
  await su.query('RESET audiotricks.session_ttl');
  let r = await getHistory({ token: short, role: 'authenticated', claims: claimsOf(short) });
  assert.deepEqual(idsOf(r.body ?? []), users.bob.rows, 'valid at first');
  await new Promise((resolve) => { setTimeout(resolve, 4100); });
  r = await getHistory({ token: short, role: 'authenticated', claims: claimsOf(short) });
  assert.equal(r.error?.code, '28000', 'expired');

  // inactive: a live session of a deactivated user
  const token = await loginToken('bob');
  await su.query('UPDATE audiotricks.users SET is_active = false WHERE id = $1', [users.bob.id]);
  try {
    r = await getHistory({ token, role: 'authenticated', claims: claimsOf(token) });
    assert.equal(r.error?.code, '28000', 'inactive user');
    const login = await rpcLogin('bob', 'Pass-bob-1');
    assert.equal(login.error?.code, '28P01', 'an inactive user cannot log in');
  } finally {
    await su.query('UPDATE audiotricks.users SET is_active = true WHERE id = $1', [users.bob.id]);
  }
  // deactivation deleted the sessions: reactivation does not revive the old
  // token, a new login works
  r = await getHistory({ token, role: 'authenticated', claims: claimsOf(token) });
  assert.equal(r.error?.code, '28000', 'old token stays dead after reactivation');
  const fresh = await loginToken('bob');
  r = await getHistory({ token: fresh, role: 'authenticated', claims: claimsOf(fresh) });
  assert.deepEqual(idsOf(r.body), users.bob.rows, 'reactivated: a new login works');
});

test('POST /audio_history with return=representation returns the row without search columns; CHECKs name the field', async () => {
  const token = await loginToken('alice');
  const claims = claimsOf(token);
  const as = { token, role: claims.role, claims, method: 'POST', path: '/audio_history' };
  let r = await request({ ...as, query: insertHistoryQuery(['title', 'duration_seconds']),
    params: [JSON.stringify({ title: 'represented', duration_seconds: 0 })] });
  assert.equal(r.error, undefined, String(r.error));
  const [row] = JSON.parse(r.body);
  assert.equal(row.user_id, users.alice.id);
  assert.equal(row.duration_seconds, 0);
  assert.ok(!('search_tsv' in row) && !('search_config' in row));
  r = await request({ ...as, query: insertHistoryQuery(['title', 'duration_seconds']),
    params: [JSON.stringify({ title: 'negative', duration_seconds: -1 })] });
  assert.equal(r.error?.code, '23514');
  assert.equal(r.error?.message, 'duration_seconds must be 0 or more');
  assert.equal(r.error?.column, 'duration_seconds');
  assert.equal(r.error?.schema, 'audiotricks');
  assert.equal(r.error?.table, 'audio_history');
  assert.equal(r.error?.constraint, 'audio_history_duration_seconds_check');
  r = await request({ ...as, method: 'DELETE', path: `/audio_history?id=eq.${row.id}`, query: DELETE_HISTORY, params: [row.id] });
  assert.equal(r.error, undefined, String(r.error));
  assert.equal(r.count, 1);
});

// POST /rpc/<fn> with named arguments: a set-returning or composite
// function is read as rows, a scalar one as pgrst_scalar
const rpcQuery = (fn, args, scalar) => {
  const call = `"audiotricks_api"."${fn}"(${args.map((a, i) => `"${a}" := $${i + 1}`).join(', ')})`;
  return scalar
    ? `WITH pgrst_source AS (SELECT ${call} pgrst_scalar) SELECT ${RESPONSE} FROM (SELECT "pgrst_scalar" FROM pgrst_source) _postgrest_t`
    : `WITH pgrst_source AS (SELECT "pgrst_call".* FROM ${call} pgrst_call) SELECT ${RESPONSE} `
      + `FROM (SELECT "pgrst_call".* FROM pgrst_source AS "pgrst_call") _postgrest_t`;
};
async function rpc(fn, argsObj, { token, role, scalar = true } = {}) {
  const args = Object.keys(argsObj);
  const r = await request({
    method: 'POST', path: `/rpc/${fn}`, token, role: role ?? (token ? 'authenticated' : 'anon'),
    claims: token ? claimsOf(token) : undefined, query: rpcQuery(fn, args, scalar), params: Object.values(argsObj),
  });
  return r;
}
const ok = (r, what) => { assert.equal(r.error, undefined, `${what}: ${r.error}`); return r.body; };

// every function called through /rpc/ (checked against the catalog at the end)
const called = new Set();
const call = async (fn, args, opts) => { called.add(fn); return ok(await rpc(fn, args, opts), fn); };

test('POST /rpc/<fn>: every function of the API, as anon or authenticated', async () => {
  // anonymous
  const carolId = (await call('at_register', { email: 'carol@example.com', username: 'carol', password: 'Pass-carol-1' }))[0].pgrst_scalar;
  assert.match(carolId, /^[0-9a-f-]{36}$/);
  const login = await call('at_login', { login: 'carol', password: 'Pass-carol-1' }, { scalar: false });
  const t1 = login[0].token;
  assert.equal((await call('at_authenticate', { token: t1 }))[0].pgrst_scalar, carolId);
  assert.equal((await call('at_current_user_id', {}))[0].pgrst_scalar, null, 'anon has no identity');
  const refreshed = await call('at_refresh', { token: t1 }, { scalar: false });
  const token = refreshed[0].token;
  assert.notEqual(token, t1);
  const spare = (await call('at_login', { login: 'carol', password: 'Pass-carol-1' }, { scalar: false }))[0];
  assert.equal((await call('at_logout', { token: spare.token }))[0].pgrst_scalar, true);
  // signed in
  const as = { token };
  assert.equal((await call('at_current_user_id', {}, as))[0].pgrst_scalar, carolId);
  assert.match((await call('at_uuid_v7', {}, as))[0].pgrst_scalar, /^[0-9a-f]{8}-[0-9a-f]{4}-7/);
  assert.equal((await call('at_get_settings', {}, { ...as, scalar: false }))[0].summary_quality, 'balanced');
  assert.equal((await call('at_update_settings', { summary_quality: 'fast' }, { ...as, scalar: false }))[0].summary_quality, 'fast');
  await call('at_set_api_key', { provider: 'openai', api_key: 'sk-carol-0123456789' }, as);
  assert.equal((await call('at_get_api_key', { provider: 'openai' }, as))[0].pgrst_scalar, 'sk-carol-0123456789');
  const status = await call('at_api_key_status', {}, { ...as, scalar: false });
  assert.deepEqual(status.map((x) => [x.provider, x.is_set, x.last4]), [['openai', true, '6789'], ['elevenlabs', false, null]]);
  assert.ok(!JSON.stringify(status).includes('sk-carol'), 'the status never holds the key');
  const id = (await call('at_history_add', { title: 'carol talk', transcript: 'hello world' }, as))[0].pgrst_scalar;
  assert.equal((await call('at_history_count', {}, as))[0].pgrst_scalar, 1);
  assert.deepEqual((await call('at_history_page', { page_size: 5 }, { ...as, scalar: false })).map((x) => x.id), [id]);
  assert.deepEqual((await call('at_history_search', { query: 'hello' }, { ...as, scalar: false })).map((x) => x.id), [id]);
  assert.equal((await call('at_history_delete', { id }, as))[0].pgrst_scalar, true);
  const sessions = await call('at_list_sessions', {}, { ...as, scalar: false });
  assert.ok(sessions.some((x) => x.is_current));
  const other = (await rpc('at_login', { login: 'carol', password: 'Pass-carol-1' }, { scalar: false })).body[0];
  assert.equal((await call('at_logout_session', { session_id: other.session_id }, as))[0].pgrst_scalar, true);
  await call('at_change_password', { current_password: 'Pass-carol-1', new_password: 'Pass-carol-2' }, as);
  await rpc('at_login', { login: 'carol', password: 'Pass-carol-2' }, { scalar: false });
  assert.ok((await call('at_logout_all', {}, as))[0].pgrst_scalar >= 1);
  // a fresh token for the account calls
  const t2 = (await rpc('at_login', { login: 'carol', password: 'Pass-carol-2' }, { scalar: false })).body[0].token;
  await call('at_deactivate_account', { password: 'Pass-carol-2' }, { token: t2 });
  await su.query('UPDATE audiotricks.users SET is_active = true WHERE id = $1', [carolId]);
  const t3 = (await rpc('at_login', { login: 'carol', password: 'Pass-carol-2' }, { scalar: false })).body[0].token;
  await call('at_delete_account', { password: 'Pass-carol-2' }, { token: t3 });
  assert.equal((await su.query('SELECT count(*)::int AS n FROM audiotricks.users WHERE id = $1', [carolId])).rows[0].n, 0);
  // and the anon role cannot call a signed-in function
  const r = await rpc('at_history_count', {}, { role: 'anon' });
  assert.equal(r.error?.code, '42501');
});

// ---- account recovery and identity changes (src/recovery.c) ----
// the mailer's side: what at_mail_outbox hands the mail sender
const takeMail = async () => {
  await su.query('BEGIN');
  await su.query('SET LOCAL ROLE audiotricks_mailer');
  const { rows } = await su.query('SELECT recipient, kind, token FROM audiotricks.at_mail_outbox()');
  await su.query('COMMIT');
  return rows;
};

test('POST /rpc/at_request_password_reset as anon: no answer either way; the mailer gets the token; at_reset_password', async () => {
  await takeMail();
  const known = await call('at_request_password_reset', { login: 'ALICE@example.com' });
  const unknown = await call('at_request_password_reset', { login: 'nobody@example.com' });
  assert.deepEqual(known, [{ pgrst_scalar: '' }], 'void');
  assert.deepEqual(unknown, known, 'the same body for a login that names no account');
  const mails = await takeMail();
  assert.deepEqual(mails.map((m) => [m.recipient, m.kind]), [['alice@example.com', 'password_reset']]);
  const before = await loginToken('alice');
  let r = await rpc('at_reset_password', { token: `${mails[0].token}x`, new_password: 'Pass-alice-2' });
  assert.equal(r.error?.code, '28000', 'a wrong token');
  await call('at_reset_password', { token: mails[0].token, new_password: 'Pass-alice-2' });
  r = await getHistory({ token: before, role: 'authenticated', claims: claimsOf(before) });
  assert.equal(r.error?.code, '28000', 'the reset ended the old sessions');
  r = await rpc('at_reset_password', { token: mails[0].token, new_password: 'Pass-alice-3' });
  assert.equal(r.error?.code, '28000', 'used once');
  // back to the password the other tests use
  await su.query("SELECT audiotricks.at_request_password_reset('alice')");
  await call('at_reset_password', { token: (await takeMail())[0].token, new_password: 'Pass-alice-1' });
});

test('POST /rpc/ for email verification, email change and username change', async () => {
  await su.query("SELECT audiotricks.at_register('dave@example.com', 'dave', 'Pass-dave-1')");
  const token = (await rpc('at_login', { login: 'dave', password: 'Pass-dave-1' }, { scalar: false })).body[0].token;
  const as = { token };
  await takeMail();
  // verification: the mailer gets the token, anon uses it
  await call('at_request_email_verification', {}, as);
  let mails = await takeMail();
  assert.deepEqual(mails.map((m) => [m.recipient, m.kind]), [['dave@example.com', 'email_verification']]);
  assert.equal((await rpc('at_request_email_verification', {}, { role: 'anon' })).error?.code, '42501');
  await call('at_verify_email', { token: mails[0].token });
  assert.equal((await rpc('at_verify_email', { token: mails[0].token })).error?.code, '28000', 'used once');
  const me = async () => (await request({ token, role: 'authenticated', claims: claimsOf(token), method: 'GET', path: '/users', readOnly: true,
    query: getTableQuery('users', ['email', 'username', 'email_verified_at']) })).body[0];
  assert.ok((await me()).email_verified_at, 'GET /users shows the address verified');
  // email change: the old address until the new one is verified
  assert.equal((await rpc('at_change_email', { current_password: 'wrong', new_email: 'dave2@example.com' }, as)).error?.code, '28P01');
  assert.equal((await rpc('at_change_email', { current_password: 'Pass-dave-1', new_email: 'bob@example.com' }, as)).error?.code, '23505');
  await call('at_change_email', { current_password: 'Pass-dave-1', new_email: 'dave2@example.com' }, as);
  assert.equal((await me()).email, 'dave@example.com');
  assert.equal((await rpc('at_register', { email: 'dave2@example.com', username: 'x', password: 'Pass-x-11' })).error?.code, '23505', 'reserved');
  mails = await takeMail();
  assert.deepEqual(mails.map((m) => [m.recipient, m.kind]), [['dave2@example.com', 'email_change']]);
  await call('at_verify_email', { token: mails[0].token });
  assert.equal((await me()).email, 'dave2@example.com');
  // username change
  assert.equal((await rpc('at_change_username', { current_password: 'Pass-dave-1', new_username: 'ALICE' }, as)).error?.code, '23505');
  await call('at_change_username', { current_password: 'Pass-dave-1', new_username: 'dave_2' }, as);
  assert.equal((await me()).username, 'dave_2');
  const events = (await su.query(`SELECT event FROM audiotricks.audit_log WHERE user_id = (SELECT id FROM audiotricks.users WHERE username = 'dave_2')
    AND event IN ('email_verification_requested', 'email_verified', 'email_change_requested', 'email_changed', 'username_changed') ORDER BY id`)).rows.map((x) => x.event);
  assert.deepEqual(events, ['email_verification_requested', 'email_verified', 'email_change_requested', 'email_changed', 'username_changed']);
});

test('every function of audiotricks_api was called through /rpc/ above', async () => {
  const { rows } = await su.query(`SELECT DISTINCT p.proname FROM pg_proc p
    WHERE p.pronamespace = 'audiotricks_api'::regnamespace`);
  assert.deepEqual([...called].sort(), rows.map((x) => x.proname).sort());
});

// GET /rpc/at_history_page?page_size=7&cursor=<last row's cursor>, page by
// page: the cursor travels in the URL and in JSON unchanged, and the walk
// returns every row once, also the 60 that share one created_at
test('a cursor walk through /rpc/at_history_page and /rpc/at_history_search: every row once', async () => {
  const id = (await su.query('SELECT audiotricks.at_register($1, $2, $3) AS id',
    ['carol@example.com', 'carol', 'Pass-carol-1'])).rows[0].id;
  await su.query('BEGIN');
  await su.query(`INSERT INTO audiotricks.audio_history (user_id, title, transcript)
    SELECT $1, 'carol ' || g, 'walnut harvest notes ' || g FROM generate_series(1, 60) g`, [id]);
  await su.query('COMMIT');
  for (let g = 61; g <= 100; g++) {
    await su.query(`INSERT INTO audiotricks.audio_history (user_id, title, transcript)
      VALUES ($1, 'carol ' || $2::int, 'walnut notes ' || $2::int)`, [id, g]);
  }
  const token = await loginToken('carol');
  for (const [fn, args] of [['at_history_page', {}], ['at_history_search', { query: 'walnut' }]]) {
    const seen = [];
    let cursor;
    for (let pages = 0; ; pages++) {
      assert.ok(pages <= 20, `${fn}: the walk did not end`);
      const params = { ...args, page_size: 7, ...(cursor ? { cursor } : {}) };
      const body = ok(await rpc(fn, params, { token, scalar: false }), fn);
      if (body.length === 0) break;
      assert.ok(body.length <= 7);
      assert.ok(body.every((r) => /^[A-Za-z0-9_-]+$/.test(r.cursor)), 'URL-safe cursors');
      assert.ok(body.every((r) => !('search_tsv' in r) && !('search_config' in r)), 'lean rows');
      seen.push(...body.map((r) => r.id));
      cursor = body[body.length - 1].cursor;
    }
    assert.equal(seen.length, 100, `${fn}: 100 rows`);
    assert.equal(new Set(seen).size, 100, `${fn}: each once`);
  }
  const bad = await rpc('at_history_page', { page_size: 7, cursor: 'not-a-cursor' }, { token, scalar: false });
  assert.equal(bad.error?.code, '22023', 'a damaged cursor is 22023 (HTTP 400)');
});

// what each role may execute, in each schema
const PUBLIC_ANON = ['at_authenticate', 'at_current_user_id', 'at_login', 'at_logout', 'at_refresh', 'at_register',
  'at_request_password_reset', 'at_reset_password', 'at_verify_email'];
const PUBLIC_USER = [...PUBLIC_ANON, 'at_api_key_status', 'at_change_password', 'at_deactivate_account',
  'at_delete_account', 'at_get_api_key', 'at_get_settings', 'at_history_add', 'at_history_count',
  'at_history_delete', 'at_history_page', 'at_history_search', 'at_list_sessions', 'at_logout_all',
  'at_logout_session', 'at_set_api_key', 'at_update_settings', 'at_uuid_v7',
  'at_request_email_verification', 'at_change_email', 'at_change_username'].sort();

test('catalog: anon and authenticated can execute exactly the public list; nothing internal is exposed', async () => {
  const executable = async (role, schema) => (await su.query(`SELECT p.proname FROM pg_proc p
      WHERE p.pronamespace = $2::regnamespace AND has_function_privilege($1, p.oid, 'EXECUTE')
      ORDER BY 1`, [role, schema])).rows.map((x) => x.proname);
  assert.deepEqual(await executable('anon', 'audiotricks_api'), PUBLIC_ANON.sort());
  assert.deepEqual(await executable('authenticated', 'audiotricks_api'), PUBLIC_USER);
  // in audiotricks: the same list, plus PostgREST's hook (anon too)
  assert.deepEqual(await executable('anon', 'audiotricks'), [...PUBLIC_ANON, 'at_postgrest_pre_request'].sort());
  assert.deepEqual(await executable('authenticated', 'audiotricks'),
    [...PUBLIC_USER, 'at_postgrest_pre_request'].sort());
  // nothing of audiotricks_internal is an endpoint: PostgREST's schema is
  // audiotricks_api, and a call there finds no such function
  const internal = await executable('authenticated', 'audiotricks_internal');
  assert.ok(internal.includes('at_require_user_id') && internal.includes('at_check_rule'));
  const token = await loginToken('alice');
  for (const fn of ['at_require_user_id', 'at_check_rule', 'at_touch_updated_at', 'at_check_preload',
    'at_purge_expired_sessions', 'at_rotate_api_keys', 'at_encrypt_key', 'at_postgrest_pre_request']) {
    const r = await rpc(fn, {}, { token });
    assert.equal(r.error?.code, '42883', `/rpc/${fn}: ${r.error ?? JSON.stringify(r.body)}`);
  }
  // the views: what the roles may do
  const { rows } = await su.query(`SELECT c.relname,
      has_table_privilege('authenticated', c.oid, 'SELECT') AS s, has_any_column_privilege('authenticated', c.oid, 'INSERT') AS i,
      has_any_column_privilege('authenticated', c.oid, 'UPDATE') AS u, has_table_privilege('authenticated', c.oid, 'DELETE') AS d,
      has_table_privilege('anon', c.oid, 'SELECT') AS anon
    FROM pg_class c WHERE c.relnamespace = 'audiotricks_api'::regnamespace ORDER BY 1`);
  assert.deepEqual(rows.map((x) => `${x.relname}:${x.s ? 'S' : ''}${x.i ? 'I' : ''}${x.u ? 'U' : ''}${x.d ? 'D' : ''}${x.anon ? '!' : ''}`),
    ['audio_history:SIUD', 'audit_log:S', 'sessions:S', 'user_settings:SU', 'users:S']);
});
