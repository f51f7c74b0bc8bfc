-- audio_history partitioned by RANGE (created_at): rows land in their
-- partition; a cursor walk crosses partition boundaries and the default
-- partition and returns every row once, in order; search, count and delete
-- across partitions; the maintenance makes a missing partition (moving the
-- default's rows in) and drops expired ones with an audit event; an
-- application role cannot read a partition by name.  Date-independent:
-- every time is relative to the current month (UTC).
\set VERBOSITY terse
SET audiotricks.bcrypt_cost = 4;
SET TIME ZONE 'UTC';
SELECT audiotricks.at_register('part-a@example.com', 'part_alice', 'Passw0rdA') IS NOT NULL AS alice;
SELECT token AS ta FROM audiotricks.at_login('part_alice', 'Passw0rdA') \gset
SELECT id AS alice_id FROM audiotricks.users WHERE username = 'part_alice' \gset
SELECT date_trunc('month', now()) AS m0 \gset
CREATE ROLE regress_part_app;
GRANT audiotricks_user TO regress_part_app;

-- the current month and the next three exist (made by the maintenance)
SELECT count(*) >= 0 AS maintained FROM audiotricks.at_maintain_history_partitions();
SELECT count(*) AS month_partitions FROM pg_partition_tree('audiotricks.audio_history')
 WHERE isleaf AND relid::text ~ '^audiotricks\.audio_history_p[0-9]{6}$';
-- a second run has nothing to do
SELECT count(*) AS second_run_actions FROM audiotricks.at_maintain_history_partitions();

-- 40 rows in each of the four months (8 sharing one created_at), and 10 in
-- 2001, which no month partition covers: they land in the default
INSERT INTO audiotricks.audio_history (user_id, title, transcript, created_at)
SELECT :'alice_id', 'part ' || m || '-' || g, 'zebra part ' || m,
       :'m0'::timestamptz + m * interval '1 month' + CASE WHEN g <= 8 THEN interval '1 day'
                                                        ELSE g * interval '1 hour' END
  FROM generate_series(0, 3) m, generate_series(1, 40) g;
INSERT INTO audiotricks.audio_history (user_id, title, transcript, created_at)
SELECT :'alice_id', 'old ' || g, 'zebra old', '2001-01-01'::timestamptz + g * interval '1 day'
  FROM generate_series(1, 10) g;
-- each row is in the partition its created_at falls in
SELECT count(*) AS misplaced FROM audiotricks.audio_history h
 WHERE tableoid <> 'audiotricks.audio_history_default'::regclass
   AND tableoid::regclass::text <> 'audiotricks.audio_history_p' || to_char(h.created_at, 'YYYYMM');
SELECT count(*) AS in_default FROM audiotricks.audio_history_default;

SET ROLE regress_part_app;
BEGIN;
SELECT audiotricks.at_authenticate(:'ta') IS NOT NULL AS authenticated;
-- a walk, 7 a page, over 4 month partitions (3 boundaries) and the default
CREATE TEMP TABLE pwalk (n serial, id uuid, created_at timestamptz);
DO $$
DECLARE
  c text := NULL;
  r record;
  got int;
BEGIN
  LOOP
    got := 0;
    FOR r IN SELECT * FROM audiotricks.at_history_page(7, c) LOOP
      INSERT INTO pwalk (id, created_at) VALUES (r.id, r.created_at);
      c := r.cursor;
      got := got + 1;
    END LOOP;
    EXIT WHEN got < 7;
  END LOOP;
END $$;
SELECT count(*) AS returned, count(DISTINCT id) AS distinct_returned FROM pwalk;
-- in the order of the unpartitioned query
SELECT count(*) AS out_of_order FROM pwalk w
  JOIN (SELECT id, row_number() OVER (ORDER BY created_at DESC, id DESC) AS n
          FROM audiotricks.audio_history) ref ON ref.id = w.id
 WHERE ref.n <> w.n;
-- search: the same rows in the same order as the plain query
SELECT count(*) AS search_rows FROM audiotricks.at_history_search('zebra', 100);
SELECT array_agg(id ORDER BY ord) = (
         SELECT array_agg(id ORDER BY rank DESC, created_at DESC, id DESC) FROM (
           SELECT id, created_at, ts_rank(search_tsv, websearch_to_tsquery('english', 'zebra')) AS rank
             FROM audiotricks.audio_history ORDER BY 3 DESC, 2 DESC, 1 DESC LIMIT 100) s)
       AS search_order_matches
  FROM audiotricks.at_history_search('zebra', 100) WITH ORDINALITY s(id, a, b, c, d, e, f, g, h, i, created_at, rank, cursor, ord);
SELECT audiotricks.at_history_count() AS counted;
-- delete by id alone, in a future month's partition and in the default
SELECT audiotricks.at_history_delete((SELECT id FROM pwalk ORDER BY n LIMIT 1)) AS deleted_newest,
       audiotricks.at_history_delete((SELECT id FROM pwalk ORDER BY n DESC LIMIT 1)) AS deleted_oldest;
SELECT audiotricks.at_history_count() AS counted_after;
-- a partition named directly: refused
SELECT count(*) FROM audiotricks.audio_history_default;
COMMIT;
RESET ROLE;

-- the maintenance makes a missing partition and moves the default's rows in
SELECT 'audiotricks.audio_history_p' || to_char(:'m0'::timestamptz + interval '3 months', 'YYYYMM') AS last_part \gset
-- (in one transaction: the DROP holds the parent, so the background
-- maintenance the insert starts waits and then finds nothing to do)
BEGIN;
ALTER EXTENSION audiotricks DROP TABLE :last_part;
DROP TABLE :last_part;
INSERT INTO audiotricks.audio_history (user_id, title, created_at)
VALUES (:'alice_id', 'lands in default', :'m0'::timestamptz + interval '3 months 2 days');
SELECT tableoid::regclass = 'audiotricks.audio_history_default'::regclass AS in_default
  FROM audiotricks.audio_history WHERE title = 'lands in default';
SELECT action, partition = :'last_part' AS is_last, moved_rows
  FROM audiotricks.at_maintain_history_partitions();
COMMIT;
SELECT tableoid::regclass::text = :'last_part' AS moved
  FROM audiotricks.audio_history WHERE title = 'lands in default';
-- the row's insert is audited once, as a change of audio_history (not of a
-- partition); its move by the maintenance is no change and is not audited
SELECT operation, table_name, count(*) FROM audiotricks.audit_log
 WHERE event = 'data_changed' AND row_id = (SELECT id FROM audiotricks.audio_history
                                             WHERE title = 'lands in default')
 GROUP BY 1, 2 ORDER BY 1, 2;
SELECT relrowsecurity, relacl IS NULL OR NOT relacl::text ~ 'audiotricks_user' AS no_app_grant,
       obj_description(oid, 'pg_class') IS NOT NULL AS commented
  FROM pg_class WHERE oid = :'last_part'::regclass;

-- retention: partitions whose range ended before now() - retention go,
-- each with an audit event; the default partition's rows stay
SELECT count(*) AS nothing_to_do FROM audiotricks.at_maintain_history_partitions();
CREATE TABLE audiotricks.audio_history_p200001 PARTITION OF audiotricks.audio_history
    FOR VALUES FROM ('2000-01-01') TO ('2000-02-01');
INSERT INTO audiotricks.audio_history (user_id, title, created_at)
VALUES (:'alice_id', 'expired', '2000-01-15');
SET audiotricks.history_retention = '12 months';
SELECT action, partition, range_from, range_to FROM audiotricks.at_maintain_history_partitions();
SELECT count(*) AS expired_rows FROM audiotricks.audio_history WHERE title = 'expired';
SELECT event, detail FROM audiotricks.audit_log WHERE event = 'history_partition_dropped';
RESET audiotricks.history_retention;

-- settings: bad values are refused
SET audiotricks.history_partition_interval = '13 months';
SET audiotricks.history_partition_interval = '1 hour';
SET audiotricks.history_retention = 'forever';
SET audiotricks.history_partitions_ahead = 121;
SET audiotricks.history_partition_interval = '12 months';
SET audiotricks.history_retention = '0';
RESET ALL;
-- only the owner maintains
SET ROLE regress_part_app;
SELECT * FROM audiotricks.at_maintain_history_partitions();
RESET ROLE;

DELETE FROM audiotricks.users WHERE username = 'part_alice';
DROP ROLE regress_part_app;
