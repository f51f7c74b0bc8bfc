-- A hostile search_path cannot change what any audiotricks function does:
-- an unprivileged role puts its own schema first, with look-alike lower,
-- crypt, gen_salt, digest, now, hmac and "=" operators that always match.
\set VERBOSITY terse
SET audiotricks.bcrypt_cost = 4;
CREATE ROLE regress_evil LOGIN;
GRANT audiotricks_user TO regress_evil;
CREATE SCHEMA regress_evil AUTHORIZATION regress_evil;
SELECT audiotricks.at_register('victim@example.com', 'victim', 'Passw0rdV') IS NOT NULL AS victim;
SELECT token AS victim_token FROM audiotricks.at_login('victim', 'Passw0rdV') \gset

SET ROLE regress_evil;
CREATE FUNCTION regress_evil.lower(text) RETURNS text LANGUAGE sql AS $$ SELECT 'victim' $$;
CREATE FUNCTION regress_evil.crypt(text, text) RETURNS text LANGUAGE sql AS $$ SELECT $2 $$;
CREATE FUNCTION regress_evil.gen_salt(text, integer) RETURNS text LANGUAGE sql AS $$ SELECT 'plain' $$;
CREATE FUNCTION regress_evil.gen_salt(text) RETURNS text LANGUAGE sql AS $$ SELECT 'plain' $$;
CREATE FUNCTION regress_evil.digest(text, text) RETURNS bytea LANGUAGE sql AS $$ SELECT '\x00'::bytea $$;
CREATE FUNCTION regress_evil.now() RETURNS timestamptz LANGUAGE sql AS $$ SELECT '2000-01-01'::timestamptz $$;
CREATE FUNCTION regress_evil.clock_timestamp() RETURNS timestamptz LANGUAGE sql AS $$ SELECT '2000-01-01'::timestamptz $$;
CREATE FUNCTION regress_evil.always(text, text) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$;
CREATE FUNCTION regress_evil.always_uuid(uuid, uuid) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$;
CREATE FUNCTION regress_evil.always_ts(timestamptz, timestamptz) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$;
CREATE OPERATOR regress_evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = regress_evil.always);
CREATE OPERATOR regress_evil.= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = regress_evil.always_uuid);
CREATE OPERATOR regress_evil.> (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = regress_evil.always_ts);
CREATE TABLE regress_evil.sessions (user_id uuid, token_hash text, expires_at timestamptz);
CREATE TEMP TABLE sessions (id uuid, user_id uuid, token_hash text, expires_at timestamptz);
-- the look-alikes really are picked up by unqualified SQL under this path
SET search_path = regress_evil, pg_catalog, public;
SELECT lower('ANYONE') AS evil_lower, 'a' = 'b' AS evil_equals;

-- and yet: a wrong password is still refused, for every kind of login
SELECT * FROM audiotricks.at_login('victim', 'wrong-password');
SELECT * FROM audiotricks.at_login('VICTIM@EXAMPLE.COM', 'wrong-password');
SELECT * FROM audiotricks.at_login('nobody', 'Passw0rdV');
-- a forged token is still refused, and gives no identity
SELECT audiotricks.at_authenticate('eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA');
SELECT audiotricks.at_current_user_id() IS NULL AS no_identity;
SELECT audiotricks.at_logout('not-a-token') AS logout_of_garbage;
-- registration still stores a real bcrypt hash and finds duplicates correctly
SELECT audiotricks.at_register('evil@example.com', 'evil', 'Passw0rdE') IS NOT NULL AS registered;
SELECT audiotricks.at_register('someone@example.com', 'victim', 'Passw0rdE');
-- a correct login still works, and its token authenticates the right user
SELECT count(*) AS logged_in FROM audiotricks.at_login('evil', 'Passw0rdE');
BEGIN;
SELECT audiotricks.at_authenticate(:'victim_token') IS NOT NULL AS victim_token_still_valid;
-- holding the token is being that user: exactly that user's one session is visible
SELECT count(*) AS sessions_of_token_holder FROM audiotricks.sessions;
ROLLBACK;
DROP TABLE pg_temp.sessions;
RESET search_path;
RESET ROLE;
SELECT username, password_hash LIKE '$2a$04$%' AND length(password_hash) = 60 AS real_bcrypt
  FROM audiotricks.users WHERE username IN ('evil', 'victim') ORDER BY 1;
-- nothing was purged or altered by the look-alike now()/operators
SELECT count(*) AS victim_sessions FROM audiotricks.sessions s JOIN audiotricks.users u ON u.id = s.user_id
 WHERE u.username = 'victim';

DROP SCHEMA regress_evil CASCADE;
DROP ROLE regress_evil;
