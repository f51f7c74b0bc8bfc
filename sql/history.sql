-- Audio history: at_history_add, at_history_page, at_history_count,
-- at_history_search, at_history_delete; the validation constraints; and
-- row-level security, tested as an application role (superusers bypass RLS).
\set VERBOSITY terse
\set ON_ERROR_ROLLBACK on
SET audiotricks.bcrypt_cost = 4;
SELECT audiotricks.at_register('hist-a@example.com', 'hist_alice', 'Passw0rdA') IS NOT NULL AS alice;
SELECT audiotricks.at_register('hist-b@example.com', 'hist_bob', 'Passw0rdB') IS NOT NULL AS bob;
SELECT token AS ta FROM audiotricks.at_login('hist_alice', 'Passw0rdA') \gset
SELECT token AS tb FROM audiotricks.at_login('hist_bob', 'Passw0rdB') \gset
SELECT id AS alice_id FROM audiotricks.users WHERE username = 'hist_alice' \gset
SELECT id AS bob_id FROM audiotricks.users WHERE username = 'hist_bob' \gset
CREATE ROLE regress_hist_app;
GRANT audiotricks_user TO regress_hist_app;
SET ROLE regress_hist_app;

-- EXPLAIN, summarised as properties: the scan of audio_history (node type,
-- index, rows it returned, rows it read and threw away)
CREATE FUNCTION pg_temp.plan_props(q text)
RETURNS TABLE(node text, index_name text, rows_out bigint, rows_discarded bigint)
LANGUAGE plpgsql AS $$
DECLARE
    j jsonb;
    scan jsonb;
BEGIN
    EXECUTE 'EXPLAIN (ANALYZE, FORMAT JSON, COSTS OFF, TIMING OFF, SUMMARY OFF) ' || q INTO j;
    scan := jsonb_path_query_first(j, '$.** ? (@."Relation Name" == "audio_history")');
    node := scan->>'Node Type';
    index_name := coalesce(scan->>'Index Name',
                           jsonb_path_query_first(scan, '$.** ? (exists (@."Index Name"))')->>'Index Name');
    rows_out := (scan->>'Actual Rows')::bigint;
    rows_discarded := coalesce((scan->>'Rows Removed by Filter')::bigint, 0)
                    + coalesce((scan->>'Rows Removed by Index Recheck')::bigint, 0);
    RETURN NEXT;
END
$$;

-- at_history_page's reads of its index: rows the query returned, index
-- entries read and table rows fetched, from this transaction's statistics
CREATE FUNCTION pg_temp.index_reads(q text)
RETURNS TABLE(rows_out bigint, index_entries_read bigint, rows_fetched bigint)
LANGUAGE plpgsql AS $$
DECLARE
    -- summed over the index's partitions
    i regclass := 'audiotricks.audio_history_user_created_idx';
    r0 bigint := (SELECT sum(pg_stat_get_xact_tuples_returned(relid)) FROM pg_partition_tree(i));
    f0 bigint := (SELECT sum(pg_stat_get_xact_tuples_fetched(relid)) FROM pg_partition_tree(i));
BEGIN
    EXECUTE q;
    GET DIAGNOSTICS rows_out = ROW_COUNT;
    index_entries_read := (SELECT sum(pg_stat_get_xact_tuples_returned(relid)) FROM pg_partition_tree(i)) - r0;
    rows_fetched := (SELECT sum(pg_stat_get_xact_tuples_fetched(relid)) FROM pg_partition_tree(i)) - f0;
    RETURN NEXT;
END
$$;

-- without an identity every function refuses: 42501
SELECT audiotricks.at_history_add('x');
SELECT * FROM audiotricks.at_history_page();
SELECT audiotricks.at_history_count();
SELECT * FROM audiotricks.at_history_search('x');
SELECT audiotricks.at_history_delete('00000000-0000-0000-0000-000000000000');
-- and direct access sees nothing and may write nothing
SELECT count(*) FROM audiotricks.audio_history;
INSERT INTO audiotricks.audio_history (title) VALUES ('nobody');

------------------------------------------------------------------ add
BEGIN;
SELECT audiotricks.at_authenticate(:'ta') IS NOT NULL AS authenticated;
-- named arguments, as PostgREST passes them
SELECT audiotricks.at_history_add(
    title => 'Weekly sync', audio_url => 'https://cdn.example.com/a/1.mp3',
    file_size_bytes => 1048576, duration_seconds => 1800,
    transcript => 'we discussed the roadmap and the zebra budget',
    summary => 'roadmap discussion',
    key_moments => '[{"timestamp": "00:01:23", "description": "Introduction begins", "confidence": 0.95},
                     {"timestamp": "00:05:47", "description": "Main topic discussion", "confidence": 0.88}]',
    processing_options => '{"language": "en", "model": "whisper-1", "summaryStyle": "detailed",
                            "includeTimestamps": true, "speakerDiarization": false}'
) IS NOT NULL AS added;
-- every argument defaults to NULL
SELECT audiotricks.at_history_add() IS NOT NULL AS added_empty;
SELECT title, audio_url, file_size_bytes, duration_seconds, summary,
       jsonb_array_length(key_moments) AS moments, processing_options->>'model' AS model,
       user_id = :'alice_id' AS mine, created_at = now() AS created_now,
       search_config
  FROM audiotricks.audio_history ORDER BY created_at, id;
-- the id returned is the row's id
SELECT audiotricks.at_history_add('returned id') AS returned_id \gset
SELECT id = :'returned_id' AS id_matches FROM audiotricks.audio_history WHERE title = 'returned id';
-- direct INSERT (PostgREST POST /audio_history): user_id defaults to the identity
INSERT INTO audiotricks.audio_history (title, transcript) VALUES ('Direct insert', 'posted directly')
RETURNING user_id = :'alice_id' AS mine, search_config;
-- another user's id is refused by the policy
INSERT INTO audiotricks.audio_history (user_id, title) VALUES (:'bob_id', 'forged');
-- the derived and time columns are not writable by application roles
INSERT INTO audiotricks.audio_history (title, created_at) VALUES ('x', '2000-01-01');
INSERT INTO audiotricks.audio_history (title, search_config) VALUES ('x', 'simple');
UPDATE audiotricks.audio_history SET user_id = :'bob_id' WHERE title = 'Direct insert';
COMMIT;

------------------------------------------------------------------ validation
BEGIN;
SELECT audiotricks.at_authenticate(:'ta') IS NOT NULL AS authenticated;
-- key_moments
SELECT audiotricks.at_history_add(key_moments => '{"timestamp": "00:00:01"}');
SELECT audiotricks.at_history_add(key_moments => '"00:00:01"');
SELECT audiotricks.at_history_add(key_moments => '[{"timestamp": "00:00:01", "description": "a"}, 5]');
SELECT audiotricks.at_history_add(key_moments => '[{"description": "a"}]');
SELECT audiotricks.at_history_add(key_moments => '[{"timestamp": "1:23", "description": "a"}]');
SELECT audiotricks.at_history_add(key_moments => '[{"timestamp": "00:60:00", "description": "a"}]');
SELECT audiotricks.at_history_add(key_moments => '[{"timestamp": "00:00:60", "description": "a"}]');
SELECT audiotricks.at_history_add(key_moments => '[{"timestamp": 83, "description": "a"}]');
SELECT audiotricks.at_history_add(key_moments => '[{"timestamp": "00:00:01"}]');
SELECT audiotricks.at_history_add(key_moments => '[{"timestamp": "00:00:01", "description": null}]');
SELECT audiotricks.at_history_add(key_moments => '[{"timestamp": "00:00:01", "description": "a"},
                                                   {"timestamp": "00:00:02", "description": "b"},
                                                   {"timestamp": "00:00:03", "description": "c", "confidence": 1.01}]');
SELECT audiotricks.at_history_add(key_moments => '[{"timestamp": "00:00:01", "description": "a", "confidence": -0.1}]');
SELECT audiotricks.at_history_add(key_moments => '[{"timestamp": "00:00:01", "description": "a", "confidence": "0.5"}]');
-- accepted: the bounds, no confidence, unlisted keys, an empty array, 99 hours
SELECT audiotricks.at_history_add(title => 'km ok', key_moments =>
    '[{"timestamp": "00:00:00", "description": "a", "confidence": 0},
      {"timestamp": "99:59:59", "description": "b", "confidence": 1},
      {"timestamp": "00:00:02", "description": "c", "speaker": {"name": "Ann"}}]') IS NOT NULL AS ok;
SELECT audiotricks.at_history_add(key_moments => '[]') IS NOT NULL AS ok;
-- a long array (3,000 moments, 260,005 bytes: just under the 256 kB limit
-- that sql/limits.sql tests) and a deeply nested unlisted value are fine
SELECT audiotricks.at_history_add(key_moments =>
    (SELECT jsonb_agg(jsonb_build_object('timestamp', '00:00:01', 'description', 'm' || g, 'confidence', 0.5))
       FROM generate_series(1, 3000) g)) IS NOT NULL AS ok;
SELECT audiotricks.at_history_add(processing_options =>
    ('{"extra": ' || repeat('[', 1000) || repeat(']', 1000) || '}')::jsonb) IS NOT NULL AS ok;
-- processing_options
SELECT audiotricks.at_history_add(processing_options => '[]');
SELECT audiotricks.at_history_add(processing_options => '"en"');
SELECT audiotricks.at_history_add(processing_options => '{"language": 1}');
SELECT audiotricks.at_history_add(processing_options => '{"model": true}');
SELECT audiotricks.at_history_add(processing_options => '{"summaryStyle": null}');
SELECT audiotricks.at_history_add(processing_options => '{"includeTimestamps": "yes"}');
SELECT audiotricks.at_history_add(processing_options => '{"speakerDiarization": 1}');
SELECT audiotricks.at_history_add(processing_options => '{"temperature": 0.2, "language": "fr"}') IS NOT NULL AS ok;
-- audio_url
SELECT audiotricks.at_history_add(audio_url => 'ftp://example.com/a.mp3');
SELECT audiotricks.at_history_add(audio_url => 'javascript:alert(1)');
SELECT audiotricks.at_history_add(audio_url => 'https://');
SELECT audiotricks.at_history_add(audio_url => 'https:///path');
SELECT audiotricks.at_history_add(audio_url => 'https://example.com/a b.mp3');
SELECT audiotricks.at_history_add(audio_url => 'https://example.com/' || repeat('a', 2029));
SELECT audiotricks.at_history_add(audio_url => 'https://example.com/' || repeat('a', 2028)) IS NOT NULL AS ok_2048;
SELECT audiotricks.at_history_add(audio_url => 'HTTP://Example.com:8080/a.mp3?x=1#t') IS NOT NULL AS ok;
-- sizes, durations, title
SELECT audiotricks.at_history_add(file_size_bytes => -1);
SELECT audiotricks.at_history_add(duration_seconds => -1);
SELECT audiotricks.at_history_add(file_size_bytes => 0, duration_seconds => 0) IS NOT NULL AS ok;
SELECT audiotricks.at_history_add(title => repeat('t', 501));
SELECT audiotricks.at_history_add(title => repeat('é', 500)) IS NOT NULL AS ok_500;
-- the same rules hold for direct INSERT and UPDATE
INSERT INTO audiotricks.audio_history (key_moments) VALUES ('[{"timestamp": "00:00:01", "description": "a", "confidence": 2}]');
UPDATE audiotricks.audio_history SET processing_options = '{"model": 3}' WHERE title = 'Direct insert';
UPDATE audiotricks.audio_history SET audio_url = 'file:///etc/passwd' WHERE title = 'Direct insert';
UPDATE audiotricks.audio_history SET duration_seconds = -5 WHERE title = 'Direct insert';
-- the checks are callable directly too (NULL passes, as in a CHECK)
SELECT audiotricks_internal.at_check_key_moments(NULL) IS NULL AS null_passes,
       audiotricks_internal.at_check_processing_options('{}') AS empty_ok;
COMMIT;

------------------------------------------------------------------ page
BEGIN;
SELECT audiotricks.at_authenticate(:'ta') IS NOT NULL AS authenticated;
SELECT * FROM audiotricks.at_history_page(0);
SELECT * FROM audiotricks.at_history_page(101);
SELECT * FROM audiotricks.at_history_page(-1);
SELECT count(*) = audiotricks.at_history_count() AS count_matches FROM audiotricks.audio_history;
-- newest first, ties on created_at broken by id
SELECT bool_and(ok) AS ordered FROM (
  SELECT (created_at, id) < lag((created_at, id)) OVER (ORDER BY n) AS ok
    FROM (SELECT row_number() OVER () AS n, * FROM audiotricks.at_history_page(100)) p
  OFFSET 1) s;
COMMIT;

-- bob sees, counts and pages only his own
BEGIN;
SELECT audiotricks.at_authenticate(:'tb') IS NOT NULL AS authenticated;
SELECT audiotricks.at_history_add('bob entry', transcript => 'bob talks about zebra crossings') IS NOT NULL AS added;
SELECT audiotricks.at_history_count() AS bob_count,
       (SELECT count(*) FROM audiotricks.at_history_page(100)) AS bob_page,
       (SELECT count(*) FROM audiotricks.audio_history) AS bob_select;
SELECT title FROM audiotricks.at_history_page();
COMMIT;

------------------------------------------------------------------ walk
-- 1,000 more entries for alice, in groups of three sharing a created_at
RESET ROLE;
INSERT INTO audiotricks.audio_history (user_id, title, created_at)
SELECT :'alice_id', 'walk ' || g, '2024-01-01'::timestamptz + (g / 3) * interval '1 second'
  FROM generate_series(1, 1000) g;
SET ROLE regress_hist_app;
CREATE TEMP TABLE walk (n serial, id uuid, created_at timestamptz, cursor text);
CREATE TEMP TABLE deleted_ahead (id uuid);
CREATE TEMP TABLE initial (id uuid);
BEGIN;
SELECT audiotricks.at_authenticate(:'ta') IS NOT NULL AS authenticated;
INSERT INTO initial SELECT id FROM audiotricks.audio_history;
-- page by 7; between pages add an entry, delete the cursor's own row and
-- one row further ahead (PL/pgSQL: its plans go generic after 5 calls)
DO $$
DECLARE
    cur text;
    cur_t timestamptz;
    cur_id uuid;
    r record;
    got int;
    pages int := 0;
    -- bounded: a keyset bug that never reaches the end fails, not hangs
    max_pages int := (SELECT count(*) FROM audiotricks.audio_history) + 2;
BEGIN
    LOOP
        IF pages > max_pages THEN
            RAISE EXCEPTION 'the walk did not end after % pages', pages;
        END IF;
        got := 0;
        FOR r IN SELECT * FROM audiotricks.at_history_page(7, cur) LOOP
            INSERT INTO walk (id, created_at, cursor) VALUES (r.id, r.created_at, r.cursor);
            cur := r.cursor;
            cur_t := r.created_at;
            cur_id := r.id;
            got := got + 1;
        END LOOP;
        EXIT WHEN got = 0;
        pages := pages + 1;
        PERFORM audiotricks.at_history_add('walk new ' || pages);
        PERFORM audiotricks.at_history_delete(cur_id);
        WITH d AS (
            DELETE FROM audiotricks.audio_history WHERE id = (
                SELECT id FROM audiotricks.audio_history
                 WHERE (created_at, id) < (cur_t, cur_id)
                 ORDER BY created_at DESC, id DESC OFFSET 4 LIMIT 1)
            RETURNING id)
        INSERT INTO deleted_ahead SELECT id FROM d;
    END LOOP;
    RAISE NOTICE 'walked % pages', pages;
END
$$;
COMMIT;
SELECT (SELECT count(*) FROM initial) AS initial_rows,
       (SELECT count(*) FROM deleted_ahead) AS deleted_ahead,
       (SELECT count(*) FROM walk) AS returned,
       (SELECT count(DISTINCT id) FROM walk) AS distinct_returned;
-- every row present throughout came exactly once; none deleted ahead came
SELECT count(*) AS missing FROM initial i
 WHERE i.id NOT IN (SELECT id FROM deleted_ahead)
   AND NOT EXISTS (SELECT FROM walk w WHERE w.id = i.id);
SELECT count(*) AS deleted_but_returned FROM walk WHERE id IN (SELECT id FROM deleted_ahead);
SELECT count(*) AS not_initial FROM walk WHERE id NOT IN (SELECT id FROM initial);
-- strictly in order, newest first
SELECT count(*) AS out_of_order FROM (
  SELECT (created_at, id) >= lag((created_at, id)) OVER (ORDER BY n) AS bad FROM walk) s
 WHERE bad;
-- a cursor whose row is gone still works: the next page starts right below it
BEGIN;
SELECT audiotricks.at_authenticate(:'ta') IS NOT NULL AS authenticated;
SELECT w.created_at AS gone_t, w.id AS gone_id, w.cursor AS gone_cursor FROM walk w
 WHERE NOT EXISTS (SELECT FROM audiotricks.audio_history h WHERE h.id = w.id)
 ORDER BY w.n LIMIT 1 OFFSET 10 \gset
SELECT array(SELECT id FROM audiotricks.at_history_page(5, :'gone_cursor')) =
       array(SELECT id FROM audiotricks.audio_history WHERE (created_at, id) < (:'gone_t', :'gone_id')
              ORDER BY created_at DESC, id DESC LIMIT 5) AS resumes;
-- the cursor is the row's exact sort key: URL-safe, 39 characters
SELECT bool_and(cursor ~ '^[A-Za-z0-9_-]{39}$') AS page_cursors_url_safe,
       bool_and(rank IS NULL) AS page_has_no_rank
  FROM audiotricks.at_history_page(100);
-- inside a group sharing one created_at: the rows after the cursor's are the
-- group's smaller ids, then older rows; the cursor's own row never again
SELECT w.cursor AS tie_cursor, w.created_at AS tie_t, w.id AS tie_id FROM walk w
 WHERE (SELECT count(*) FROM audiotricks.audio_history h WHERE h.created_at = w.created_at) = 3
   AND w.id = (SELECT h.id FROM audiotricks.audio_history h WHERE h.created_at = w.created_at
                ORDER BY h.id DESC LIMIT 1)
 ORDER BY w.n LIMIT 1 \gset
SELECT array(SELECT id FROM audiotricks.at_history_page(4, :'tie_cursor')) =
       array(SELECT id FROM audiotricks.audio_history WHERE (created_at, id) < (:'tie_t', :'tie_id')
              ORDER BY created_at DESC, id DESC LIMIT 4) AS tie_resumes,
       (SELECT count(*) FROM audiotricks.at_history_page(4, :'tie_cursor')
         WHERE created_at = :'tie_t') AS same_time_after;
-- a search walk over entries sharing created_at, 7 a page: each match once,
-- strictly in order (rank, then created_at, then id, all descending)
CREATE TEMP TABLE twalk (n serial, id uuid, rank real, created_at timestamptz);
DO $$
DECLARE
    c text;
    r record;
    got int;
BEGIN
    FOR i IN 1..200 LOOP
        got := 0;
        FOR r IN SELECT * FROM audiotricks.at_history_search('walk', 7, c) LOOP
            INSERT INTO twalk (id, rank, created_at) VALUES (r.id, r.rank, r.created_at);
            c := r.cursor;
            got := got + 1;
        END LOOP;
        EXIT WHEN got = 0;
    END LOOP;
END
$$;
SELECT count(*) AS returned, count(DISTINCT id) AS distinct_returned,
       count(*) = (SELECT count(*) FROM audiotricks.audio_history
                    WHERE search_tsv @@ to_tsquery('simple', 'walk')
                       OR search_tsv @@ to_tsquery('english', 'walk')) AS every_match
  FROM twalk;
SELECT count(*) AS out_of_order FROM (
  SELECT (rank, created_at, id) >= lag((rank, created_at, id)) OVER (ORDER BY n) AS bad FROM twalk) s
 WHERE bad;
-- invalid cursors: 22023 "invalid cursor", never another page
\set VERBOSITY default
SELECT * FROM audiotricks.at_history_page(5, '');
SELECT * FROM audiotricks.at_history_page(5, left(:'gone_cursor', -1));
SELECT * FROM audiotricks.at_history_page(5, :'gone_cursor' || 'A');
SELECT * FROM audiotricks.at_history_page(5, translate(:'gone_cursor', 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'BCDEFGHIJKLMNOPQRSTUVWXYZA'));
SELECT * FROM audiotricks.at_history_page(5, 'not a cursor at all, not one ever');
SELECT * FROM audiotricks.at_history_page(5, (SELECT cursor FROM audiotricks.at_history_search('walk', 1)));
\set VERBOSITY terse
COMMIT;

------------------------------------------------------------------ plans
-- 20,000 entries for alice and 40,000 for bob: the page reads about
-- page_size rows at page 1 and deep down, in custom and generic plans
RESET ROLE;
INSERT INTO audiotricks.audio_history (user_id, title, transcript, created_at)
SELECT :'alice_id', 'deep ' || g, 'alice common words number ' || g,
       '2022-01-01'::timestamptz + g * interval '1 minute'
  FROM generate_series(1, 20000) g;
INSERT INTO audiotricks.audio_history (user_id, title, transcript, created_at)
SELECT :'bob_id', 'bob ' || g, 'bob common words number ' || g,
       '2022-01-01'::timestamptz + g * interval '1 minute'
  FROM generate_series(1, 40000) g;
VACUUM (ANALYZE) audiotricks.audio_history;  -- dead index entries out of the counts below
SET ROLE regress_hist_app;
BEGIN;
SELECT audiotricks.at_authenticate(:'ta') IS NOT NULL AS authenticated;
SELECT created_at AS deep_t, id AS deep_id FROM audiotricks.audio_history
 WHERE title = 'deep 5000' \gset
-- its cursor, found by walking 100 a page
DO $$
DECLARE
    c text;
    r record;
    got int;
BEGIN
    LOOP
        got := 0;
        FOR r IN SELECT title, cursor FROM audiotricks.at_history_page(100, c) LOOP
            got := got + 1;
            c := r.cursor;
            IF r.title = 'deep 5000' THEN
                PERFORM set_config('regress.deep_cursor', c, true);
                RETURN;
            END IF;
        END LOOP;
        EXIT WHEN got = 0;
    END LOOP;
    RAISE EXCEPTION 'deep 5000 not found';
END
$$;
SELECT current_setting('regress.deep_cursor') AS deep_cursor \gset
-- at_history_page reads the index directly (src/history_page.c): count the index
-- entries it read and the rows it fetched (this transaction's statistics)
SELECT 'page 1' AS page, * FROM pg_temp.index_reads('SELECT * FROM audiotricks.at_history_page(20)');
-- a cursor starts the index scan right after its row: page_size entries
SELECT 'deep' AS page, * FROM pg_temp.index_reads(
    format('SELECT * FROM audiotricks.at_history_page(20, %L)', :'deep_cursor'));
SELECT 'deep, size 100' AS page, * FROM pg_temp.index_reads(
    format('SELECT * FROM audiotricks.at_history_page(100, %L)', :'deep_cursor'));
-- a prepared page (PostgREST, drivers) reads the same with either plan kind:
-- there is no query inside to plan
PREPARE page(integer, text) AS
    SELECT * FROM audiotricks.at_history_page($1, $2);
SET LOCAL plan_cache_mode = force_generic_plan;
SELECT 'generic deep' AS page, * FROM pg_temp.index_reads(
    format('EXECUTE page(20, %L)', :'deep_cursor'));
SET LOCAL plan_cache_mode = force_custom_plan;
SELECT 'custom deep' AS page, * FROM pg_temp.index_reads(
    format('EXECUTE page(20, %L)', :'deep_cursor'));
RESET plan_cache_mode;
-- the deep page is the right one
SELECT array_agg(title) AS deep_page FROM audiotricks.at_history_page(3, :'deep_cursor');
SELECT count(*) AS null_means_20 FROM audiotricks.at_history_page(NULL);
SELECT count(*) AS default_20 FROM audiotricks.at_history_page();
SELECT count(*) AS max_100 FROM audiotricks.at_history_page(100);
COMMIT;
DEALLOCATE page;

-- an administrator's own policy applies to at_history_page too: with any
-- policy besides audio_history_own on the table the call runs its query
-- under row-level security instead of reading the index directly
RESET ROLE;
CREATE POLICY regress_hide_49 ON audiotricks.audio_history AS RESTRICTIVE FOR SELECT
    USING (title IS NULL OR title NOT LIKE 'deep 49%');
SET ROLE regress_hist_app;
BEGIN;
SELECT audiotricks.at_authenticate(:'ta') IS NOT NULL AS authenticated;
SELECT array(SELECT title FROM audiotricks.at_history_page(3, :'deep_cursor')) AS after_5000,
       (SELECT count(*) FROM audiotricks.at_history_page(100, :'deep_cursor')
         WHERE title LIKE 'deep 49%') AS hidden_returned,
       array(SELECT id FROM audiotricks.at_history_page(100, :'deep_cursor')) =
       array(SELECT id FROM audiotricks.audio_history
              WHERE (created_at, id) < (:'deep_t'::timestamptz, :'deep_id'::uuid)
              ORDER BY created_at DESC, id DESC LIMIT 100) AS same_as_query;
-- the same cursors work under the policy: a page's rows and cursors are
-- those of the direct read (walk of the last 30 with no policy: below)
SELECT array(SELECT title || ' ' || cursor FROM audiotricks.at_history_page(3, :'deep_cursor')) AS policy_cursors \gset
-- at_history_search honours it too ("deep 4950" is hidden, "deep 5950" not)
SELECT array(SELECT title FROM audiotricks.at_history_search('"number 4950" or "number 5950"')) AS search_under_policy;
-- a search walk under the policy, 4 a page, gives every visible match once
CREATE TEMP TABLE swalk (n serial, via text, id uuid, rank real);
DO $$
DECLARE
    c text;
    r record;
    got int;
BEGIN
    FOR i IN 1..50 LOOP
        got := 0;
        FOR r IN SELECT * FROM audiotricks.at_history_search('"number 4990" or 4995 or 5001 or 5002 or 5003 or 5004 or 5005 or 5006 or 5007 or 5008 or 5009', 4, c) LOOP
            INSERT INTO swalk (via, id, rank) VALUES ('policy', r.id, r.rank);
            c := r.cursor;
            got := got + 1;
        END LOOP;
        EXIT WHEN got = 0;
    END LOOP;
END
$$;
COMMIT;
RESET ROLE;
DROP POLICY regress_hide_49 ON audiotricks.audio_history;
SET ROLE regress_hist_app;
BEGIN;
SELECT audiotricks.at_authenticate(:'ta') IS NOT NULL AS authenticated;
-- back to the direct read once the policy is gone
SELECT array(SELECT title FROM audiotricks.at_history_page(3, :'deep_cursor')) AS after_5000,
       array(SELECT title || ' ' || cursor FROM audiotricks.at_history_page(3,
                 (SELECT cursor FROM audiotricks.at_history_page(100, :'deep_cursor') OFFSET 99))) =
       :'policy_cursors' AS same_cursors_as_under_policy;
DO $$
DECLARE
    c text;
    r record;
    got int;
BEGIN
    FOR i IN 1..50 LOOP
        got := 0;
        FOR r IN SELECT * FROM audiotricks.at_history_search('"number 4990" or 4995 or 5001 or 5002 or 5003 or 5004 or 5005 or 5006 or 5007 or 5008 or 5009', 4, c) LOOP
            INSERT INTO swalk (via, id, rank) VALUES ('direct', r.id, r.rank);
            c := r.cursor;
            got := got + 1;
        END LOOP;
        EXIT WHEN got = 0;
    END LOOP;
END
$$;
-- the same matches in the same order, once each; the policy hid deep 49*
SELECT via, count(*) AS returned, count(DISTINCT id) AS distinct_returned
  FROM swalk GROUP BY via ORDER BY via;
SELECT (SELECT array_agg(id ORDER BY n) FROM swalk WHERE via = 'policy') =
       (SELECT array_agg(s.id ORDER BY s.n) FROM swalk s JOIN audiotricks.audio_history h USING (id)
         WHERE s.via = 'direct' AND h.title NOT LIKE 'deep 49%') AS policy_walk_is_direct_walk_minus_hidden;
SELECT count(*) AS rank_increases FROM (
  SELECT rank > lag(rank) OVER (ORDER BY n) AS bad FROM swalk WHERE via = 'direct') s WHERE bad;
SELECT array(SELECT title FROM audiotricks.at_history_search('"number 4950" or "number 5950"') ORDER BY title) AS search_without_policy;
-- row_security = off refuses, as it does for a query on the table
SET LOCAL row_security = off;
SELECT count(*) FROM audiotricks.at_history_page();
COMMIT;
-- a role that may call the functions but may not read the table: 42501
RESET ROLE;
CREATE ROLE regress_hist_noselect;
GRANT USAGE ON SCHEMA audiotricks TO regress_hist_noselect;
GRANT EXECUTE ON FUNCTION audiotricks.at_authenticate(text),
    audiotricks.at_history_page(integer, text) TO regress_hist_noselect;
SET ROLE regress_hist_noselect;
BEGIN;
SELECT audiotricks.at_authenticate(:'ta') IS NOT NULL AS authenticated;
SELECT count(*) FROM audiotricks.at_history_page();
COMMIT;
RESET ROLE;
DROP OWNED BY regress_hist_noselect;
DROP ROLE regress_hist_noselect;
-- rows written before a column was added with a default carry the default,
-- as a query on the table shows them (rolled back)
BEGIN;
ALTER TABLE audiotricks.audio_history ADD COLUMN regress_extra integer NOT NULL DEFAULT 7;
SET LOCAL ROLE regress_hist_app;
SELECT audiotricks.at_authenticate(:'ta') IS NOT NULL AS authenticated;
SELECT title, rank IS NULL AS no_rank, cursor IS NOT NULL AS has_cursor
  FROM audiotricks.at_history_page(2, :'deep_cursor');
ROLLBACK;
SET ROLE regress_hist_app;

-- search reads only the caller's matching entries, through one bitmap scan
-- of the GIN index on (user_id, search_tsv), although bob holds most rows
-- and shares the words (src/history_search.c, search_direct: no planner involved).
-- Counted from this transaction's statistics: GIN scans, and table rows
-- the bitmap scan fetched (the page is then fetched again by TID).
CREATE FUNCTION pg_temp.search_reads(q text)
RETURNS TABLE(rows_out bigint, gin_scans bigint, table_rows_read bigint)
LANGUAGE plpgsql AS $$
DECLARE
    -- summed over the partitions
    g regclass := 'audiotricks.audio_history_search_idx';
    t regclass := 'audiotricks.audio_history';
    s0 bigint := (SELECT sum(pg_stat_get_xact_numscans(relid)) FROM pg_partition_tree(g));
    f0 bigint := (SELECT sum(pg_stat_get_xact_tuples_fetched(relid)) FROM pg_partition_tree(t));
BEGIN
    SELECT count(*) INTO rows_out FROM audiotricks.at_history_search(q, 20);
    gin_scans := (SELECT sum(pg_stat_get_xact_numscans(relid)) FROM pg_partition_tree(g)) - s0;
    table_rows_read := (SELECT sum(pg_stat_get_xact_tuples_fetched(relid)) FROM pg_partition_tree(t)) - f0;
    RETURN NEXT;
END
$$;
BEGIN;
SELECT audiotricks.at_authenticate(:'ta') IS NOT NULL AS authenticated;
-- a word in one of alice's 20,000 entries (and in one of bob's 40,000)
SELECT 'rare' AS word, * FROM pg_temp.search_reads('number & 1234');
-- a word in all of alice's entries and all of bob's: alice's only are read
SELECT 'common' AS word, r.rows_out, r.gin_scans,
       r.table_rows_read BETWEEN 20000 AND 20100 AS reads_about_alices_20000
  FROM pg_temp.search_reads('common') r;
COMMIT;
-- a user with few entries (at most 256) is searched by reading them all
-- through the btree, no GIN scan: its cost follows their own few entries,
-- not how common the word is in the table or the GIN pending list
RESET ROLE;
SELECT audiotricks.at_register('hist-c@example.com', 'hist_carol', 'Passw0rdC') IS NOT NULL AS carol;
SELECT token AS tc FROM audiotricks.at_login('hist_carol', 'Passw0rdC') \gset
SET ROLE regress_hist_app;
BEGIN;
SELECT audiotricks.at_authenticate(:'tc') IS NOT NULL AS authenticated;
SELECT audiotricks.at_history_add(t.title, transcript => t.tr, summary => t.su,
                                  processing_options => '{"language": "en"}') IS NOT NULL AS added
  FROM (VALUES ('Common ground', 'nothing else', NULL),
               ('Planning', 'the common plan for the quarter', 'common goals'),
               ('Lunch', 'a common lunch and a common walk', NULL),
               ('Other', 'unrelated words', NULL)) t(title, tr, su);
SELECT 'carol common' AS word, * FROM pg_temp.search_reads('common');
-- the same ranking as the GIN path: title (A) over summary (B) over
-- transcript (C); equal ranks newest first
SELECT title FROM audiotricks.at_history_search('common');
SELECT title FROM audiotricks.at_history_search('common', 2);
-- walked one at a time by cursor: the same rows in the same order
WITH RECURSIVE w(n, title, cursor) AS (
    SELECT 1, title, cursor FROM audiotricks.at_history_search('common', 1)
    UNION ALL
    SELECT w.n + 1, s.title, s.cursor
      FROM w, LATERAL audiotricks.at_history_search('common', 1, w.cursor) s)
SELECT array_agg(title ORDER BY n) AS walked_one_by_one,
       bool_and(cursor ~ '^[A-Za-z0-9_-]{50}$') AS search_cursors_url_safe FROM w;
SELECT count(*) AS no_match FROM audiotricks.at_history_search('zebra');
COMMIT;
-- both paths give exactly what the plain query gives (as a superuser):
-- carol (few entries, btree) and alice (20,000+, GIN), several queries
CREATE FUNCTION pg_temp.search_matches_sql(tok text, q text, n int) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    got uuid[];
    want uuid[];
    uid uuid := audiotricks.at_authenticate(tok);
BEGIN
    got := array(SELECT id FROM audiotricks.at_history_search(q, n));
    RESET ROLE;
    want := array(SELECT h.id FROM audiotricks.audio_history h
                   WHERE h.user_id = uid
                     AND h.search_tsv @@ websearch_to_tsquery('english', q)
                   ORDER BY ts_rank(h.search_tsv, websearch_to_tsquery('english', q)) DESC,
                            h.created_at DESC, h.id DESC
                   LIMIT n);
    SET ROLE regress_hist_app;
    RETURN CASE WHEN got = want THEN 'same' ELSE 'DIFFERENT' END || ', ' || cardinality(got) || ' rows';
END
$$;
SELECT u, q, n, pg_temp.search_matches_sql(t, q, n) AS result
  FROM (VALUES ('carol', :'tc'), ('alice', :'ta')) a(u, t),
       (VALUES ('common', 20), ('common', 2), ('"common plan" or lunch or 1234', 20), ('common -walk', 5)) b(q, n)
 ORDER BY 1, 2, 3;

------------------------------------------------------------------ search
BEGIN;
SELECT audiotricks.at_authenticate(:'ta') IS NOT NULL AS authenticated;
SELECT audiotricks.at_history_add('Quarterly numbers', transcript => 'revenue and costs',
                                  processing_options => '{"language": "en"}') IS NOT NULL AS added;
SELECT audiotricks.at_history_add('Team lunch', transcript => 'we talked about quarterly plans',
                                  processing_options => '{"language": "en"}') IS NOT NULL AS added;
SELECT audiotricks.at_history_add('Wochenbericht', transcript => 'Die Besprechungen dauerten lange',
                                  processing_options => '{"language": "de"}') IS NOT NULL AS added;
SELECT audiotricks.at_history_add('Unknown tongue', transcript => 'blorp zibber',
                                  processing_options => '{"language": "xx"}') IS NOT NULL AS added;
-- a word only one transcript holds
SELECT title FROM audiotricks.at_history_search('zebra');
-- stemming in the entry's language: "discussing roadmaps", "Besprechung"
SELECT title FROM audiotricks.at_history_search('discussing roadmaps');
SELECT title FROM audiotricks.at_history_search('Besprechung');
-- the search document: stemmed in the entry's language, 'simple' for an
-- unknown one; title A, summary B, transcript C
SELECT title, search_tsv FROM audiotricks.audio_history
 WHERE title IN ('Wochenbericht', 'Unknown tongue', 'Quarterly numbers', 'Weekly sync') ORDER BY title;
SELECT title FROM audiotricks.at_history_search('zibber');
-- a title match ranks above a transcript-only match
SELECT title FROM audiotricks.at_history_search('quarterly');
-- web search syntax: phrases, OR, exclusion
SELECT title FROM audiotricks.at_history_search('"zebra budget" or "revenue and costs"') ORDER BY title;
SELECT title FROM audiotricks.at_history_search('quarterly -lunch');
-- hostile or empty input: no error, no rows
SELECT count(*) AS hostile FROM audiotricks.at_history_search($$'"(&|!$$);
SELECT count(*) AS operators FROM audiotricks.at_history_search('!!! & | <-> :* ( )');
SELECT count(*) AS stop_words_only FROM audiotricks.at_history_search('the and of');
SELECT count(*) AS empty FROM audiotricks.at_history_search('');
SELECT count(*) AS null_query FROM audiotricks.at_history_search(NULL);
SELECT count(*) AS longest FROM audiotricks.at_history_search(repeat('zebra ', 165) || 'zebra');
-- PostgreSQL's parser fails internally on some operator-only input; that is
-- a clean 22023 here, never an internal error
SAVEPOINT operators_only;
SELECT count(*) FROM audiotricks.at_history_search(repeat('&-', 50));
ROLLBACK TO SAVEPOINT operators_only;
SELECT count(*) AS many_terms FROM audiotricks.at_history_search(repeat('z ', 499) || 'z');
SELECT count(*) AS too_long FROM audiotricks.at_history_search(repeat('zebra ', 20000));
-- page size
SELECT count(*) AS default_20 FROM audiotricks.at_history_search('common');
SELECT count(*) AS five FROM audiotricks.at_history_search('common', 5);
SELECT count(*) FROM audiotricks.at_history_search('common', 0);
SELECT count(*) FROM audiotricks.at_history_search('common', 101);
-- only alice's rows, though bob's transcripts share the words
SELECT count(*) FILTER (WHERE user_id <> :'alice_id') AS foreign_rows
  FROM audiotricks.at_history_search('common', 100);
-- search cursors: only with the same query text, and only a search's
SELECT cursor AS common_cursor, rank AS common_rank FROM audiotricks.at_history_search('common', 1) \gset
SELECT count(*) AS after_first, bool_and(rank <= :'common_rank'::real) AS not_above
  FROM audiotricks.at_history_search('common', 100, :'common_cursor');
\set VERBOSITY default
SELECT count(*) FROM audiotricks.at_history_search('common ', 5, :'common_cursor');
SELECT count(*) FROM audiotricks.at_history_search('Common', 5, :'common_cursor');
SELECT count(*) FROM audiotricks.at_history_search(NULL, 5, :'common_cursor');
SELECT count(*) FROM audiotricks.at_history_search('common', 5, (SELECT cursor FROM audiotricks.at_history_page(1)));
SELECT count(*) FROM audiotricks.at_history_search('common', 5, left(:'common_cursor', -1));
SELECT count(*) FROM audiotricks.at_history_search('common', 5, translate(:'common_cursor', 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'BCDEFGHIJKLMNOPQRSTUVWXYZA'));
\set VERBOSITY terse
COMMIT;
BEGIN;
SELECT audiotricks.at_authenticate(:'tb') IS NOT NULL AS authenticated;
SELECT title FROM audiotricks.at_history_search('zebra');
SELECT count(*) AS bob_cannot_find_alice FROM audiotricks.at_history_search('roadmap');
COMMIT;
-- the query is parsed only in the languages of the caller's own entries:
-- bob's are all English, so German stemming ("Häuser" -> "haus") does not
-- reach his English "Haus" entry
BEGIN;
SELECT audiotricks.at_authenticate(:'tb') IS NOT NULL AS authenticated;
SELECT audiotricks.at_history_add('Haus music night', processing_options => '{"language": "en"}') IS NOT NULL AS added;
SELECT count(*) AS german_stem_on_english FROM audiotricks.at_history_search('Häuser');
-- with a German entry of his own the German reading applies; arms are OR-ed
-- over all of the user's entries, so the English "Haus" now matches too
SELECT audiotricks.at_history_add('Neue Häuser', processing_options => '{"language": "de"}') IS NOT NULL AS added;
SELECT title FROM audiotricks.at_history_search('Häuser') ORDER BY title;
COMMIT;
-- the languages come from audio_history_config_idx, one index descent per
-- distinct language plus one, however many entries (alice has 20,000+)
BEGIN;
SELECT audiotricks.at_authenticate(:'ta') IS NOT NULL AS authenticated;
SELECT array_agg(DISTINCT audiotricks_internal.at_history_tsv_config(search_config, processing_options)::text
                 ORDER BY audiotricks_internal.at_history_tsv_config(search_config, processing_options)::text) AS alice_configs
  FROM audiotricks.audio_history;
SELECT sum(pg_stat_get_xact_numscans(relid)) AS scans0 FROM pg_partition_tree('audiotricks.audio_history_config_idx') \gset
SELECT count(*) AS no_entry_says_anything FROM audiotricks.at_history_search('anything');
-- (entries of rolled-back or deleted rows not yet vacuumed may add a
-- language or two: 5 descents for the four above, up to 8 allowed, plus one
-- for each partition that holds none of them)
SELECT sum(pg_stat_get_xact_numscans(relid)) - :scans0
       BETWEEN 5 AND 8 + (SELECT count(*) - 1 FROM pg_partition_tree('audiotricks.audio_history') WHERE isleaf)
       AS descents_per_language_not_per_entry
  FROM pg_partition_tree('audiotricks.audio_history_config_idx');
COMMIT;
-- at_history_tsv_config: processing_options.language wins, else search_config
SELECT audiotricks_internal.at_history_tsv_config('english', '{"language": "de"}') AS de,
       audiotricks_internal.at_history_tsv_config('english', '{"language": "xx"}') AS unknown,
       audiotricks_internal.at_history_tsv_config('english', '{"model": "m"}') AS no_language,
       audiotricks_internal.at_history_tsv_config('french', NULL) AS null_options,
       audiotricks_internal.at_history_tsv_config(NULL, NULL) AS nothing;

------------------------------------------------------------------ delete
BEGIN;
SELECT audiotricks.at_authenticate(:'tb') IS NOT NULL AS authenticated;
SELECT id AS bob_entry FROM audiotricks.audio_history WHERE title = 'bob entry' \gset
COMMIT;
BEGIN;
SELECT audiotricks.at_authenticate(:'ta') IS NOT NULL AS authenticated;
SELECT id AS alice_entry FROM audiotricks.audio_history WHERE title = 'Weekly sync' \gset
SELECT audiotricks.at_history_delete(:'bob_entry') AS deleted_bobs;
SELECT audiotricks.at_history_delete('00000000-0000-0000-0000-000000000000') AS deleted_unknown;
SELECT audiotricks.at_history_delete(NULL) AS deleted_null;
SELECT audiotricks.at_history_delete(:'alice_entry') AS deleted_own;
SELECT audiotricks.at_history_delete(:'alice_entry') AS deleted_again;
DELETE FROM audiotricks.audio_history WHERE id = :'bob_entry';
COMMIT;
RESET ROLE;
SELECT count(*) AS bob_entry_still_there FROM audiotricks.audio_history WHERE id = :'bob_entry';
SET ROLE regress_hist_app;

-- PostgREST: the bearer token in request.headers is the identity
BEGIN;
SELECT set_config('request.headers', json_build_object('authorization', 'Bearer ' || :'tb')::text, true) IS NOT NULL AS headers_set;
SELECT title FROM audiotricks.at_history_page(1);
COMMIT;

-- a configuration is named by text: an unknown name is a clean 42704; a
-- bare name is looked up in pg_catalog, never on the search path
SELECT audiotricks_internal.at_history_tsv('pg_catalog.nosuchconfig', NULL, 'a', NULL, NULL);
SELECT audiotricks_internal.at_history_tsv('public.english', NULL, 'a', NULL, NULL);
SELECT audiotricks_internal.at_history_tsv('a.b.c', NULL, 'a', NULL, NULL);
SELECT audiotricks_internal.at_history_tsv('', NULL, 'a', NULL, NULL);
SELECT audiotricks_internal.at_history_tsv_config('"unterminated', NULL);
SELECT audiotricks_internal.at_history_tsv('english', NULL, 'Meetings', NULL, NULL) AS bare_name,
       audiotricks_internal.at_history_tsv('PG_CATALOG.English', NULL, 'Meetings', NULL, NULL) AS case_folded,
       audiotricks_internal.at_history_tsv_config('english', NULL) AS canonical,
       audiotricks_internal.at_search_config('pt-BR') AS pt_br,
       audiotricks_internal.at_search_config(NULL) AS null_language;

-- clean up
DROP FUNCTION pg_temp.plan_props(text);
DROP FUNCTION pg_temp.index_reads(text);
DROP FUNCTION pg_temp.search_reads(text);
DROP FUNCTION pg_temp.search_matches_sql(text, text, int);
DROP TABLE walk, deleted_ahead, initial, swalk, twalk;
RESET ROLE;
DELETE FROM audiotricks.users WHERE username IN ('hist_alice', 'hist_bob', 'hist_carol');
DROP ROLE regress_hist_app;
