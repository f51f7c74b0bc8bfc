-- Row-level security and privileges, as non-superuser application roles:
-- each user sees and changes only their own rows, identity comes only from a
-- verified token, and secret columns are never readable.
\set VERBOSITY terse
SET audiotricks.bcrypt_cost = 4;
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ' ' || SQLERRM;
END $$;
GRANT EXECUTE ON FUNCTION pg_temp.try(text) TO PUBLIC;

CREATE ROLE regress_app LOGIN;
CREATE ROLE regress_anon LOGIN;
GRANT audiotricks_user TO regress_app;
GRANT audiotricks_anon TO regress_anon;

SELECT audiotricks.at_register('ann@example.com', 'ann', 'Passw0rdA') IS NOT NULL AS ann;
SELECT audiotricks.at_register('ben@example.com', 'ben', 'Passw0rdB') IS NOT NULL AS ben;
SELECT token AS ann_token, user_id AS ann_id FROM audiotricks.at_login('ann', 'Passw0rdA') \gset
SELECT token AS ben_token, user_id AS ben_id FROM audiotricks.at_login('ben', 'Passw0rdB') \gset
-- history: 3000 rows for ann, 3000 for ben (as superuser, who bypasses RLS)
INSERT INTO audiotricks.audio_history (user_id, title, created_at)
SELECT u.id, u.username || ' ' || g, now() - g * interval '1 minute'
  FROM audiotricks.users u, generate_series(1, 3000) g WHERE u.username IN ('ann', 'ben');
ANALYZE audiotricks.audio_history;

SET ROLE regress_app;
-- no identity: nothing in any table
SELECT (SELECT count(*) FROM audiotricks.audio_history) AS history,
       (SELECT count(*) FROM audiotricks.sessions) AS sessions,
       (SELECT count(*) FROM audiotricks.user_settings) AS settings,
       (SELECT count(id) FROM audiotricks.users) AS users;
SELECT audiotricks.at_current_user_id() IS NULL AS no_identity;
-- no identity: writes touch nothing, inserts are refused
UPDATE audiotricks.audio_history SET title = 'x';
DELETE FROM audiotricks.audio_history;
SELECT pg_temp.try($$INSERT INTO audiotricks.audio_history (title) VALUES ('anonymous')$$);
SELECT pg_temp.try(format('INSERT INTO audiotricks.audio_history (user_id, title) VALUES (%L, %L)', :'ann_id', 'claimed'));

-- with ann's token: only ann's rows
BEGIN;
SELECT audiotricks.at_authenticate(:'ann_token') = :'ann_id' AS is_ann;
SELECT (SELECT count(*) FROM audiotricks.audio_history) AS history,
       (SELECT count(*) FROM audiotricks.audio_history WHERE title LIKE 'ben %') AS bens_history,
       (SELECT count(*) FROM audiotricks.sessions) AS sessions,
       (SELECT count(*) FROM audiotricks.user_settings) AS settings,
       (SELECT string_agg(username, ',') FROM audiotricks.users) AS users;
-- ben's rows cannot be changed or deleted
UPDATE audiotricks.audio_history SET title = 'hijacked' WHERE user_id = :'ben_id';
DELETE FROM audiotricks.audio_history WHERE user_id = :'ben_id';
UPDATE audiotricks.user_settings SET preferred_language = 'xx' WHERE user_id = :'ben_id';
-- a row cannot be given to ben, nor moved to him
SELECT pg_temp.try(format('INSERT INTO audiotricks.audio_history (user_id, title) VALUES (%L, %L)', :'ben_id', 'gift'));
SELECT pg_temp.try(format('UPDATE audiotricks.audio_history SET user_id = %L', :'ben_id'));
-- ann's own rows: insert (user_id defaults to the identity), update, delete
INSERT INTO audiotricks.audio_history (title) VALUES ('ann new') RETURNING title, user_id = :'ann_id' AS owned_by_ann;
UPDATE audiotricks.audio_history SET title = 'ann renamed' WHERE title = 'ann new';
DELETE FROM audiotricks.audio_history WHERE title = 'ann renamed';
UPDATE audiotricks.user_settings SET preferred_language = 'de' RETURNING preferred_language;
-- secret columns are not readable, not even one's own
SELECT pg_temp.try('SELECT password_hash FROM audiotricks.users');
SELECT pg_temp.try('SELECT * FROM audiotricks.users');
SELECT pg_temp.try('SELECT token_hash FROM audiotricks.sessions');
SELECT pg_temp.try('SELECT openai_api_key_encrypted FROM audiotricks.user_settings');
SELECT pg_temp.try('SELECT elevenlabs_api_key_encrypted FROM audiotricks.user_settings');
SELECT pg_temp.try($$UPDATE audiotricks.user_settings SET openai_api_key_encrypted = 'x'$$);
SELECT pg_temp.try($$UPDATE audiotricks.users SET is_active = false$$);
SELECT pg_temp.try($$UPDATE audiotricks.users SET password_hash = 'x'$$);
SELECT pg_temp.try($$INSERT INTO audiotricks.sessions (user_id, token_hash, expires_at) VALUES (audiotricks.at_current_user_id(), 'x', now() + interval '1 year')$$);
SELECT pg_temp.try($$DELETE FROM audiotricks.users$$);
-- maintenance functions are not for application roles
SELECT pg_temp.try('SELECT audiotricks.at_purge_expired_sessions()');
COMMIT;

-- the identity ends with the transaction
SELECT count(*) AS history_after_commit FROM audiotricks.audio_history;

-- a client-writable setting grants nothing: request.jwt.claims is never trusted
BEGIN;
SELECT set_config('request.jwt.claims', json_build_object('sub', :'ann_id', 'role', 'authenticated')::text, true) IS NOT NULL;
SELECT set_config('request.jwt.claim.sub', :'ann_id', true) IS NOT NULL;
SELECT audiotricks.at_current_user_id() IS NULL AS claims_ignored, count(*) AS history FROM audiotricks.audio_history;
COMMIT;

-- PostgREST's request.headers: the bearer token is verified like at_authenticate
BEGIN;
SELECT set_config('request.headers', json_build_object('authorization', 'Bearer ' || :'ben_token', 'accept', '*/*')::text, true) IS NOT NULL;
SELECT audiotricks.at_current_user_id() = :'ben_id' AS is_ben,
       count(*) AS history, count(*) FILTER (WHERE title LIKE 'ann %') AS anns
  FROM audiotricks.audio_history;
SELECT pg_temp.try('SELECT audiotricks.at_postgrest_pre_request()') AS pre_request;
COMMIT;
BEGIN;
SELECT set_config('request.headers', json_build_object('authorization', 'bearer   ' || :'ben_token')::text, true) IS NOT NULL;
SELECT audiotricks.at_current_user_id() = :'ben_id' AS scheme_case_insensitive;
COMMIT;
-- a forged, malformed or duplicated header gives no identity, and pre_request raises 28000
CREATE TEMP TABLE headers(name text, h text);
GRANT SELECT ON headers TO PUBLIC;
INSERT INTO headers VALUES
  ('tampered token', json_build_object('authorization', 'Bearer ' || :'ben_token' || 'x')::text),
  ('not bearer', json_build_object('authorization', 'Basic ' || :'ben_token')::text),
  ('empty bearer', '{"authorization": "Bearer "}'),
  ('malformed json', '{"authorization": "Bearer ' || :'ben_token'),
  ('duplicate header', '{"authorization": "Bearer ' || :'ben_token' || '", "authorization": "Bearer ' || :'ann_token' || '"}'),
  ('escaped token', '{"authorization": "Bearer \u0041' || :'ben_token' || '"}'),
  ('array', '["authorization"]'),
  ('number', '{"authorization": 1}');
SELECT name,
       pg_temp.try(format('SELECT set_config(%L, %L, true), audiotricks.at_postgrest_pre_request()', 'request.headers', h)) AS pre_request,
       (SELECT audiotricks.at_current_user_id() FROM (SELECT set_config('request.headers', h, true)) s) IS NULL AS no_identity
  FROM headers ORDER BY name;
-- what PostgREST leaves behind (an empty string) or no authorization header: anonymous, no error
BEGIN;
SELECT set_config('request.headers', '', true) IS NOT NULL;
SELECT audiotricks.at_current_user_id() IS NULL AS empty_is_anonymous, pg_temp.try('SELECT audiotricks.at_postgrest_pre_request()') AS pre_request;
SELECT set_config('request.headers', '{"accept": "*/*"}', true) IS NOT NULL;
SELECT audiotricks.at_current_user_id() IS NULL AS no_header_is_anonymous, pg_temp.try('SELECT audiotricks.at_postgrest_pre_request()') AS pre_request;
COMMIT;
-- a revoked token in the header: nothing visible, and pre_request raises
RESET ROLE;
SELECT token AS cat_token FROM audiotricks.at_login('ben', 'Passw0rdB') \gset
SELECT audiotricks.at_logout(:'cat_token');
SET ROLE regress_app;
BEGIN;
SELECT set_config('request.headers', json_build_object('authorization', 'Bearer ' || :'cat_token')::text, true) IS NOT NULL;
SELECT count(*) AS revoked_sees FROM audiotricks.audio_history;
SELECT pg_temp.try('SELECT audiotricks.at_postgrest_pre_request()');
COMMIT;

-- the identity is an InitPlan and the composite index serves the history page
BEGIN;
SELECT audiotricks.at_authenticate(:'ann_token') IS NOT NULL;
-- (each partition's copy of the index, merged in order; month names vary)
CREATE FUNCTION pg_temp.plan(q text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE line text;
BEGIN
  FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
    RETURN NEXT regexp_replace(line, 'audio_history_p[0-9]+', 'audio_history_pN', 'g');
  END LOOP;
END $$;
SELECT * FROM pg_temp.plan('SELECT id, title, created_at FROM audiotricks.audio_history ORDER BY created_at DESC, id DESC LIMIT 20');
-- sessions: the identity once (an InitPlan), compared with each row's
-- user_id (the scan itself follows the table's statistics)
SELECT bool_or(l ~ 'InitPlan 1 \(returns \$0\)') AS identity_once,
       bool_or(l ~ '\(user_id = \$0\)') AS rows_compared_with_it
  FROM pg_temp.plan('SELECT count(*) FROM audiotricks.sessions') l;
DROP FUNCTION pg_temp.plan(text);
-- the same results with parallel workers forced
SET LOCAL force_parallel_mode = regress;
SELECT count(*) AS history, count(*) FILTER (WHERE title LIKE 'ben %') AS bens FROM audiotricks.audio_history;
SELECT string_agg(username, ',') AS users FROM audiotricks.users;
COMMIT;
SET force_parallel_mode = regress;
SELECT count(*) AS history_without_identity FROM audiotricks.audio_history;
RESET force_parallel_mode;

RESET ROLE;
-- the anonymous role can register and log in, but reads no table
SET ROLE regress_anon;
SELECT audiotricks.at_register('cid@example.com', 'cid', 'Passw0rdC') IS NOT NULL AS anon_registers;
SELECT count(*) AS anon_logs_in FROM audiotricks.at_login('cid', 'Passw0rdC');
SELECT pg_temp.try('SELECT count(*) FROM audiotricks.audio_history');
SELECT pg_temp.try('SELECT count(id) FROM audiotricks.users');
SELECT pg_temp.try('SELECT audiotricks.at_logout_all()');
RESET ROLE;

-- a role with no audiotricks grant can do nothing at all
CREATE ROLE regress_nobody LOGIN;
SET ROLE regress_nobody;
SELECT pg_temp.try($$SELECT audiotricks.at_register('dan@example.com', 'dan', 'Passw0rdD')$$);
SELECT pg_temp.try($$SELECT audiotricks.at_authenticate('x')$$);
SELECT pg_temp.try('SELECT audiotricks.at_current_user_id()');
RESET ROLE;

DROP TABLE headers;
DROP ROLE regress_app, regress_anon, regress_nobody;
