// test/clients/lib.mjs
// Shared helpers of the client tests: connections to the test cluster that
// test/run exports (PGHOST, PGPORT, PGUSER = a superuser), and a throwaway
// database with the extension installed, one per test file.
import pg from 'pg';

export const { Client } = pg;

// a connection as the superuser of PGUSER, or as another role
export async function connect(database, user) {
  const client = new Client({
    host: process.env.PGHOST,
    port: process.env.PGPORT ? Number(process.env.PGPORT) : undefined,
    user: user ?? process.env.PGUSER,
    database,
    application_name: 'audiotricks-client-tests',
  });
  await client.connect();
  return client;
}

// Creates database `name` (dropping a leftover one) with audiotricks
// installed; returns a superuser connection to it and a cleanup function.
export async function freshDatabase(name) {
  const admin = await connect('postgres');
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${name}`);
  const su = await connect(name);
  await su.query('CREATE EXTENSION audiotricks CASCADE');
  async function cleanup(...clients) {
    for (const c of [...clients, su]) await c.end().catch(() => {});
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
  return { su, cleanup };
}

// CREATE ROLE that tolerates an existing role (roles are cluster-wide)
export async function ensureRole(su, name, options) {
  await su.query(`DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${name}') THEN
      CREATE ROLE ${name} ${options};
    END IF;
  END $$`);
}

// runs fn and returns the error it raised (or null)
export async function errorOf(fn) {
  try {
    await fn();
    return null;
  } catch (e) {
    return e;
  }
}

export function b64url(s) {
  return Buffer.from(s).toString('base64url');
}
