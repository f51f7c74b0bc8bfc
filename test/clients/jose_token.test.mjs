// test/clients/jose_token.test.mjs
// A token from at_login is a standard HS256 JWT: npm `jose` verifies it
// under audiotricks.jwt_secret, with the header and claims README.md documents (at_login).
// And the converse: a JWT that jose signs with the same secret but that
// at_login did not issue (no session row) is refused by at_authenticate.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as jose from 'jose';
import { freshDatabase, errorOf } from './lib.mjs';

let su, cleanup, secret, userId;

before(async () => {
  ({ su, cleanup } = await freshDatabase('clients_jose'));
  secret = Object.values((await su.query('SHOW audiotricks.jwt_secret')).rows[0])[0];
  userId = (await su.query(
    "SELECT audiotricks.at_register('jo@example.com', 'jo', 'Jose-pass-1') AS id")).rows[0].id;
});

after(async () => cleanup());

async function login() {
  return (await su.query(
    "SELECT token, user_id, session_id, expires_at FROM audiotricks.at_login('jo', 'Jose-pass-1')")).rows[0];
}

test('the secret is a real one', () => {
  assert.ok(secret.length >= 32, 'jwt_secret of at least 32 bytes');
});

test('at_login token verifies with jose.jwtVerify (HS256, issuer audiotricks)', async () => {
  const { token, user_id, session_id, expires_at } = await login();
  const ttl = Number((await su.query(
    "SELECT setting FROM pg_settings WHERE name = 'audiotricks.session_ttl'")).rows[0].setting);
  const now = Math.floor(Date.now() / 1000);
  const { payload, protectedHeader } = await jose.jwtVerify(
    token, new TextEncoder().encode(secret), { algorithms: ['HS256'], issuer: 'audiotricks' });

  assert.deepEqual(protectedHeader, { alg: 'HS256', typ: 'JWT' });
  assert.equal(payload.sub, user_id);
  assert.equal(payload.sub, userId);
  assert.equal(payload.sid, session_id);
  assert.equal(payload.role, 'authenticated');
  // a random id stored nowhere: the token cannot be rebuilt from the session's columns
  assert.match(payload.jti, /^[A-Za-z0-9_-]{22}$/);
  assert.equal(payload.iss, 'audiotricks');
  assert.ok(Number.isInteger(payload.iat) && Number.isInteger(payload.exp));
  assert.ok(Math.abs(payload.iat - now) < 120, `iat ${payload.iat} is now (${now})`);
  assert.equal(payload.exp - payload.iat, ttl, 'exp - iat = audiotricks.session_ttl');
  assert.equal(ttl, 7 * 24 * 3600, 'default session_ttl is 7 days');
  assert.equal(Math.floor(expires_at.getTime() / 1000), payload.exp, 'expires_at = exp');
  // the token is accepted by the extension too
  await su.query('BEGIN');
  assert.equal((await su.query('SELECT audiotricks.at_authenticate($1) AS id', [token])).rows[0].id, userId);
  await su.query('COMMIT');
});

test('jose rejects the token under another secret and other algorithms', async () => {
  const { token } = await login();
  const wrong = new TextEncoder().encode(secret + 'x');
  const e1 = await errorOf(() => jose.jwtVerify(token, wrong, { algorithms: ['HS256'] }));
  assert.ok(e1 instanceof jose.errors.JWSSignatureVerificationFailed, String(e1));
  const e2 = await errorOf(() => jose.jwtVerify(
    token, new TextEncoder().encode(secret), { algorithms: ['HS512'] }));
  assert.ok(e2 instanceof jose.errors.JOSEAlgNotAllowed, String(e2));
});

test('role and lifetime follow audiotricks.jwt_role and audiotricks.session_ttl', async () => {
  await su.query("SET audiotricks.jwt_role = 'webuser'");
  await su.query("SET audiotricks.session_ttl = '15min'");
  try {
    const { token } = await login();
    const { payload } = await jose.jwtVerify(
      token, new TextEncoder().encode(secret), { algorithms: ['HS256'], issuer: 'audiotricks' });
    assert.equal(payload.role, 'webuser');
    assert.equal(payload.exp - payload.iat, 900);
  } finally {
    await su.query('RESET audiotricks.jwt_role');
    await su.query('RESET audiotricks.session_ttl');
  }
});

test('a correctly signed JWT that at_login did not issue is refused', async () => {
  const { token } = await login();
  const claims = jose.decodeJwt(token);
  // same claims, same secret, but different bytes: no session row has its hash
  const minted = await new jose.SignJWT({ ...claims, extra: 1 })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .sign(new TextEncoder().encode(secret));
  await jose.jwtVerify(minted, new TextEncoder().encode(secret), { algorithms: ['HS256'] });
  await su.query('BEGIN');
  const e = await errorOf(() => su.query('SELECT audiotricks.at_authenticate($1)', [minted]));
  await su.query('ROLLBACK');
  assert.equal(e?.code, '28000');
  assert.equal(e?.message, 'invalid or expired token');
});
