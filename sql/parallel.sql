-- Parallel query: every function of the extension, called in queries that
-- get parallel plans (force_parallel_mode = regress, no parallel costs), gives
-- what it gives in a serial plan, with at_authenticate's identity, with
-- PostgREST's request.headers, and without an identity; never XX000 (a new
-- snapshot in a parallel operation) or 25000 (a subtransaction in one).
-- Identity readers are PARALLEL RESTRICTED (run by the leader: the identity
-- lives in its memory), writers and at_history_search PARALLEL UNSAFE.
\set VERBOSITY terse
SET audiotricks.bcrypt_cost = 4;

CREATE ROLE regress_par LOGIN;
GRANT audiotricks_user TO regress_par;
SELECT audiotricks.at_register('pat@example.com', 'pat', 'Passw0rdP') IS NOT NULL AS pat;
SELECT token AS pat_token, user_id AS pat_id, session_id AS pat_sid
  FROM audiotricks.at_login('pat', 'Passw0rdP') \gset
INSERT INTO audiotricks.audio_history (user_id, title, transcript, created_at)
SELECT :'pat_id', 'pat ' || g, 'word' || (g % 10) || ' sound', now() - g * interval '1 second'
  FROM generate_series(1, 2000) g;
ANALYZE audiotricks.audio_history;
CREATE TABLE public.par AS SELECT g AS i FROM generate_series(1, 20000) g;
ANALYZE public.par;
GRANT SELECT ON public.par TO PUBLIC;

-- the functions this file covers: a new one shows up here
SELECT p.pronamespace::regnamespace AS schema, p.proname, p.proparallel
  FROM pg_proc p WHERE p.pronamespace IN ('audiotricks'::regnamespace, 'audiotricks_internal'::regnamespace)
 ORDER BY 1, 2;

-- the probes: name, query (run inside SELECT string_agg(...) FROM (query) r)
CREATE TABLE pg_temp.probe (name text PRIMARY KEY, q text NOT NULL);
INSERT INTO pg_temp.probe VALUES
  ('at_current_user_id', $$SELECT count(*) FILTER (WHERE audiotricks.at_current_user_id() IS NOT DISTINCT FROM u) FROM public.par, (SELECT audiotricks.at_current_user_id() AS u) s$$),
  ('at_current_user_id initplan', $$SELECT count(*) FROM public.par WHERE i % 7 = 0 AND (SELECT audiotricks.at_current_user_id()) IS NOT NULL$$),
  ('at_require_user_id', $$SELECT count(*) FROM public.par WHERE i % 7 = 0 AND (SELECT audiotricks_internal.at_require_user_id()) IS NOT NULL$$),
  ('policy audio_history', $$SELECT count(*), min(title), max(title) FROM audiotricks.audio_history$$),
  ('policy users', $$SELECT username FROM audiotricks.users$$),
  ('policy sessions', $$SELECT count(*) FROM audiotricks.sessions WHERE expires_at > now()$$),
  ('policy user_settings', $$SELECT preferred_language FROM audiotricks.user_settings$$),
  ('policy audit_log', $$SELECT count(*) > 0 FROM audiotricks.audit_log$$),
  ('at_history_page', $$SELECT (SELECT string_agg(title, ',') FROM audiotricks.at_history_page(5)), count(*) FROM public.par$$),
  ('at_history_count', $$SELECT audiotricks.at_history_count(), count(*) FROM public.par$$),
  ('at_history_search', $$SELECT (SELECT count(*) FROM audiotricks.at_history_search('word3', 100)), count(*) FROM public.par$$),
  ('at_get_settings', $$SELECT (SELECT summary_quality FROM audiotricks.at_get_settings()), count(*) FROM public.par$$),
  ('at_list_sessions', $$SELECT (SELECT count(*) FROM audiotricks.at_list_sessions() WHERE is_current), count(*) FROM public.par$$),
  ('at_api_key_status', $$SELECT (SELECT string_agg(provider || is_set, ',') FROM audiotricks.at_api_key_status()), count(*) FROM public.par$$),
  ('at_check_rule', $$SELECT count(*) FROM public.par WHERE audiotricks_internal.at_check_rule(i > 0, 't', 'c', 'k', 'r')$$),
  ('at_get_api_key', $$SELECT audiotricks.at_get_api_key('openai'), count(*) FROM public.par$$),
  ('at_default_search_config', $$SELECT audiotricks_internal.at_default_search_config(), count(*) FROM public.par$$),
  ('at_postgrest_pre_request', $$SELECT audiotricks.at_postgrest_pre_request(), count(*) FROM public.par$$),
  ('at_uuid_v7', $$SELECT count(DISTINCT audiotricks.at_uuid_v7()) FROM public.par$$),
  ('at_encrypt_key at_decrypt_key', $$SELECT count(*) FROM public.par WHERE i % 100 = 0 AND audiotricks.at_decrypt_key(audiotricks.at_encrypt_key(i::text, 'c'), 'c') = i::text$$),
  ('at_check_audio_url', $$SELECT count(*) FROM public.par WHERE audiotricks_internal.at_check_audio_url('https://example.com/' || i)$$),
  ('at_check_key_moments', $$SELECT count(*) FROM public.par WHERE audiotricks_internal.at_check_key_moments(jsonb_build_array(jsonb_build_object('timestamp', '00:00:01', 'description', i::text)))$$),
  ('at_check_processing_options', $$SELECT count(*) FROM public.par WHERE audiotricks_internal.at_check_processing_options(jsonb_build_object('language', 'de', 'model', i::text))$$),
  ('at_check_settings_json', $$SELECT count(*) FROM public.par WHERE audiotricks_internal.at_check_settings_json(jsonb_build_object('theme', i::text))$$),
  ('at_search_config', $$SELECT audiotricks_internal.at_search_config(CASE WHEN i % 2 = 0 THEN 'de' ELSE 'fr' END)::text, count(*) FROM public.par GROUP BY 1 ORDER BY 1$$),
  ('at_history_tsv', $$SELECT sum(length(audiotricks_internal.at_history_tsv('english', NULL, 'title ' || i, 'summary', NULL))) FROM public.par$$),
  ('at_history_tsv_config', $$SELECT audiotricks_internal.at_history_tsv_config('english', jsonb_build_object('language', 'de'))::text, count(*) FROM public.par GROUP BY 1$$),
  ('at_check_preload', $$SELECT count(*) FROM public.par WHERE audiotricks_internal.at_check_preload() IS NULL$$);
GRANT SELECT ON pg_temp.probe TO PUBLIC;

-- run(q): the rows of q as text, or the error's SQLSTATE and message
CREATE FUNCTION pg_temp.run(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  r text;
BEGIN
  EXECUTE 'SELECT coalesce(string_agg(r::text, ''|'' ORDER BY r::text), '''') FROM (' || q || ') r' INTO r;
  RETURN r;
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ' ' || SQLERRM;
END $$;
CREATE TABLE pg_temp.result (mode text, how text, name text, result text);
GRANT INSERT, SELECT ON pg_temp.result TO PUBLIC;
-- probes(mode, how, token): runs every probe with an identity made how:
-- 'authenticate' (at_authenticate(token)), 'headers' (PostgREST's
-- request.headers, set for the transaction) or 'none'
CREATE FUNCTION pg_temp.probes(mode text, how text, token text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  p record;
BEGIN
  IF how = 'authenticate' THEN
    PERFORM audiotricks.at_authenticate(token);
  ELSIF how = 'headers' THEN
    PERFORM set_config('request.headers', format('{"authorization":"Bearer %s"}', token), true);
  END IF;
  FOR p IN SELECT * FROM pg_temp.probe ORDER BY name LOOP
    INSERT INTO pg_temp.result VALUES (mode, how, p.name, pg_temp.run(p.q));
  END LOOP;
END $$;

-- serial, as regress_par (PostgREST's SET LOCAL ROLE), one transaction each
SET max_parallel_workers_per_gather = 0;
BEGIN; SET LOCAL ROLE regress_par; SELECT pg_temp.probes('serial', 'authenticate', :'pat_token'); COMMIT;
BEGIN; SET LOCAL ROLE regress_par; SELECT pg_temp.probes('serial', 'headers', :'pat_token'); COMMIT;
BEGIN; SET LOCAL ROLE regress_par; SELECT pg_temp.probes('serial', 'none', NULL); COMMIT;
-- and as the superuser, for at_check_preload, at_encrypt_key, at_decrypt_key
BEGIN; SELECT pg_temp.probes('serial', 'superuser', NULL); COMMIT;
RESET max_parallel_workers_per_gather;

-- parallel
SET force_parallel_mode = regress;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET min_parallel_index_scan_size = 0;
BEGIN; SET LOCAL ROLE regress_par; SELECT pg_temp.probes('parallel', 'authenticate', :'pat_token'); COMMIT;
BEGIN; SET LOCAL ROLE regress_par; SELECT pg_temp.probes('parallel', 'headers', :'pat_token'); COMMIT;
BEGIN; SET LOCAL ROLE regress_par; SELECT pg_temp.probes('parallel', 'none', NULL); COMMIT;
BEGIN; SELECT pg_temp.probes('parallel', 'superuser', NULL); COMMIT;

-- the plans are parallel: the policy's identity is an InitPlan the leader
-- computes once, the scan runs in workers.  (Index scans are off for the
-- plan shown: once autovacuum has set the visibility map, a parallel
-- index-only scan may win, which is as parallel but another plan.)
SET force_parallel_mode = off;
SET enable_indexscan = off;
SET enable_indexonlyscan = off;
SET enable_bitmapscan = off;
BEGIN;
SELECT set_config('role', 'regress_par', true) IS NOT NULL AS role_set,
       set_config('request.headers', format('{"authorization":"Bearer %s"}', :'pat_token'), true) IS NOT NULL AS headers_set;
-- (the partitions, whose names follow the month, summarised)
CREATE FUNCTION pg_temp.plan_lines(q text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE line text;
BEGIN
  FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP RETURN NEXT line; END LOOP;
END $$;
SELECT bool_or(l ~ 'Gather') AS gathered, bool_or(l ~ 'Parallel Append') AS parallel_append,
       bool_or(l ~ 'Filter: \(user_id = \$0\)') AS policy_filter_in_workers
  FROM pg_temp.plan_lines('SELECT count(*) FROM audiotricks.audio_history') l;
DROP FUNCTION pg_temp.plan_lines(text);
SELECT count(*) FROM audiotricks.audio_history;
COMMIT;
RESET enable_indexscan;
RESET enable_indexonlyscan;
RESET enable_bitmapscan;
EXPLAIN (COSTS OFF) SELECT count(*) FROM public.par WHERE audiotricks_internal.at_check_audio_url('https://example.com/' || i);
EXPLAIN (COSTS OFF) SELECT audiotricks.at_history_count(), count(*) FROM public.par;
SET force_parallel_mode = regress;

-- every probe gives the same in both modes; no internal error anywhere
SELECT s.how, s.name, s.result = p.result AS same,
       CASE WHEN p.result ~ '^[0-9A-Z]{5} ' THEN p.result END AS error
  FROM pg_temp.result s JOIN pg_temp.result p USING (how, name)
 WHERE s.mode = 'serial' AND p.mode = 'parallel'
 ORDER BY 1, 2;
SELECT count(*) AS internal_errors FROM pg_temp.result WHERE result ~ '^(XX000|25000) ';
-- with an identity the probes see pat's data (so the comparison means something)
SELECT how, result FROM pg_temp.result
 WHERE mode = 'parallel' AND name = 'policy audio_history' ORDER BY how;

-- the writers (PARALLEL UNSAFE: the planner keeps them out of parallel
-- plans) work in a query over the same table
BEGIN;
SET LOCAL ROLE regress_par;
SELECT audiotricks.at_authenticate(:'pat_token') = :'pat_id' AS authenticated
  FROM public.par WHERE i = 1;
SELECT audiotricks.at_history_add('added') IS NOT NULL AS added FROM public.par WHERE i = 1;
SELECT audiotricks.at_history_delete(h.id) AS deleted
  FROM audiotricks.audio_history h WHERE h.title = 'added';
SELECT summary_quality FROM audiotricks.at_update_settings(summary_quality => 'fast'), public.par WHERE i = 1;
SELECT audiotricks.at_set_api_key('openai', 'sk-par') IS NOT NULL AS key_set FROM public.par WHERE i = 1;
SELECT audiotricks.at_get_api_key('openai') AS key FROM public.par WHERE i = 1;
SELECT count(*) AS refreshed FROM audiotricks.at_refresh(:'pat_token'), public.par WHERE i = 1;
COMMIT;
SELECT token AS pat_token2 FROM audiotricks.at_login('pat', 'Passw0rdP'), public.par WHERE i = 1 \gset
SELECT token AS pat_token3, session_id AS pat_sid3 FROM audiotricks.at_login('pat', 'Passw0rdP'), public.par WHERE i = 1 \gset
BEGIN;
SET LOCAL ROLE regress_par;
SELECT audiotricks.at_authenticate(:'pat_token2') IS NOT NULL AS authenticated;
SELECT audiotricks.at_logout_session(:'pat_sid3') AS other_ended FROM public.par WHERE i = 1;
SELECT audiotricks.at_change_password('Passw0rdP', 'Passw0rdQ') IS NOT NULL AS changed FROM public.par WHERE i = 1;
SELECT audiotricks.at_logout_all() AS ended FROM public.par WHERE i = 1;
COMMIT;
SELECT token AS pat_token4 FROM audiotricks.at_login('pat', 'Passw0rdQ'), public.par WHERE i = 1 \gset
SELECT audiotricks.at_logout(:'pat_token4') AS logged_out FROM public.par WHERE i = 1;
SELECT token AS pat_token5 FROM audiotricks.at_login('pat', 'Passw0rdQ'), public.par WHERE i = 1 \gset
BEGIN;
SET LOCAL ROLE regress_par;
SELECT audiotricks.at_authenticate(:'pat_token5') IS NOT NULL AS authenticated;
SELECT audiotricks.at_deactivate_account('Passw0rdQ') IS NOT NULL AS deactivated FROM public.par WHERE i = 1;
ROLLBACK;
BEGIN;
SET LOCAL ROLE regress_par;
SELECT audiotricks.at_authenticate(:'pat_token5') IS NOT NULL AS authenticated;
SELECT audiotricks.at_delete_account('Passw0rdQ') IS NOT NULL AS deleted FROM public.par WHERE i = 1;
COMMIT;
SELECT audiotricks.at_purge_expired_sessions() >= 0 AS purged FROM public.par WHERE i = 1;
SELECT audiotricks.at_purge_audit_log('100 years') >= 0 AS purged FROM public.par WHERE i = 1;
SELECT rotated >= 0 AS rotated FROM audiotricks.at_rotate_api_keys(), public.par WHERE i = 1;
SELECT audiotricks.at_register('pia@example.com', 'pia', 'Passw0rdP') IS NOT NULL AS registered
  FROM public.par WHERE i = 1;

-- a PARALLEL SAFE wrapper (mislabelled by its author) runs in a worker: a
-- clean error, never another answer
CREATE FUNCTION public.uid_safe() RETURNS uuid LANGUAGE c STABLE PARALLEL SAFE
    AS '$libdir/audiotricks', 'at_current_user_id';
SELECT token AS pia_token FROM audiotricks.at_login('pia', 'Passw0rdP') \gset
BEGIN;
SELECT audiotricks.at_authenticate(:'pia_token') IS NOT NULL AS authenticated;
SELECT count(*) FROM public.par WHERE public.uid_safe() IS NOT NULL;
ROLLBACK;

RESET ALL;
DROP FUNCTION public.uid_safe();
DROP TABLE public.par;
DROP ROLE regress_par;
