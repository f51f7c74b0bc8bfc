-- test/bench/functions.sql — in-server timing helpers (test/bench/run).
-- Each runs a call repeatedly inside one backend until a time budget is
-- spent and returns microseconds per call, so that client round trips do not
-- hide the work.  Static SQL in PL/pgSQL loops keeps its plan the way an
-- application's prepared statement does: plan_cache_mode (set by the caller)
-- chooses generic or custom plans.
\set ON_ERROR_STOP 1

-- per_call(sql, batch, budget_ms): sql takes $1 = how many calls to make in
-- one statement (e.g. SELECT count(f(x)) FROM generate_series(1, $1))
CREATE FUNCTION bench.per_call(q text, batch int, budget_ms int DEFAULT 400)
RETURNS TABLE(us_per_call float8, calls bigint)
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
    n bigint := 0;
BEGIN
    LOOP
        EXECUTE q USING batch;
        n := n + batch;
        EXIT WHEN clock_timestamp() - t0 > budget_ms * interval '1 ms' OR n >= 50000000;
    END LOOP;
    RETURN QUERY SELECT (extract(epoch FROM clock_timestamp() - t0) * 1e6 / n)::float8, n;
END
$$;

-- page_loop(impl, ca, cid, depth, uid, budget_ms, acur): one 20-row page per
-- iteration, as the caller's role (the identity is set by the caller);
-- audiotricks continues after its cursor acur (NULL: the first page)
CREATE FUNCTION bench.page_loop(impl text, ca timestamptz, cid uuid, depth int,
                                uid uuid, budget_ms int DEFAULT 400, acur text DEFAULT NULL)
RETURNS TABLE(us_per_call float8, calls bigint)
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
    n bigint := 0;
    c bigint;
BEGIN
    LOOP
        IF impl = 'floor' THEN
            SELECT count(*) INTO c FROM (
                SELECT * FROM audiotricks.audio_history h
                 WHERE h.user_id = uid AND (h.created_at, h.id) < (ca, cid)
                 ORDER BY h.created_at DESC, h.id DESC LIMIT 20) s;
        ELSIF impl = 'audiotricks' THEN
            SELECT count(*) INTO c FROM audiotricks.at_history_page(20, acur);
        ELSIF impl = 'keyset' THEN
            SELECT count(*) INTO c FROM plainsql.history_page(20, ca, cid);
        ELSIF impl = 'offset' THEN
            SELECT count(*) INTO c FROM plainsql.history_page_offset(20, depth);
        ELSE
            RAISE EXCEPTION 'unknown impl %', impl;
        END IF;
        IF c <> 20 THEN
            RAISE EXCEPTION '% returned % rows, not 20', impl, c;
        END IF;
        n := n + 1;
        EXIT WHEN clock_timestamp() - t0 > budget_ms * interval '1 ms' OR n >= 1000000;
    END LOOP;
    RETURN QUERY SELECT (extract(epoch FROM clock_timestamp() - t0) * 1e6 / n)::float8, n;
END
$$;

-- search_loop(impl, query, uid, budget_ms): one 20-row search per iteration;
-- also returns how many rows the last call returned.  For the floor, query
-- is the tsquery at_history_search builds (bench.params 'search_tsquery').
CREATE FUNCTION bench.search_loop(impl text, query text, uid uuid, budget_ms int DEFAULT 400)
RETURNS TABLE(us_per_call float8, calls bigint, last_rows bigint)
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
    n bigint := 0;
    c bigint;
BEGIN
    LOOP
        IF impl = 'floor' THEN
            SELECT count(*) INTO c FROM (
                SELECT h.* FROM audiotricks.audio_history h
                 WHERE h.user_id = uid AND h.search_tsv @@ query::tsquery
                 ORDER BY ts_rank(h.search_tsv, query::tsquery) DESC, h.created_at DESC, h.id DESC LIMIT 20) s;
        ELSIF impl = 'audiotricks' THEN
            SELECT count(*) INTO c FROM audiotricks.at_history_search(query, 20);
        ELSIF impl = 'definer' THEN
            SELECT count(*) INTO c FROM plainsql.history_search_definer(query, 20);
        ELSIF impl = 'recipe' THEN
            SELECT count(*) INTO c FROM plainsql.history_search(query, 20);
        ELSE
            RAISE EXCEPTION 'unknown impl %', impl;
        END IF;
        n := n + 1;
        EXIT WHEN clock_timestamp() - t0 > budget_ms * interval '1 ms' OR n >= 1000000;
    END LOOP;
    RETURN QUERY SELECT (extract(epoch FROM clock_timestamp() - t0) * 1e6 / n)::float8, n, c;
END
$$;

-- login_pair(login, password, hash, n): n calls of bcrypt alone
-- (crypt(password, hash) at the hash's cost) and n of at_login, alternating
-- in one backend (ABBA order, so drift hits both alike); microseconds per call
CREATE FUNCTION bench.login_pair(login text, pw text, hash text, n int,
                                 OUT floor_us float8, OUT at_us float8, OUT pairs int)
LANGUAGE plpgsql AS $$
DECLARE
    t timestamptz;
    a float8 := 0;
    b float8 := 0;
    ok boolean;
BEGIN
    FOR i IN 1 .. n LOOP
        FOR j IN 0 .. 1 LOOP
            IF (i + j) % 2 = 0 THEN
                t := clock_timestamp();
                ok := public.crypt(pw, hash) = hash;
                a := a + extract(epoch FROM clock_timestamp() - t);
                IF NOT ok THEN
                    RAISE EXCEPTION 'the bench password does not match its hash';
                END IF;
            ELSE
                t := clock_timestamp();
                PERFORM audiotricks.at_login(login, pw);
                b := b + extract(epoch FROM clock_timestamp() - t);
            END IF;
        END LOOP;
    END LOOP;
    floor_us := a * 1e6 / n;
    at_us := b * 1e6 / n;
    pairs := n;
END
$$;

-- memory of this backend (all memory contexts), bytes
CREATE FUNCTION bench.backend_bytes() RETURNS bigint
LANGUAGE sql AS $$ SELECT sum(total_bytes)::bigint FROM pg_backend_memory_contexts $$;

-- the cursor (created_at, id) after `depth` entries of a user, newest first
CREATE FUNCTION bench.cursor_at(p_user uuid, depth int, OUT ca timestamptz, OUT cid uuid)
LANGUAGE sql AS $$
    SELECT created_at, id FROM audiotricks.audio_history
     WHERE user_id = p_user ORDER BY created_at DESC, id DESC OFFSET depth - 1 LIMIT 1
$$;

-- the at_history_page cursor of entry cid of the token's user, found by
-- walking the user's pages 100 at a time (the cursor is opaque)
CREATE FUNCTION bench.at_cursor_of(token text, cid uuid) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    c text;
    r record;
    got int;
BEGIN
    PERFORM audiotricks.at_authenticate(token);
    LOOP
        got := 0;
        FOR r IN SELECT id, cursor FROM audiotricks.at_history_page(100, c) LOOP
            got := got + 1;
            c := r.cursor;
            IF r.id = cid THEN
                RETURN c;
            END IF;
        END LOOP;
        IF got = 0 THEN
            RAISE EXCEPTION 'entry % not found', cid;
        END IF;
    END LOOP;
END
$$;

GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA bench TO PUBLIC;
