-- at_history_page and at_history_search read the table directly only while
-- its one policy is the shipped audio_history_own exactly (command ALL,
-- permissive, role PUBLIC, USING and WITH CHECK user_id = (SELECT
-- audiotricks.at_current_user_id())); any change to it, not only its name,
-- sends them through SPI under row-level security, so they return what a
-- plain SELECT returns.
\set VERBOSITY terse
SET audiotricks.bcrypt_cost = 4;
SELECT audiotricks.at_register('hpol@example.com', 'hpol_user', 'Passw0rdH') IS NOT NULL AS registered;
SELECT token AS tok FROM audiotricks.at_login('hpol_user', 'Passw0rdH') \gset
CREATE ROLE regress_hpol_app;
CREATE ROLE regress_hpol_other;
GRANT audiotricks_user TO regress_hpol_app;

-- what the user sees: through both functions and through a plain SELECT
CREATE FUNCTION pg_temp.seen(token text, OUT page bigint, OUT search bigint, OUT plain bigint)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM audiotricks.at_authenticate(token);
    SELECT count(*) INTO page FROM audiotricks.at_history_page();
    SELECT count(*) INTO search FROM audiotricks.at_history_search('squirrel');
    SELECT count(*) INTO plain FROM audiotricks.audio_history;
END
$$;
GRANT EXECUTE ON FUNCTION pg_temp.seen(text) TO regress_hpol_app;

SET ROLE regress_hpol_app;
BEGIN;
SELECT audiotricks.at_authenticate(:'tok') IS NOT NULL AS authenticated;
SELECT audiotricks.at_history_add('first squirrel', transcript => 'a squirrel') IS NOT NULL AS added;
SELECT audiotricks.at_history_add('second squirrel', transcript => 'two squirrels') IS NOT NULL AS added;
COMMIT;
SELECT * FROM pg_temp.seen(:'tok');
RESET ROLE;

-- the shipped policy's expression changed: nothing is visible
ALTER POLICY audio_history_own ON audiotricks.audio_history USING (false);
SET ROLE regress_hpol_app;
SELECT * FROM pg_temp.seen(:'tok');
RESET ROLE;

-- restored: the rows again
ALTER POLICY audio_history_own ON audiotricks.audio_history
    USING (user_id OPERATOR(pg_catalog.=) (SELECT audiotricks.at_current_user_id()));
SET ROLE regress_hpol_app;
SELECT * FROM pg_temp.seen(:'tok');
RESET ROLE;

-- the same rule written the other way round: the same rows (not recognised
-- as the shipped policy, so through SPI)
ALTER POLICY audio_history_own ON audiotricks.audio_history
    USING ((SELECT audiotricks.at_current_user_id()) OPERATOR(pg_catalog.=) user_id);
SET ROLE regress_hpol_app;
SELECT * FROM pg_temp.seen(:'tok');
RESET ROLE;
ALTER POLICY audio_history_own ON audiotricks.audio_history
    USING (user_id OPERATOR(pg_catalog.=) (SELECT audiotricks.at_current_user_id()));

-- renamed, same expression: the same rows
ALTER POLICY audio_history_own ON audiotricks.audio_history RENAME TO regress_renamed;
SET ROLE regress_hpol_app;
SELECT * FROM pg_temp.seen(:'tok');
RESET ROLE;
ALTER POLICY regress_renamed ON audiotricks.audio_history RENAME TO audio_history_own;

-- for other roles only: the caller has no policy, so nothing is visible
ALTER POLICY audio_history_own ON audiotricks.audio_history TO regress_hpol_other;
SET ROLE regress_hpol_app;
SELECT * FROM pg_temp.seen(:'tok');
RESET ROLE;

-- the caller's role and an extra one instead of PUBLIC: the same rows
-- (through SPI)
ALTER POLICY audio_history_own ON audiotricks.audio_history TO regress_hpol_app, regress_hpol_other;
SET ROLE regress_hpol_app;
SELECT * FROM pg_temp.seen(:'tok');
RESET ROLE;
ALTER POLICY audio_history_own ON audiotricks.audio_history TO PUBLIC;

-- the same name and expression for another command: nothing is visible
DROP POLICY audio_history_own ON audiotricks.audio_history;
CREATE POLICY audio_history_own ON audiotricks.audio_history FOR UPDATE
    USING (user_id OPERATOR(pg_catalog.=) (SELECT audiotricks.at_current_user_id()))
    WITH CHECK (user_id OPERATOR(pg_catalog.=) (SELECT audiotricks.at_current_user_id()));
SET ROLE regress_hpol_app;
SELECT * FROM pg_temp.seen(:'tok');
RESET ROLE;

-- restrictive, alone: nothing is visible
DROP POLICY audio_history_own ON audiotricks.audio_history;
CREATE POLICY audio_history_own ON audiotricks.audio_history AS RESTRICTIVE
    USING (user_id OPERATOR(pg_catalog.=) (SELECT audiotricks.at_current_user_id()))
    WITH CHECK (user_id OPERATOR(pg_catalog.=) (SELECT audiotricks.at_current_user_id()));
SET ROLE regress_hpol_app;
SELECT * FROM pg_temp.seen(:'tok');
RESET ROLE;

-- back to the shipped policy, as the install script writes it
DROP POLICY audio_history_own ON audiotricks.audio_history;
CREATE POLICY audio_history_own ON audiotricks.audio_history
    USING (user_id OPERATOR(pg_catalog.=) (SELECT audiotricks.at_current_user_id()))
    WITH CHECK (user_id OPERATOR(pg_catalog.=) (SELECT audiotricks.at_current_user_id()));
SET ROLE regress_hpol_app;
SELECT * FROM pg_temp.seen(:'tok');
RESET ROLE;

-- at_history_add keeps its INSERT plan for the backend (src/history_add.c):
-- a policy added after that plan was made, and a change of role, apply to
-- the next call all the same
CREATE POLICY regress_no_blocked ON audiotricks.audio_history AS RESTRICTIVE FOR INSERT
    WITH CHECK (title IS DISTINCT FROM 'blocked');
SET ROLE regress_hpol_app;
BEGIN;
SELECT audiotricks.at_authenticate(:'tok') IS NOT NULL AS authenticated;
SELECT audiotricks.at_history_add('allowed') IS NOT NULL AS added;
SAVEPOINT s;
SELECT audiotricks.at_history_add('blocked');
ROLLBACK TO s;
COMMIT;
RESET ROLE;
DROP POLICY regress_no_blocked ON audiotricks.audio_history;
SET ROLE regress_hpol_app;
BEGIN;
SELECT audiotricks.at_authenticate(:'tok') IS NOT NULL AS authenticated;
SELECT audiotricks.at_history_add('blocked') IS NOT NULL AS added_once_the_policy_is_gone;
COMMIT;
RESET ROLE;
-- a role with the functions but not the table's privileges: refused by the
-- table's grants, though the plan was made for a role that had them
GRANT EXECUTE ON FUNCTION audiotricks.at_authenticate(text),
    audiotricks.at_history_add(text, text, bigint, integer, text, text, jsonb, jsonb)
    TO regress_hpol_other;
GRANT USAGE ON SCHEMA audiotricks TO regress_hpol_other;
SET ROLE regress_hpol_other;
BEGIN;
SELECT audiotricks.at_authenticate(:'tok') IS NOT NULL AS authenticated;
SELECT audiotricks.at_history_add('other role');
ROLLBACK;
RESET ROLE;
REVOKE ALL ON FUNCTION audiotricks.at_authenticate(text),
    audiotricks.at_history_add(text, text, bigint, integer, text, text, jsonb, jsonb)
    FROM regress_hpol_other;
REVOKE USAGE ON SCHEMA audiotricks FROM regress_hpol_other;
SELECT title, count(*) FROM audiotricks.audio_history
 WHERE title IN ('allowed', 'blocked', 'other role') GROUP BY title ORDER BY title;

-- search_config defaults to the writer's preferred_language, read each
-- time (at_default_search_config keeps its plan, not the answer); without
-- an identity it is pg_catalog.simple
SET ROLE regress_hpol_app;
BEGIN;
SELECT audiotricks.at_authenticate(:'tok') IS NOT NULL AS authenticated;
SELECT preferred_language FROM audiotricks.at_update_settings(preferred_language => 'de');
SELECT audiotricks.at_history_add('sprache de') AS de_id \gset
SELECT search_config FROM audiotricks.audio_history WHERE id = :'de_id';
SELECT preferred_language FROM audiotricks.at_update_settings(preferred_language => 'en');
SELECT audiotricks.at_history_add('language en') AS en_id \gset
SELECT search_config FROM audiotricks.audio_history WHERE id = :'en_id';
COMMIT;
RESET ROLE;
INSERT INTO audiotricks.audio_history (user_id, title)
SELECT id, 'no identity' FROM audiotricks.users WHERE username = 'hpol_user'
RETURNING search_config;

DELETE FROM audiotricks.users WHERE username = 'hpol_user';
DROP FUNCTION pg_temp.seen(text);
DROP ROLE regress_hpol_app;
DROP ROLE regress_hpol_other;
