-- Attacks, from the attacker's side: each case isolates one check (every
-- other check would pass), so that a bug in that one check shows.  Found by
-- mutation testing (test/mutation/run): each of these single-line bugs once
-- passed the whole suite.
\set VERBOSITY terse
SET audiotricks.bcrypt_cost = 4;
CREATE SCHEMA regress_attacks;
-- run a statement, print its SQLSTATE and message (or 'ok')
CREATE FUNCTION regress_attacks.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ' ' || SQLERRM;
END $$;
CREATE FUNCTION regress_attacks.auth(token text) RETURNS text LANGUAGE sql AS $$
  SELECT regress_attacks.try(format('SELECT audiotricks.at_authenticate(%L)', token)) $$;
CREATE FUNCTION regress_attacks.sha256_hex(t text) RETURNS text LANGUAGE sql AS $$
  SELECT encode(public.digest(t, 'sha256'), 'hex') $$;
CREATE FUNCTION regress_attacks.b64url_decode(t text) RETURNS bytea LANGUAGE sql IMMUTABLE AS
$$ SELECT decode(translate(t, '-_', '+/') || repeat('=', (4 - length(t) % 4) % 4), 'base64') $$;
-- the token with bit b of the 6-bit value of its signature's character
-- number pos (1-based) flipped; the result is still canonical base64url
-- when the flipped bit carries data
CREATE FUNCTION regress_attacks.flip(token text, pos int, b int) RETURNS text LANGUAGE sql AS $$
  SELECT split_part(token, '.', 1) || '.' || split_part(token, '.', 2) || '.' ||
         overlay(sig PLACING substr(a, ((strpos(a, substr(sig, pos, 1)) - 1) # b) + 1, 1) FROM pos FOR 1)
    FROM (SELECT split_part(token, '.', 3) AS sig,
                 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'::text AS a) s $$;
-- which of the 32 MAC bytes (1-based) differ between two tokens' signatures
CREATE FUNCTION regress_attacks.mac_diff(a text, b text) RETURNS int[] LANGUAGE sql AS $$
  SELECT array_agg(i + 1 ORDER BY i)
    FROM (SELECT regress_attacks.b64url_decode(split_part(a, '.', 3)) AS x,
                 regress_attacks.b64url_decode(split_part(b, '.', 3)) AS y) s,
         generate_series(0, 31) i
   WHERE length(x) = 32 AND length(y) = 32 AND get_byte(x, i) <> get_byte(y, i) $$;

SELECT audiotricks.at_register('mallory@example.com', 'att_mallory', 'Passw0rdM') IS NOT NULL AS mallory,
       audiotricks.at_register('victor@example.com', 'att_victor', 'Passw0rdV') IS NOT NULL AS victor;
CREATE TABLE regress_attacks.tokens(name text PRIMARY KEY, token text, user_id uuid, session_id uuid);
-- a new session of mallory's, kept under name (one login per call)
CREATE FUNCTION regress_attacks.login(name text) RETURNS boolean LANGUAGE sql AS $$
  INSERT INTO regress_attacks.tokens
  SELECT name, l.token, l.user_id, l.session_id FROM audiotricks.at_login('att_mallory', 'Passw0rdM') l
  RETURNING true $$;

------------------------------------------------------------------ expired token, live session row
-- A token whose exp has passed is refused although its session row is still
-- live (here moved into the future by hand): the JWT's own exp is checked,
-- for a token this backend never saw and for one it has cached.  The
-- lifetime (5 s) leaves room for slow logins (valgrind) before the first check.
SET audiotricks.session_ttl = 5;
SELECT count(*) FILTER (WHERE regress_attacks.login(n)) AS sessions FROM unnest(ARRAY['exp_fresh', 'exp_cached']) n;
RESET audiotricks.session_ttl;
SELECT regress_attacks.auth(token) AS cached_while_valid FROM regress_attacks.tokens WHERE name = 'exp_cached';
UPDATE audiotricks.sessions SET expires_at = now() + interval '1 hour'
 WHERE id IN (SELECT session_id FROM regress_attacks.tokens WHERE name LIKE 'exp\_%');
SELECT pg_sleep(6.1);
SELECT t.name, s.expires_at > now() AS row_live, regress_attacks.auth(t.token)
  FROM regress_attacks.tokens t JOIN audiotricks.sessions s ON s.id = t.session_id
 WHERE t.name = 'exp_cached';
\c
SELECT t.name, s.expires_at > now() AS row_live, regress_attacks.auth(t.token)
  FROM regress_attacks.tokens t JOIN audiotricks.sessions s ON s.id = t.session_id
 WHERE t.name LIKE 'exp\_%' ORDER BY t.name;

------------------------------------------------------------------ a signature wrong only in its second half
-- The session row is keyed to the forged token's SHA-256 (as if the
-- attacker could write sessions), so only the signature is wrong.  The
-- last character of a 43-character signature carries 4 bits of byte 32 and
-- 2 zero bits: its bit 2 changes byte 32 and keeps the encoding canonical.
SET audiotricks.bcrypt_cost = 4;
SELECT count(*) FILTER (WHERE regress_attacks.login(n)) AS sessions FROM unnest(ARRAY['mac_last', 'mac_middle', 'mac_first']) n;
CREATE TABLE regress_attacks.forged AS
SELECT name, token AS original, session_id,
       CASE name WHEN 'mac_last' THEN regress_attacks.flip(token, 43, 4)
                 WHEN 'mac_middle' THEN regress_attacks.flip(token, 33, 32)
                 ELSE regress_attacks.flip(token, 2, 1) END AS token
  FROM regress_attacks.tokens WHERE name LIKE 'mac\_%';
SELECT name, regress_attacks.mac_diff(original, token) AS bytes_changed,
       regress_attacks.auth(original) AS original_before
  FROM regress_attacks.forged ORDER BY name;
UPDATE audiotricks.sessions s SET token_hash = regress_attacks.sha256_hex(f.token)
  FROM regress_attacks.forged f WHERE s.id = f.session_id;
SELECT name, regress_attacks.auth(token) AS forged, regress_attacks.auth(original) AS original_after
  FROM regress_attacks.forged ORDER BY name;

------------------------------------------------------------------ a session row that is not the token's
-- The token's session row moved to another user (before and after this
-- backend cached the token), and the token's hash moved onto another
-- session row of the same user: refused every time.
SELECT count(*) FILTER (WHERE regress_attacks.login(n)) AS sessions FROM unnest(ARRAY['moved_cached', 'moved_fresh', 'other_row_a', 'other_row_b']) n;
SELECT regress_attacks.auth(token) AS cached_while_valid FROM regress_attacks.tokens WHERE name = 'moved_cached';
UPDATE audiotricks.sessions SET user_id = (SELECT id FROM audiotricks.users WHERE username = 'att_victor')
 WHERE id IN (SELECT session_id FROM regress_attacks.tokens WHERE name LIKE 'moved\_%');
SELECT name, regress_attacks.auth(token) FROM regress_attacks.tokens WHERE name LIKE 'moved\_%' ORDER BY name;
\c
SELECT name, regress_attacks.auth(token) FROM regress_attacks.tokens WHERE name LIKE 'moved\_%' ORDER BY name;
-- token a's hash on session b's row (same user, unexpired): b's id is not a's sid
UPDATE audiotricks.sessions SET token_hash = 'gone-' || id WHERE id = (SELECT session_id FROM regress_attacks.tokens WHERE name = 'other_row_a');
UPDATE audiotricks.sessions SET token_hash = regress_attacks.sha256_hex((SELECT token FROM regress_attacks.tokens WHERE name = 'other_row_a'))
 WHERE id = (SELECT session_id FROM regress_attacks.tokens WHERE name = 'other_row_b');
SELECT regress_attacks.auth(token) AS hash_on_another_row FROM regress_attacks.tokens WHERE name = 'other_row_a';

------------------------------------------------------------------ search under a lossy bitmap
-- With work_mem at its minimum, the bitmap of a large user's matches turns
-- lossy: whole heap pages, every row on them rechecked.  The two users'
-- rows alternate on the same pages (fillfactor 10: about 3 rows a page), and
-- victor's match better (the word in the title): a recheck that forgot the
-- user would return his rows first.
-- (a storage parameter of each partition: the parent has no storage)
DO $$ DECLARE r regclass; BEGIN
  FOR r IN SELECT relid FROM pg_partition_tree('audiotricks.audio_history') WHERE isleaf LOOP
    EXECUTE format('ALTER TABLE %s SET (fillfactor = 10)', r);
  END LOOP; END $$;
INSERT INTO audiotricks.audio_history (user_id, title, transcript)
SELECT CASE WHEN g % 2 = 0 THEN m.id ELSE v.id END,
       CASE WHEN g % 2 = 0 THEN 'mine ' || g ELSE 'zebra theirs ' || g END,
       'zebra crossing notes ' || g
  FROM generate_series(1, 6000) g,
       (SELECT id FROM audiotricks.users WHERE username = 'att_mallory') m,
       (SELECT id FROM audiotricks.users WHERE username = 'att_victor') v;
DO $$ DECLARE r regclass; BEGIN
  FOR r IN SELECT relid FROM pg_partition_tree('audiotricks.audio_history') WHERE isleaf LOOP
    EXECUTE format('ALTER TABLE %s RESET (fillfactor)', r);
  END LOOP; END $$;
ANALYZE audiotricks.audio_history;
-- the setup is what it claims: a bitmap over mallory's rows is lossy at 64kB
CREATE FUNCTION regress_attacks.lossy(q text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  line text;
BEGIN
  FOR line IN EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ' || q LOOP
    IF line ~ 'lossy=[1-9]' THEN RETURN true; END IF;
  END LOOP;
  RETURN false;
END $$;
BEGIN;
SET LOCAL work_mem = '64kB';
SET LOCAL enable_seqscan = off;
SET LOCAL enable_indexscan = off;
SELECT regress_attacks.lossy($$SELECT count(*) FROM audiotricks.audio_history
  WHERE user_id = (SELECT id FROM audiotricks.users WHERE username = 'att_mallory')
    AND search_tsv @@ 'zebra'::tsquery$$) AS bitmap_is_lossy;
ROLLBACK;
CREATE ROLE regress_attacks_app LOGIN;
GRANT audiotricks_user TO regress_attacks_app;
GRANT USAGE ON SCHEMA regress_attacks TO regress_attacks_app;
GRANT SELECT ON regress_attacks.tokens TO regress_attacks_app;
SET audiotricks.bcrypt_cost = 4;
SELECT regress_attacks.login('search') AS session;
SET ROLE regress_attacks_app;
BEGIN;
SET LOCAL work_mem = '64kB';
SELECT audiotricks.at_authenticate(token) IS NOT NULL AS mallory FROM regress_attacks.tokens WHERE name = 'search';
SELECT count(*) AS hits, count(*) FILTER (WHERE title LIKE 'mine %') AS own,
       count(*) FILTER (WHERE title NOT LIKE 'mine %') AS others
  FROM audiotricks.at_history_search('zebra', 100);
SELECT count(*) AS hits, count(*) FILTER (WHERE title NOT LIKE 'mine %') AS others
  FROM audiotricks.at_history_search('zebra & crossing', 20);
COMMIT;
RESET ROLE;

------------------------------------------------------------------ identity that must not carry over
-- PostgREST's header is trusted only when set for the transaction: a
-- session-level SET (which a pooled connection would hand to the next
-- client) gives no identity, though its token is valid
SELECT regress_attacks.login('header') AS session;
SET ROLE regress_attacks_app;
SELECT format('{"authorization": "Bearer %s"}', token) AS hdr FROM regress_attacks.tokens WHERE name = 'header' \gset
BEGIN;
SELECT set_config('request.headers', :'hdr', true) IS NOT NULL AS set_local;
SELECT audiotricks.at_current_user_id() IS NOT NULL AS transaction_header_trusted;
COMMIT;
SET request.headers = :'hdr';
BEGIN;
SELECT audiotricks.at_current_user_id() IS NULL AS session_level_header_ignored;
COMMIT;
RESET request.headers;
-- an application role reads its own audit events, never another user's
BEGIN;
SELECT audiotricks.at_authenticate(token) IS NOT NULL AS mallory FROM regress_attacks.tokens WHERE name = 'header';
SELECT count(*) > 0 AS own_events,
       count(*) FILTER (WHERE user_id IS DISTINCT FROM audiotricks.at_current_user_id()) AS others_events
  FROM audiotricks.audit_log;
COMMIT;
RESET ROLE;
SELECT count(*) FILTER (WHERE u.username = 'att_victor') > 0 AS victor_has_events
  FROM audiotricks.audit_log a JOIN audiotricks.users u ON u.id = a.user_id;

------------------------------------------------------------------ an inactive user
-- The right password of an inactive user is refused like a wrong one, and
-- recorded as a failed login (the audit writer is asynchronous: a bounded
-- wait)
SELECT audiotricks.at_register('inactive@example.com', 'att_inactive', 'Passw0rdI') IS NOT NULL AS registered;
UPDATE audiotricks.users SET is_active = false WHERE username = 'att_inactive';
SELECT regress_attacks.try($$SELECT * FROM audiotricks.at_login('att_inactive', 'Passw0rdI')$$) AS inactive_login;
DO $$
BEGIN
  FOR i IN 1 .. 100 LOOP
    EXIT WHEN EXISTS (SELECT FROM audiotricks.audit_log a JOIN audiotricks.users u ON u.id = a.user_id
                       WHERE u.username = 'att_inactive' AND a.event = 'login_failed');
    PERFORM pg_sleep(0.1);
  END LOOP;
END $$;
SELECT count(*) AS failed_login_recorded
  FROM audiotricks.audit_log a JOIN audiotricks.users u ON u.id = a.user_id
 WHERE u.username = 'att_inactive' AND a.event = 'login_failed';

------------------------------------------------------------------ clean up
DELETE FROM audiotricks.users WHERE username IN ('att_mallory', 'att_victor', 'att_inactive');
DROP SCHEMA regress_attacks CASCADE;
DROP ROLE regress_attacks_app;
