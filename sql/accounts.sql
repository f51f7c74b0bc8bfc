-- Accounts and tokens: at_register, at_login, at_authenticate, at_logout,
-- at_logout_all, at_change_password, at_purge_expired_sessions.
-- Tokens, hashes, ids and times are never printed: only their properties.
\set VERBOSITY terse
SET audiotricks.bcrypt_cost = 4;

-- helpers for the tests: base64url and an HS256/HS512 signer using pgcrypto
CREATE FUNCTION pg_temp.b64url(b bytea) RETURNS text LANGUAGE sql IMMUTABLE AS
$$ SELECT rtrim(translate(replace(encode(b, 'base64'), E'\n', ''), '+/', '-_'), '=') $$;
CREATE FUNCTION pg_temp.b64url_decode(t text) RETURNS bytea LANGUAGE sql IMMUTABLE AS
$$ SELECT decode(translate(t, '-_', '+/') || repeat('=', (4 - length(t) % 4) % 4), 'base64') $$;
CREATE FUNCTION pg_temp.claims(token text) RETURNS jsonb LANGUAGE sql IMMUTABLE AS
$$ SELECT convert_from(pg_temp.b64url_decode(split_part(token, '.', 2)), 'UTF8')::jsonb $$;
CREATE FUNCTION pg_temp.sign(header text, payload text, secret text, alg text DEFAULT 'sha256')
RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT h || '.' || p || '.' || pg_temp.b64url(public.hmac(h || '.' || p, secret, alg))
  FROM (SELECT pg_temp.b64url(convert_to(header, 'UTF8')) AS h,
               pg_temp.b64url(convert_to(payload, 'UTF8')) AS p) s
$$;
-- run a statement, print its SQLSTATE and message (or 'ok')
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ' ' || SQLERRM;
END $$;

------------------------------------------------------------------ register
SELECT audiotricks.at_register('Alice@Example.com', 'Alice', 'Passw0rdA') IS NOT NULL AS registered;
SELECT audiotricks.at_register('bob@example.com', 'bob_the-2nd', 'S3curePass') IS NOT NULL AS registered;
-- the password is stored as bcrypt at the configured cost, never in clear
SELECT username, password_hash LIKE '$2a$04$%' AS bcrypt_cost_4,
       length(password_hash) AS hash_len, password_hash <> 'Passw0rdA' AS not_clear
  FROM audiotricks.users ORDER BY username;
-- the settings row is created with the user
SELECT u.username, s.preferred_language, s.summary_quality, s.settings_json
  FROM audiotricks.users u JOIN audiotricks.user_settings s ON s.user_id = u.id ORDER BY 1;

-- duplicates, case-insensitively
SELECT pg_temp.try($$SELECT audiotricks.at_register('ALICE@example.COM', 'alice2', 'Passw0rdA')$$);
SELECT pg_temp.try($$SELECT audiotricks.at_register('alice2@example.com', 'aLiCe', 'Passw0rdA')$$);

-- email rules
SELECT e AS email, pg_temp.try(format('SELECT audiotricks.at_register(%L, %L, %L)', e, 'e' || n, 'Passw0rdA'))
  FROM unnest(ARRAY['plainaddress', '@example.com', 'a@', 'a@b', 'a b@example.com',
                    'a@@example.com', 'a@example..com', '.a@example.com', 'a.@example.com',
                    'a@-example.com', 'a@example.com-', 'a<b>@example.com', '',
                    repeat('a', 65) || '@example.com',
                    'a@' || repeat('b', 250) || '.com']) WITH ORDINALITY AS t(e, n);
-- Unicode controls and spaces (which the table's CHECK also refuses) are
-- invalid addresses too, not check violations (found by TAP 040)
SELECT c AS code_point, pg_temp.try(format('SELECT audiotricks.at_register(%L, %L, %L)',
       'a' || chr(c) || 'b@example.com', 'cp' || c, 'Passw0rdA'))
  FROM unnest(ARRAY[133, 5760, 8192, 8232, 12288]) AS t(c);
SELECT pg_temp.try($$SELECT audiotricks.at_register(NULL, 'nulluser', 'Passw0rdA')$$);
-- a 255-character address is accepted, 256 is not
SELECT pg_temp.try(format('SELECT audiotricks.at_register(%L, %L, %L)',
       repeat('a', 60) || '@' || repeat('b', 190) || '.com', 'long255', 'Passw0rdA'));
SELECT pg_temp.try(format('SELECT audiotricks.at_register(%L, %L, %L)',
       repeat('a', 60) || '@' || repeat('b', 191) || '.com', 'long256', 'Passw0rdA'));

-- username rules
SELECT u AS username, pg_temp.try(format('SELECT audiotricks.at_register(%L, %L, %L)', 'u' || n || '@example.com', u, 'Passw0rdA'))
  FROM unnest(ARRAY['', 'with space', 'dot.name', 'ünïcode', 'semi;colon', repeat('x', 101)]) WITH ORDINALITY AS t(u, n);
SELECT pg_temp.try(format('SELECT audiotricks.at_register(%L, %L, %L)', 'x100@example.com', repeat('x', 100), 'Passw0rdA'));
SELECT pg_temp.try($$SELECT audiotricks.at_register('nu@example.com', NULL, 'Passw0rdA')$$);

-- password rules: 8 characters, lower, upper, digit, at most 72 bytes
SELECT p AS password, pg_temp.try(format('SELECT audiotricks.at_register(%L, %L, %L)', 'p' || n || '@example.com', 'p' || n, p))
  FROM unnest(ARRAY['Sh0rt', 'alllower1', 'ALLUPPER1', 'NoDigitsHere', 'Pässw0rd',
                    'Aa1' || repeat('x', 69), 'Aa1' || repeat('x', 70),
                    'Aa1' || repeat('é', 35)]) WITH ORDINALITY AS t(p, n);
SELECT pg_temp.try($$SELECT audiotricks.at_register('np@example.com', 'np', NULL)$$);
-- non-ASCII letters count toward the length only ('Ä' is not an uppercase letter)
SELECT pg_temp.try($$SELECT audiotricks.at_register('ae@example.com', 'ae', 'ääääääa1')$$);

------------------------------------------------------------------ login
-- by email and by username, in any case
SELECT count(*) AS logins FROM (
  SELECT * FROM audiotricks.at_login('alice@example.com', 'Passw0rdA') UNION ALL
  SELECT * FROM audiotricks.at_login('ALICE@EXAMPLE.COM', 'Passw0rdA') UNION ALL
  SELECT * FROM audiotricks.at_login('alice', 'Passw0rdA') UNION ALL
  SELECT * FROM audiotricks.at_login('aLiCe', 'Passw0rdA')) l;
SELECT count(*) AS sessions FROM audiotricks.sessions s JOIN audiotricks.users u ON u.id = s.user_id
 WHERE u.username = 'Alice';
SELECT last_login_at IS NOT NULL AS last_login_set FROM audiotricks.users WHERE username = 'Alice';

-- every failure is the same 28P01
SELECT pg_temp.try(format('SELECT * FROM audiotricks.at_login(%L, %L)', l, p))
  FROM (VALUES ('alice', 'wrongPassw0rd'), ('nobody', 'Passw0rdA'), ('nobody@example.com', 'Passw0rdA'),
               ('alice', ''), ('', ''), ('alice', 'Passw0rdA' || repeat('x', 70))) v(l, p);
SELECT pg_temp.try('SELECT * FROM audiotricks.at_login(NULL, ''Passw0rdA'')');
SELECT pg_temp.try('SELECT * FROM audiotricks.at_login(''alice'', NULL)');
-- an inactive user cannot log in, with the same error
UPDATE audiotricks.users SET is_active = false WHERE username = 'bob_the-2nd';
SELECT pg_temp.try($$SELECT * FROM audiotricks.at_login('bob_the-2nd', 'S3curePass')$$);
UPDATE audiotricks.users SET is_active = true WHERE username = 'bob_the-2nd';

-- the token: HS256 JWT with the claims README.md lists, its SHA-256 stored, not the token
CREATE TEMP TABLE t AS SELECT * FROM audiotricks.at_login('alice', 'Passw0rdA');
SELECT length(token) BETWEEN 200 AND 400 AS plausible_length,
       array_length(string_to_array(token, '.'), 1) AS parts,
       convert_from(pg_temp.b64url_decode(split_part(token, '.', 1)), 'UTF8') AS header,
       (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(pg_temp.claims(token)) k) AS claims,
       pg_temp.claims(token)->>'sub' = user_id::text AS sub_is_user,
       pg_temp.claims(token)->>'sid' = session_id::text AS sid_is_session,
       pg_temp.claims(token)->>'role' AS role,
       pg_temp.claims(token)->>'iss' AS iss,
       (pg_temp.claims(token)->>'exp')::bigint - (pg_temp.claims(token)->>'iat')::bigint AS ttl_seconds,
       to_timestamp((pg_temp.claims(token)->>'exp')::bigint) = expires_at AS exp_is_expires_at,
       abs(extract(epoch FROM expires_at - now() - interval '7 days')) < 60 AS expires_in_7_days
  FROM t;
SELECT s.token_hash = encode(public.digest(t.token, 'sha256'), 'hex') AS hash_is_sha256_hex,
       s.expires_at = t.expires_at AS same_expiry,
       NOT EXISTS (SELECT FROM audiotricks.sessions WHERE token_hash = t.token) AS token_not_stored
  FROM t JOIN audiotricks.sessions s ON s.id = t.session_id;

-- jwt_role and session_ttl shape new tokens
SET audiotricks.jwt_role = 'app_user';
SET audiotricks.session_ttl = '15min';
SELECT pg_temp.claims(token)->>'role' AS role,
       (pg_temp.claims(token)->>'exp')::bigint - (pg_temp.claims(token)->>'iat')::bigint AS ttl_seconds
  FROM audiotricks.at_login('alice', 'Passw0rdA');
RESET audiotricks.jwt_role;
RESET audiotricks.session_ttl;
SELECT pg_temp.try($$SET audiotricks.jwt_role = 'bad"role'$$);
SELECT pg_temp.try($$SET audiotricks.bcrypt_cost = 3$$);
SELECT pg_temp.try($$SET audiotricks.bcrypt_cost = 32$$);
SELECT pg_temp.try($$SET audiotricks.jwt_secret = 'this-can-only-be-set-in-the-server-configuration'$$);

-- raising bcrypt_cost re-hashes at the next login
SET audiotricks.bcrypt_cost = 5;
SELECT count(*) FROM audiotricks.at_login('bob@example.com', 'S3curePass');
SELECT password_hash LIKE '$2a$05$%' AS upgraded_to_cost_5 FROM audiotricks.users WHERE username = 'bob_the-2nd';
SET audiotricks.bcrypt_cost = 4;
SELECT count(*) AS still_logs_in FROM audiotricks.at_login('bob@example.com', 'S3curePass');

------------------------------------------------------------------ authenticate
SELECT audiotricks.at_current_user_id() IS NULL AS no_identity_yet;
BEGIN;
SELECT audiotricks.at_authenticate(token) = user_id AS authenticated FROM t;
SELECT audiotricks.at_current_user_id() = (SELECT user_id FROM t) AS identity_set;
COMMIT;
SELECT audiotricks.at_current_user_id() IS NULL AS identity_gone_after_commit;
BEGIN;
SELECT audiotricks.at_authenticate(token) IS NOT NULL FROM t;
ROLLBACK;
SELECT audiotricks.at_current_user_id() IS NULL AS identity_gone_after_rollback;

-- savepoints: an identity set in a rolled-back savepoint is undone with it,
-- one set in a released savepoint stays, and an earlier identity comes back
CREATE TEMP TABLE t_bob AS SELECT * FROM audiotricks.at_login('bob_the-2nd', 'S3curePass');
BEGIN;
SAVEPOINT a;
SELECT audiotricks.at_authenticate(token) IS NOT NULL FROM t;
ROLLBACK TO SAVEPOINT a;
SELECT audiotricks.at_current_user_id() IS NULL AS undone_by_rollback_to;
SAVEPOINT b;
SELECT audiotricks.at_authenticate(token) IS NOT NULL FROM t;
RELEASE SAVEPOINT b;
SELECT audiotricks.at_current_user_id() = (SELECT user_id FROM t) AS kept_after_release;
SAVEPOINT c;
SELECT audiotricks.at_authenticate(token) IS NOT NULL FROM t_bob;
SELECT audiotricks.at_current_user_id() = (SELECT user_id FROM t_bob) AS bob_inside_savepoint;
ROLLBACK TO SAVEPOINT c;
SELECT audiotricks.at_current_user_id() = (SELECT user_id FROM t) AS alice_back;
COMMIT;

-- bad tokens: all 28000, before or after any crypto
SELECT pg_temp.try('SELECT audiotricks.at_authenticate(NULL)');
SELECT pg_temp.try($$SELECT audiotricks.at_authenticate('')$$);
SELECT pg_temp.try($$SELECT audiotricks.at_authenticate('not-a-token')$$);
SELECT pg_temp.try($$SELECT audiotricks.at_authenticate('a.b.c')$$);
SELECT pg_temp.try(format('SELECT audiotricks.at_authenticate(%L)', repeat('A', 5000)));
SELECT pg_temp.try(format('SELECT audiotricks.at_authenticate(%L)', token || 'x')) FROM t;
SELECT pg_temp.try(format('SELECT audiotricks.at_authenticate(%L)', token || '.')) FROM t;
SELECT pg_temp.try(format('SELECT audiotricks.at_authenticate(%L)', ' ' || token)) FROM t;
SELECT pg_temp.try(format('SELECT audiotricks.at_authenticate(%L)', left(token, -1))) FROM t;
-- tampered payload (same signature), tampered signature
SELECT pg_temp.try(format('SELECT audiotricks.at_authenticate(%L)',
         split_part(token, '.', 1) || '.' ||
         pg_temp.b64url(convert_to(replace(pg_temp.claims(token)::text, '"authenticated"', '"admin"'), 'UTF8')) || '.' ||
         split_part(token, '.', 3))) FROM t;
SELECT pg_temp.try(format('SELECT audiotricks.at_authenticate(%L)',
         split_part(token, '.', 1) || '.' || split_part(token, '.', 2) || '.' ||
         translate(split_part(token, '.', 3), 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz',
                                               'BCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyzA'))) FROM t;

-- forged tokens, correctly signed with the real secret where a signature applies
CREATE TEMP TABLE secret AS SELECT current_setting('audiotricks.jwt_secret') AS s;
CREATE TEMP TABLE forged(name text, token text);
INSERT INTO forged
SELECT 'alg none', pg_temp.b64url('{"alg":"none","typ":"JWT"}') || '.' ||
       pg_temp.b64url(convert_to(pg_temp.claims(t.token)::text, 'UTF8')) || '.'
  FROM t
UNION ALL
SELECT 'HS512', pg_temp.sign('{"alg":"HS512","typ":"JWT"}', pg_temp.claims(t.token)::text, s.s, 'sha512') FROM t, secret s
UNION ALL
SELECT 'RS256 header', pg_temp.sign('{"alg":"RS256","typ":"JWT"}', pg_temp.claims(t.token)::text, s.s) FROM t, secret s
UNION ALL
SELECT 'header with spaces', pg_temp.sign('{"alg": "HS256", "typ": "JWT"}', pg_temp.claims(t.token)::text, s.s) FROM t, secret s
UNION ALL
SELECT 'wrong secret', pg_temp.sign('{"alg":"HS256","typ":"JWT"}', pg_temp.claims(t.token)::text, 'another-secret-of-at-least-32-bytes!!') FROM t
UNION ALL
SELECT 'missing exp', pg_temp.sign('{"alg":"HS256","typ":"JWT"}', (pg_temp.claims(t.token) - 'exp')::text, s.s) FROM t, secret s
UNION ALL
SELECT 'missing iat', pg_temp.sign('{"alg":"HS256","typ":"JWT"}', (pg_temp.claims(t.token) - 'iat')::text, s.s) FROM t, secret s
UNION ALL
SELECT 'missing sub', pg_temp.sign('{"alg":"HS256","typ":"JWT"}', (pg_temp.claims(t.token) - 'sub')::text, s.s) FROM t, secret s
UNION ALL
SELECT 'missing sid', pg_temp.sign('{"alg":"HS256","typ":"JWT"}', (pg_temp.claims(t.token) - 'sid')::text, s.s) FROM t, secret s
UNION ALL
SELECT 'missing iss', pg_temp.sign('{"alg":"HS256","typ":"JWT"}', (pg_temp.claims(t.token) - 'iss')::text, s.s) FROM t, secret s
UNION ALL
SELECT 'wrong iss', pg_temp.sign('{"alg":"HS256","typ":"JWT"}', jsonb_set(pg_temp.claims(t.token), '{iss}', '"other"')::text, s.s) FROM t, secret s
UNION ALL
SELECT 'expired', pg_temp.sign('{"alg":"HS256","typ":"JWT"}',
       jsonb_set(pg_temp.claims(t.token), '{exp}', to_jsonb(extract(epoch FROM now())::bigint - 10))::text, s.s) FROM t, secret s
UNION ALL
SELECT 'exp as string', pg_temp.sign('{"alg":"HS256","typ":"JWT"}',
       jsonb_set(pg_temp.claims(t.token), '{exp}', to_jsonb((pg_temp.claims(t.token)->>'exp')))::text, s.s) FROM t, secret s
UNION ALL
SELECT 'signed but no session (other sid)', pg_temp.sign('{"alg":"HS256","typ":"JWT"}',
       jsonb_set(pg_temp.claims(t.token), '{sid}', to_jsonb(gen_random_uuid()::text))::text, s.s) FROM t, secret s
UNION ALL
SELECT 'signed, session of another user (sub swapped)', pg_temp.sign('{"alg":"HS256","typ":"JWT"}',
       jsonb_set(pg_temp.claims(t.token), '{sub}', to_jsonb(b.user_id::text))::text, s.s) FROM t, t_bob b, secret s
UNION ALL
SELECT 'duplicate sub claim', pg_temp.sign('{"alg":"HS256","typ":"JWT"}',
       rtrim(pg_temp.claims(t.token)::text, '}') || ', "sub": "' || b.user_id || '"}', s.s) FROM t, t_bob b, secret s;
SELECT name, pg_temp.try(format('SELECT audiotricks.at_authenticate(%L)', token)) FROM forged ORDER BY name;
-- the same claims re-signed exactly as we sign are refused too: the session
-- row must match the SHA-256 of the exact token
SELECT pg_temp.try(format('SELECT audiotricks.at_authenticate(%L)',
       pg_temp.sign('{"alg":"HS256","typ":"JWT"}', pg_temp.claims(t.token)::text, s.s))) FROM t, secret s;

-- A token rebuilt from the session's columns with the secret (what a dump,
-- a replica or a reader of sessions plus the secret would allow) is refused:
-- every token carries a random jti that is stored nowhere, so its SHA-256
-- in sessions cannot be reproduced.  Both candidate iat seconds are tried,
-- in the exact byte layout the extension signs.
SELECT count(*) AS rebuilt_tries,
       count(*) FILTER (WHERE pg_temp.try(format('SELECT audiotricks.at_authenticate(%L)', tok)) = 'ok') AS rebuilt_accepted
  FROM (SELECT pg_temp.sign('{"alg":"HS256","typ":"JWT"}',
                 format('{"sub":"%s","sid":"%s","role":"authenticated","iat":%s,"exp":%s,"iss":"audiotricks"}',
                        se.user_id, se.id, extract(epoch FROM se.created_at)::bigint + d,
                        extract(epoch FROM se.expires_at)::bigint), s.s) AS tok
          FROM audiotricks.sessions se, secret s, generate_series(-1, 1) d
         WHERE se.id = (SELECT session_id FROM t)) r;
SELECT pg_temp.try(format('SELECT audiotricks.at_authenticate(%L)', token)) AS the_real_token FROM t;
SELECT length(pg_temp.claims(token)->>'jti') AS jti_length,
       (SELECT count(DISTINCT pg_temp.claims(x.token)->>'jti') FROM (
          SELECT token FROM audiotricks.at_login('alice', 'Passw0rdA')
          UNION ALL SELECT token FROM audiotricks.at_login('alice', 'Passw0rdA')) x) AS distinct_jti_of_two
  FROM t;

-- a token is valid only for the role it names: with another
-- audiotricks.jwt_role, tokens issued for the old one are refused (by
-- at_authenticate and at_refresh), and accepted again when it is back
SET audiotricks.jwt_role = 'other_role';
SELECT pg_temp.try(format('SELECT audiotricks.at_authenticate(%L)', token)) AS other_role_authenticate FROM t;
SELECT pg_temp.try(format('SELECT * FROM audiotricks.at_refresh(%L)', token)) AS other_role_refresh FROM t;
RESET audiotricks.jwt_role;
SELECT pg_temp.try(format('SELECT audiotricks.at_authenticate(%L)', token)) AS role_back FROM t;

-- the secret is shown to superusers only; pg_monitor (pg_read_all_settings)
-- passes the superuser-only check but gets no value
CREATE ROLE regress_monitor;
GRANT pg_monitor TO regress_monitor;
SET ROLE regress_monitor;
SHOW audiotricks.jwt_secret;
SELECT current_setting('audiotricks.jwt_secret') AS monitor_current_setting;
SELECT count(*) AS listed_in_pg_settings FROM pg_settings WHERE name = 'audiotricks.jwt_secret';
RESET ROLE;
SELECT current_setting('audiotricks.jwt_secret') = s AS superuser_reads_it FROM secret;
DROP ROLE regress_monitor;

-- an inactive user's tokens stop working: deactivating a user, by any path,
-- deletes their sessions in the same statement (users_end_sessions_on_deactivate)
SELECT count(*) AS bob_sessions_before FROM audiotricks.sessions WHERE user_id = (SELECT user_id FROM t_bob);
UPDATE audiotricks.users SET is_active = false WHERE username = 'bob_the-2nd';
SELECT count(*) AS bob_sessions_after FROM audiotricks.sessions WHERE user_id = (SELECT user_id FROM t_bob);
SELECT pg_temp.try(format('SELECT audiotricks.at_authenticate(%L)', token)) FROM t_bob;
-- reactivation does not revive the old sessions: bob logs in again
UPDATE audiotricks.users SET is_active = true WHERE username = 'bob_the-2nd';
SELECT pg_temp.try(format('SELECT audiotricks.at_authenticate(%L)', token)) FROM t_bob;
DROP TABLE t_bob;
CREATE TEMP TABLE t_bob AS SELECT * FROM audiotricks.at_login('bob_the-2nd', 'S3curePass');
SELECT pg_temp.try(format('SELECT audiotricks.at_authenticate(%L)', token)) FROM t_bob;
-- other users' sessions are untouched by bob's deactivation
SELECT pg_temp.try(format('SELECT audiotricks.at_authenticate(%L)', token)) FROM t;

------------------------------------------------------------------ logout
CREATE TEMP TABLE t2 AS SELECT * FROM audiotricks.at_login('alice', 'Passw0rdA');
SELECT audiotricks.at_logout(token) AS ended FROM t2;
SELECT audiotricks.at_logout(token) AS ended_again FROM t2;
SELECT pg_temp.try(format('SELECT audiotricks.at_authenticate(%L)', token)) FROM t2;
SELECT audiotricks.at_logout('garbage') AS garbage_ends_nothing;
SELECT audiotricks.at_logout(repeat('x', 10000)) AS huge_ends_nothing;
-- without an argument: the current session, which needs an identity
SELECT pg_temp.try('SELECT audiotricks.at_logout()');
CREATE TEMP TABLE t3 AS SELECT * FROM audiotricks.at_login('alice', 'Passw0rdA');
BEGIN;
SELECT audiotricks.at_authenticate(token) IS NOT NULL FROM t3;
SELECT audiotricks.at_logout() AS ended_current;
SELECT audiotricks.at_current_user_id() IS NULL AS identity_ended_with_session;
COMMIT;
SELECT pg_temp.try(format('SELECT audiotricks.at_authenticate(%L)', token)) FROM t3;

-- logout-all ends every session of the user and none of another's
SELECT pg_temp.try('SELECT audiotricks.at_logout_all()');
BEGIN;
SELECT audiotricks.at_authenticate(token) IS NOT NULL FROM t;
SELECT audiotricks.at_logout_all() >= 5 AS ended_several;
SELECT audiotricks.at_current_user_id() IS NULL AS identity_ended;
COMMIT;
SELECT count(*) AS alice_sessions FROM audiotricks.sessions s JOIN audiotricks.users u ON u.id = s.user_id
 WHERE u.username = 'Alice';
SELECT pg_temp.try(format('SELECT audiotricks.at_authenticate(%L)', token)) FROM t;
SELECT pg_temp.try(format('SELECT audiotricks.at_authenticate(%L)', token)) FROM t_bob;

------------------------------------------------------------------ change password
CREATE TEMP TABLE c1 AS SELECT * FROM audiotricks.at_login('alice', 'Passw0rdA');
CREATE TEMP TABLE c2 AS SELECT * FROM audiotricks.at_login('alice', 'Passw0rdA');
SELECT pg_temp.try($$SELECT audiotricks.at_change_password('Passw0rdA', 'N3wPassword')$$);
BEGIN;
SELECT audiotricks.at_authenticate(token) IS NOT NULL FROM c1;
SELECT pg_temp.try($$SELECT audiotricks.at_change_password('wrong', 'N3wPassword')$$);
SELECT pg_temp.try($$SELECT audiotricks.at_change_password('Passw0rdA', 'weak')$$);
SELECT pg_temp.try($$SELECT audiotricks.at_change_password('Passw0rdA', NULL)$$);
SELECT pg_temp.try($$SELECT audiotricks.at_change_password('Passw0rdA', 'N3wPassword')$$);
COMMIT;
-- the session that changed it survives, the others end; the old password is gone
SELECT pg_temp.try(format('SELECT audiotricks.at_authenticate(%L)', token)) FROM c1;
SELECT pg_temp.try(format('SELECT audiotricks.at_authenticate(%L)', token)) FROM c2;
SELECT pg_temp.try($$SELECT * FROM audiotricks.at_login('alice', 'Passw0rdA')$$);
SELECT count(*) AS new_password_works FROM audiotricks.at_login('alice', 'N3wPassword');

------------------------------------------------------------------ lifetime cap
-- session_max_lifetime caps a token's exp at its family's login + the cap:
-- just below the TTL it wins, just above it the TTL does
SELECT clock_timestamp() AS cap_start \gset
SET audiotricks.session_ttl = '10s';
SET audiotricks.session_max_lifetime = '9s';
SELECT (pg_temp.claims(token)->>'exp')::bigint - (pg_temp.claims(token)->>'iat')::bigint BETWEEN 8 AND 9 AS cap_below_ttl
  FROM audiotricks.at_login('bob_the-2nd', 'S3curePass');
SET audiotricks.session_max_lifetime = '11s';
SELECT (pg_temp.claims(token)->>'exp')::bigint - (pg_temp.claims(token)->>'iat')::bigint AS ttl_below_cap
  FROM audiotricks.at_login('bob_the-2nd', 'S3curePass');
RESET audiotricks.session_ttl;
-- refreshing never moves exp past the family's deadline
SET audiotricks.session_max_lifetime = '10s';
CREATE TEMP TABLE capped AS SELECT * FROM audiotricks.at_login('bob_the-2nd', 'S3curePass');
CREATE TEMP TABLE capped2 AS SELECT r.* FROM capped, audiotricks.at_refresh(capped.token) r;
SELECT (SELECT expires_at FROM capped2) <= (SELECT expires_at FROM capped) AS refresh_not_extended,
       (SELECT expires_at FROM capped2) > now() AS still_valid;
-- a family older than a cap lowered after its login cannot be refreshed
-- (its current token stays valid until its own exp)
RESET audiotricks.session_max_lifetime;
CREATE TEMP TABLE old_family AS SELECT * FROM audiotricks.at_login('bob_the-2nd', 'S3curePass');
SELECT pg_sleep(1.1);
SET audiotricks.session_max_lifetime = 1;
SELECT pg_temp.try(format('SELECT * FROM audiotricks.at_refresh(%L)', token)) AS refresh_past_cap FROM old_family;
SELECT pg_temp.try(format('SELECT audiotricks.at_authenticate(%L)', token)) AS token_still_valid FROM old_family;
RESET audiotricks.session_max_lifetime;
SELECT count(*) AS refresh_under_cap FROM old_family, audiotricks.at_refresh(old_family.token);
-- (the sessions of this section would expire at times the counts below
-- cannot predict on a slow machine)
DELETE FROM audiotricks.sessions WHERE created_at >= :'cap_start';

------------------------------------------------------------------ expiry and purge
-- (5 s: room for a slow login, as under valgrind, before the first check)
SET audiotricks.session_ttl = 5;
CREATE TEMP TABLE short AS SELECT * FROM audiotricks.at_login('bob_the-2nd', 'S3curePass');
RESET audiotricks.session_ttl;
SELECT pg_temp.try(format('SELECT audiotricks.at_authenticate(%L)', token)) FROM short;
SELECT pg_sleep(6.1);
SELECT pg_temp.try(format('SELECT audiotricks.at_authenticate(%L)', token)) FROM short;
-- a session row that expired (even if the token's exp has not) is refused
UPDATE audiotricks.sessions SET expires_at = now() - interval '1 second'
 WHERE id = (SELECT session_id FROM t_bob);
SELECT pg_temp.try(format('SELECT audiotricks.at_authenticate(%L)', token)) FROM t_bob;
SELECT audiotricks.at_logout(token) AS logout_of_expired_is_false FROM t_bob;
CREATE TEMP TABLE short2 AS SELECT * FROM audiotricks.at_login('bob_the-2nd', 'S3curePass');
UPDATE audiotricks.sessions SET expires_at = now() - interval '1 hour' WHERE id = (SELECT session_id FROM short2);
SELECT count(*) FILTER (WHERE expires_at <= now()) AS expired_before,
       count(*) FILTER (WHERE expires_at > now()) AS live_before FROM audiotricks.sessions;
SELECT audiotricks.at_purge_expired_sessions() AS purged;
SELECT count(*) FILTER (WHERE expires_at <= now()) AS expired_after,
       count(*) FILTER (WHERE expires_at > now()) AS live_after FROM audiotricks.sessions;

------------------------------------------------------------------ concurrency-safe duplicates
-- ON CONFLICT inside at_register maps a unique violation to 23505 with the right message
SELECT pg_temp.try($$SELECT audiotricks.at_register('BOB@EXAMPLE.COM', 'someone', 'Passw0rdA')$$);
SELECT pg_temp.try($$SELECT audiotricks.at_register('someone@example.com', 'BOB_THE-2ND', 'Passw0rdA')$$);

DROP TABLE t, t_bob, t2, t3, c1, c2, short, short2, secret, forged;
