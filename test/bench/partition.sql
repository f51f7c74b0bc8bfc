-- test/bench/partition.sql — the data and helpers of test/bench/partition.sh,
-- run as postgres in database bench on both builds (before: one table; after:
-- audio_history partitioned by month, whose past MONTHS months it makes here).
\set ON_ERROR_STOP on
CREATE EXTENSION audiotricks CASCADE;
CREATE SCHEMA bench;
CREATE ROLE bench_app LOGIN IN ROLE audiotricks_user;
GRANT USAGE ON SCHEMA bench TO bench_app;

CREATE TABLE bench.params (name text PRIMARY KEY, value text NOT NULL);
-- month0: the start of this month (UTC); the data fill the MONTHS months before
INSERT INTO bench.params VALUES
    ('month0', (date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')::text),
    ('months', :'months');
CREATE FUNCTION bench.month0() RETURNS timestamptz LANGUAGE sql STABLE
    AS $$ SELECT value::timestamptz FROM bench.params WHERE name = 'month0' $$;
CREATE FUNCTION bench.months() RETURNS int LANGUAGE sql STABLE
    AS $$ SELECT value::int FROM bench.params WHERE name = 'months' $$;

-- the partitions of the past months, on a partitioned table only
CREATE FUNCTION bench.make_month(lo timestamptz) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = 'audiotricks.audio_history'::regclass) = 'p' THEN
        EXECUTE format('CREATE TABLE IF NOT EXISTS audiotricks.%I PARTITION OF audiotricks.audio_history'
                       ' FOR VALUES FROM (%L) TO (%L)',
                       'audio_history_p' || to_char(lo AT TIME ZONE 'UTC', 'YYYYMM'),
                       lo, lo + interval '1 month');
    END IF;
END
$$;
SELECT bench.make_month(bench.month0() - make_interval(months => m))
  FROM generate_series(1, bench.months()) m;

-- users: 'heavy' and light1..lightN, with tokens for heavy and light1..light20
INSERT INTO audiotricks.users (email, username, password_hash)
SELECT name || '@example.com', name, public.crypt('Bench-pass-1', public.gen_salt('bf', 4))
  FROM (SELECT 'heavy' AS name UNION ALL
        SELECT 'light' || g FROM generate_series(1, :light_users) g) u;
INSERT INTO audiotricks.user_settings (user_id) SELECT id FROM audiotricks.users;
CREATE TABLE bench.tokens (username text PRIMARY KEY, user_id uuid, token text);
SET ROLE audiotricks_anon;
CREATE TEMP TABLE t AS
SELECT u, l.user_id, l.token
  FROM unnest(ARRAY['heavy'] || ARRAY(SELECT 'light' || g FROM generate_series(1, least(20, :light_users)) g)) u,
       LATERAL audiotricks.at_login(u, 'Bench-pass-1') l;
RESET ROLE;
INSERT INTO bench.tokens SELECT u, user_id, token FROM t;
GRANT SELECT ON bench.tokens TO bench_app;

-- bench.load(user, from, to, mod, rem): the user's entries n = from..to with
-- n % mod = rem; entry n is n / (to + 1) of MONTHS months before month0
CREATE FUNCTION bench.load(p_user text, p_from int, p_to int, p_mod int, p_rem int) RETURNS bigint
LANGUAGE sql AS $$
WITH ins AS (
    INSERT INTO audiotricks.audio_history
        (user_id, title, transcript, summary, duration_seconds, created_at)
    SELECT u.id, 'Note ' || n,
           'a short note number ' || n || ' about the '
             || (ARRAY['budget', 'roadmap', 'hiring', 'design', 'launch', 'review', 'pricing', 'support'])[1 + n % 8]
             || ' meeting',
           'note ' || n, 60 + n % 3600,
           bench.month0() - (n::float8 / (p_to + 1))
             * (bench.month0() - (bench.month0() - make_interval(months => bench.months())))
      FROM audiotricks.users u, generate_series(p_from, p_to) n
     WHERE u.username = p_user AND n % p_mod = p_rem
    RETURNING 1)
SELECT count(*) FROM ins
$$;

-- bench.load_light(rows, mod, rem): rows entries for each light user whose
-- number % mod = rem, spread the same way, each user a few seconds apart
CREATE FUNCTION bench.load_light(p_rows int, p_mod int, p_rem int) RETURNS bigint
LANGUAGE sql AS $$
WITH ins AS (
    INSERT INTO audiotricks.audio_history
        (user_id, title, transcript, summary, duration_seconds, created_at)
    SELECT u.id, 'Note ' || n,
           'a short note number ' || n || ' about the '
             || (ARRAY['budget', 'roadmap', 'hiring', 'design', 'launch', 'review', 'pricing', 'support'])[1 + n % 8]
             || ' meeting',
           'note ' || n, 60 + n % 3600,
           bench.month0() - (n::float8 / (p_rows + 1))
             * (bench.month0() - (bench.month0() - make_interval(months => bench.months())))
             - make_interval(secs => substr(u.username, 6)::int % 3600)
      FROM audiotricks.users u, generate_series(1, p_rows) n
     WHERE u.username LIKE 'light%' AND substr(u.username, 6)::int % p_mod = p_rem
    RETURNING 1)
SELECT count(*) FROM ins
$$;

-- bench.cursors: the heavy user's row at each measured depth (0: before the
-- first) with its at_history_page cursor, found by walking the pages
CREATE TABLE bench.cursors (depth int PRIMARY KEY, user_id uuid, created_at timestamptz, id uuid, cursor text);
GRANT SELECT ON bench.cursors TO bench_app;
CREATE FUNCTION bench.prepare_cursors(p_depth int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    uid uuid;
    cur text;
    k int := 0;
BEGIN
    SELECT user_id INTO uid FROM bench.tokens WHERE username = 'heavy';
    PERFORM audiotricks.at_authenticate(token) FROM bench.tokens WHERE username = 'heavy';
    WHILE k < p_depth LOOP
        SELECT p.cursor INTO cur FROM audiotricks.at_history_page(100, cur) p OFFSET 99;
        k := k + 100;
    END LOOP;
    INSERT INTO bench.cursors VALUES (0, uid, 'infinity', NULL, NULL);
    INSERT INTO bench.cursors
    SELECT p_depth, uid, h.created_at, h.id, cur
      FROM audiotricks.audio_history h WHERE h.user_id = uid
     ORDER BY h.created_at DESC, h.id DESC OFFSET p_depth - 1 LIMIT 1;
END
$$;

-- bench.keyset_page(depth): the plain keyset page of the heavy user after
-- the row at depth, as a superuser (no policy): the query a hand-written
-- API would plan (plan_cache_mode chooses the generic or a custom plan)
CREATE FUNCTION bench.keyset_page(p_depth int) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    uid uuid;
    ca timestamptz;
    cid uuid;
    c bigint;
BEGIN
    SELECT k.user_id, k.created_at, coalesce(k.id, 'ffffffff-ffff-ffff-ffff-ffffffffffff')
      INTO uid, ca, cid FROM bench.cursors k WHERE k.depth = p_depth;
    SELECT count(*) INTO c FROM (
        SELECT h.* FROM audiotricks.audio_history h
         WHERE h.user_id = uid AND (h.created_at, h.id) < (ca, cid)
         ORDER BY h.created_at DESC, h.id DESC LIMIT 20) s;
    RETURN c;
END
$$;

-- bench.per_call(body, budget_ms, plan_cache_mode, user): µs per run of the
-- PL/pgSQL statements body, in a loop for budget_ms after one warm-up run,
-- with the user's identity (NULL: none) and plan_cache_mode set once
CREATE FUNCTION bench.per_call(body text, budget_ms int, pcm text DEFAULT NULL, who text DEFAULT NULL)
RETURNS TABLE(us_per_call float8, calls bigint) LANGUAGE plpgsql AS $f$
DECLARE
    t0 timestamptz;
    n bigint := 0;
BEGIN
    EXECUTE format('CREATE OR REPLACE FUNCTION pg_temp.bench_body() RETURNS void LANGUAGE plpgsql AS %L',
                   'BEGIN ' || body || ' END');
    IF pcm IS NOT NULL THEN
        PERFORM set_config('plan_cache_mode', pcm, true);
    END IF;
    IF who IS NOT NULL THEN
        PERFORM audiotricks.at_authenticate(token) FROM bench.tokens WHERE username = who;
    END IF;
    PERFORM pg_temp.bench_body();
    t0 := clock_timestamp();
    LOOP
        PERFORM pg_temp.bench_body();
        n := n + 1;
        EXIT WHEN clock_timestamp() - t0 > budget_ms * interval '1 ms';
    END LOOP;
    RETURN QUERY SELECT extract(epoch FROM clock_timestamp() - t0)::float8 * 1e6 / n, n;
END
$f$;
GRANT EXECUTE ON FUNCTION bench.per_call(text, int, text, text) TO bench_app;

-- bench.old_month(rows): one more month before the data (the next older
-- each call), holding rows entries of the heavy user
CREATE SEQUENCE bench.old_months;
CREATE FUNCTION bench.old_month(p_rows int) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    lo timestamptz := bench.month0() - make_interval(months => bench.months() + nextval('bench.old_months')::int);
BEGIN
    PERFORM bench.make_month(lo);
    INSERT INTO audiotricks.audio_history (user_id, title, transcript, created_at)
    SELECT (SELECT user_id FROM bench.tokens WHERE username = 'heavy'), 'Old ' || n, 'an old note ' || n,
           lo + (n::float8 / (p_rows + 1)) * interval '27 days'
      FROM generate_series(1, p_rows) n;
    RETURN to_char(lo AT TIME ZONE 'UTC', 'YYYY-MM');
END
$$;

-- bench.time_retention_drop(): ms that at_maintain_history_partitions()
-- takes to drop the oldest month, with a retention that expires it alone
CREATE FUNCTION bench.time_retention_drop() RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE
    lo timestamptz := bench.month0() - make_interval(months => bench.months() + currval('bench.old_months')::int);
    t0 timestamptz;
BEGIN
    -- now() - retention falls a day or two after the month's end: it goes,
    -- the next younger month stays
    PERFORM set_config('audiotricks.history_retention',
                       (floor(extract(epoch FROM now() - (lo + interval '1 month')) / 86400)::int - 1) || ' days', true);
    t0 := clock_timestamp();
    PERFORM audiotricks.at_maintain_history_partitions();
    RETURN round((extract(epoch FROM clock_timestamp() - t0) * 1000)::numeric, 2);
END
$$;
