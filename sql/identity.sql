-- The identity is bound to the role that established it (src/identity.c):
-- code owned by another role (a SECURITY DEFINER function or trigger
-- function, a view calling one), a WITH HOLD cursor and a security-restricted
-- operation see no identity, while the user's own calls keep working.
-- carol and mallory are two application roles; mallory writes the code.
\set VERBOSITY terse
SET audiotricks.bcrypt_cost = 4;
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ' ' || SQLERRM;
END $$;

CREATE ROLE regress_carol LOGIN;
CREATE ROLE regress_mallory LOGIN;
GRANT audiotricks_user TO regress_carol, regress_mallory;
CREATE SCHEMA regress_mal AUTHORIZATION regress_mallory;
CREATE SCHEMA regress_car AUTHORIZATION regress_carol;

SELECT audiotricks.at_register('carol@example.com', 'carol', 'Passw0rdC') IS NOT NULL AS carol;
SELECT audiotricks.at_register('mal@example.com', 'mal', 'Passw0rdM') IS NOT NULL AS mal;
SELECT token AS carol_token, user_id AS carol_id FROM audiotricks.at_login('carol', 'Passw0rdC') \gset
SELECT token AS mal_token, user_id AS mal_id FROM audiotricks.at_login('mal', 'Passw0rdM') \gset
INSERT INTO audiotricks.audio_history (user_id, title, transcript)
SELECT :'carol_id', 'carol ' || g, 'secret meeting ' || g FROM generate_series(1, 3) g;

-- carol stores her key and reads her own data: all of it works
SET ROLE regress_carol;
CREATE FUNCTION regress_car.mine() RETURNS text
    LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
SELECT 'identity=' || (audiotricks.at_current_user_id() IS NOT NULL)
    || ' key=' || (audiotricks.at_get_api_key('openai') IS NOT NULL)
    || ' history=' || (SELECT count(*) FROM audiotricks.audio_history) $$;
-- a function with its own query loop (a portal of its own)
CREATE FUNCTION regress_car.titles() RETURNS SETOF text
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT title FROM audiotricks.audio_history ORDER BY title LOOP
    RETURN NEXT r.title;
  END LOOP;
END $$;
BEGIN;
SELECT audiotricks.at_authenticate(:'carol_token') = :'carol_id' AS is_carol;
SELECT audiotricks.at_set_api_key('openai', 'sk-carol-secret');
SELECT audiotricks.at_get_api_key('openai') = 'sk-carol-secret' AS own_key,
       audiotricks.at_current_user_id() = :'carol_id' AS own_identity,
       audiotricks_internal.at_require_user_id() = :'carol_id' AS own_required,
       (SELECT count(*) FROM audiotricks.audio_history) AS own_history,
       audiotricks.at_history_count() AS own_count,
       (SELECT count(*) FROM audiotricks.at_history_page(10)) AS own_page,
       (SELECT count(*) FROM audiotricks.at_history_search('secret')) AS own_search,
       (SELECT count(*) FROM audiotricks.at_list_sessions()) AS own_sessions,
       (SELECT count(*) FROM audiotricks.at_get_settings()) AS own_settings,
       (SELECT count(*) FROM regress_car.titles()) AS own_titles;
COMMIT;
RESET ROLE;

------------------------------------------------------------------------------
-- mallory's code
------------------------------------------------------------------------------
SET ROLE regress_mallory;
CREATE TABLE regress_mal.loot (what text, val text);
-- what mallory's code can see of the caller, as a deterministic summary;
-- anything it can read goes to loot
CREATE FUNCTION regress_mal.peek() RETURNS text
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r text;
  k text;
BEGIN
  INSERT INTO regress_mal.loot VALUES ('user_id', audiotricks.at_current_user_id()::text);
  r := 'identity=' || (audiotricks.at_current_user_id() IS NOT NULL);
  BEGIN
    k := audiotricks.at_get_api_key('openai');
    INSERT INTO regress_mal.loot VALUES ('openai', k);
    r := r || ' key=' || CASE WHEN k IS NULL THEN 'null' ELSE 'read' END;
  EXCEPTION WHEN OTHERS THEN
    r := r || ' key=' || SQLSTATE;
  END;
  INSERT INTO regress_mal.loot SELECT 'title', title FROM audiotricks.audio_history;
  r := r || ' history=' || (SELECT count(*) FROM audiotricks.audio_history);
  BEGIN
    r := r || ' page=' || (SELECT count(*) FROM audiotricks.at_history_page(10));
  EXCEPTION WHEN OTHERS THEN
    r := r || ' page=' || SQLSTATE;
  END;
  BEGIN
    r := r || ' search=' || (SELECT count(*) FROM audiotricks.at_history_search('secret'));
  EXCEPTION WHEN OTHERS THEN
    r := r || ' search=' || SQLSTATE;
  END;
  BEGIN
    r := r || ' sessions=' || (SELECT count(*) FROM audiotricks.at_list_sessions());
  EXCEPTION WHEN OTHERS THEN
    r := r || ' sessions=' || SQLSTATE;
  END;
  BEGIN
    PERFORM audiotricks.at_set_api_key('openai', 'sk-mallory-planted');
    r := r || ' set_key=ok';
  EXCEPTION WHEN OTHERS THEN
    r := r || ' set_key=' || SQLSTATE;
  END;
  RETURN r;
END $$;
-- the same as SECURITY DEFINER, which is how mallory's code runs as mallory
CREATE FUNCTION regress_mal.steal() RETURNS text
    LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$ SELECT regress_mal.peek() $$;
-- a view calling it
CREATE VIEW regress_mal.stats AS SELECT regress_mal.steal() AS s;
-- a table carol may write to, with a SECURITY DEFINER trigger
CREATE TABLE regress_mal.guestbook (note text, seen text);
CREATE FUNCTION regress_mal.guestbook_trigger() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  NEW.seen := regress_mal.peek();
  RETURN NEW;
END $$;
CREATE TRIGGER guestbook_peek BEFORE INSERT ON regress_mal.guestbook
    FOR EACH ROW EXECUTE FUNCTION regress_mal.guestbook_trigger();
-- mallory's own identity, set from inside her code (it must not replace
-- carol's for carol)
CREATE FUNCTION regress_mal.plant(tok text) RETURNS boolean
    LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $$ SELECT audiotricks.at_authenticate(tok) IS NOT NULL $$;
GRANT USAGE ON SCHEMA regress_mal TO regress_carol;
GRANT SELECT ON regress_mal.stats TO regress_carol;
GRANT INSERT, SELECT ON regress_mal.guestbook TO regress_carol;
RESET ROLE;

------------------------------------------------------------------------------
-- carol, authenticated by at_authenticate, runs mallory's code
------------------------------------------------------------------------------
SET ROLE regress_carol;
BEGIN;
SELECT audiotricks.at_authenticate(:'carol_token') = :'carol_id' AS is_carol;
-- called directly: no identity, no key, no rows
SELECT regress_mal.steal() AS steal;
-- through a view
SELECT s AS view FROM regress_mal.stats;
-- as a trigger
INSERT INTO regress_mal.guestbook (note) VALUES ('hello') RETURNING seen AS trigger;
-- mallory's identity, set inside her function, is hers only
SELECT regress_mal.plant(:'mal_token') AS planted;
SELECT audiotricks.at_current_user_id() = :'carol_id' AS still_carol;
INSERT INTO audiotricks.audio_history (title) VALUES ('carol after plant')
RETURNING user_id = :'carol_id' AS written_as_carol;
-- carol herself still has everything
SELECT audiotricks.at_get_api_key('openai') = 'sk-carol-secret' AS own_key,
       (SELECT count(*) FROM audiotricks.audio_history) AS own_history;
-- carol's own SECURITY DEFINER code runs as carol: it sees her identity
SELECT regress_car.mine() AS own_definer_code;
COMMIT;
RESET ROLE;

------------------------------------------------------------------------------
-- the same through PostgREST's request.headers (SET LOCAL ROLE + headers)
------------------------------------------------------------------------------
BEGIN;
SELECT set_config('role', 'regress_carol', true) IS NOT NULL AS role_set,
       set_config('request.headers', format('{"authorization":"Bearer %s"}', :'carol_token'), true) IS NOT NULL AS headers_set;
SELECT audiotricks.at_current_user_id() = :'carol_id' AS is_carol;
SELECT regress_mal.steal() AS steal;
SELECT s AS view FROM regress_mal.stats;
INSERT INTO regress_mal.guestbook (note) VALUES ('hello') RETURNING seen AS trigger;
SELECT audiotricks.at_get_api_key('openai') = 'sk-carol-secret' AS own_key,
       (SELECT count(*) FROM audiotricks.audio_history) AS own_history;
COMMIT;

-- mallory got nothing of carol's, and planted nothing
SELECT what, count(*) FILTER (WHERE val IS NOT NULL) AS leaked FROM regress_mal.loot GROUP BY what ORDER BY what;
SET ROLE regress_carol;
BEGIN;
SELECT audiotricks.at_authenticate(:'carol_token') IS NOT NULL AS authenticated;
SELECT audiotricks.at_get_api_key('openai') = 'sk-carol-secret' AS key_unchanged;
ROLLBACK;
RESET ROLE;

------------------------------------------------------------------------------
-- WITH HOLD cursors: materialized at COMMIT (before the identity is
-- cleared) and fetchable afterwards by whoever uses the connection next; they
-- see no identity, before commit as after
------------------------------------------------------------------------------
SET ROLE regress_carol;
BEGIN;
SELECT audiotricks.at_authenticate(:'carol_token') IS NOT NULL AS authenticated;
DECLARE h CURSOR WITH HOLD FOR SELECT title FROM audiotricks.audio_history ORDER BY title;
DECLARE u CURSOR WITH HOLD FOR SELECT audiotricks.at_current_user_id() IS NOT NULL AS has_identity;
DECLARE f CURSOR WITH HOLD FOR SELECT * FROM regress_car.titles();
DECLARE n CURSOR FOR SELECT count(*) AS ordinary_cursor FROM audiotricks.audio_history;
FETCH ALL FROM n;
FETCH 1 FROM h;
FETCH ALL FROM u;
COMMIT;
RESET ROLE;
-- the next client on this connection
SET ROLE regress_mallory;
FETCH ALL FROM h;
FETCH ALL FROM u;
FETCH ALL FROM f;
RESET ROLE;
CLOSE ALL;
-- functions that need an identity raise when the cursor is fetched or
-- materialized (then COMMIT fails): they never return carol's rows or key
SET ROLE regress_carol;
BEGIN;
SELECT audiotricks.at_authenticate(:'carol_token') IS NOT NULL AS authenticated;
DECLARE p CURSOR WITH HOLD FOR SELECT title FROM audiotricks.at_history_page(10);
COMMIT;
FETCH ALL FROM p;
BEGIN;
SELECT audiotricks.at_authenticate(:'carol_token') IS NOT NULL AS authenticated;
DECLARE k CURSOR WITH HOLD FOR SELECT audiotricks.at_get_api_key('openai') AS key;
COMMIT;
FETCH ALL FROM k;
BEGIN;
SELECT audiotricks.at_authenticate(:'carol_token') IS NOT NULL AS authenticated;
DECLARE k CURSOR WITH HOLD FOR SELECT audiotricks.at_get_api_key('openai') AS key;
FETCH ALL FROM k;
ROLLBACK;
-- PostgREST's headers: the same
BEGIN;
SELECT set_config('request.headers', format('{"authorization":"Bearer %s"}', :'carol_token'), true) IS NOT NULL AS headers_set;
SELECT audiotricks.at_current_user_id() = :'carol_id' AS is_carol;
DECLARE h CURSOR WITH HOLD FOR SELECT title FROM audiotricks.audio_history ORDER BY title;
FETCH 1 FROM h;
COMMIT;
FETCH ALL FROM h;
CLOSE h;
RESET ROLE;

------------------------------------------------------------------------------
-- security-restricted operations (REFRESH MATERIALIZED VIEW, index
-- expressions under VACUUM or ANALYZE) see no identity, even as carol
------------------------------------------------------------------------------
SET ROLE regress_carol;
CREATE MATERIALIZED VIEW regress_car.mv AS
    SELECT audiotricks.at_current_user_id() IS NOT NULL AS had_identity,
           (SELECT count(*) FROM audiotricks.audio_history) AS history
    WITH NO DATA;
BEGIN;
SELECT audiotricks.at_authenticate(:'carol_token') IS NOT NULL AS authenticated;
REFRESH MATERIALIZED VIEW regress_car.mv;
COMMIT;
SELECT * FROM regress_car.mv;
RESET ROLE;

DROP SCHEMA regress_mal CASCADE;
DROP SCHEMA regress_car CASCADE;
DROP ROLE regress_carol;
DROP ROLE regress_mallory;
