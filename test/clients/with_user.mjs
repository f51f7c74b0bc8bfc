// test/clients/with_user.mjs
// The node `pg` helper README shows: one unit of work as a token's user.
// BEGIN, at_authenticate(token) as a bind parameter, fn(client), COMMIT;
// ROLLBACK on any error.  The identity ends with the transaction, so the
// pooled connection goes back to the pool carrying none.

// Returns what fn returned; rejects with the database's error (e.code is
// the SQLSTATE: 28000 for a bad, expired or revoked token).
export async function withUser(pool, token, fn) {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT audiotricks.at_authenticate($1)', [token]);
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
