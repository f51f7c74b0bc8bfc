-- src/router/audiotricks_router--0.1.0.sql
--
-- The app API over several audiotricks shards, routed by PL/Proxy (README,
-- "Past one machine: shards behind a PL/Proxy router").  Install in a router
-- database that does NOT hold audiotricks:
--     CREATE EXTENSION audiotricks_router CASCADE;   -- and plproxy
--     SELECT audiotricks_router.at_add_shard('host=... port=... dbname=... user=...');
-- Every shard database holds audiotricks and audiotricks_shard
-- (src/router/audiotricks_shard--0.1.0.sql).
--
-- Schema audiotricks: the app API, the same names as on one server; a call
-- that acts for a signed-in user takes the token as its first argument (the
-- router keeps no identity: PL/Proxy runs each call as its own remote
-- transaction).  Schema audiotricks_router: directory, shards, routing and
-- administration.
--
-- Every API function is SECURITY DEFINER (the directory is not readable by
-- clients; the router's connections to the shards are the owner's) with
-- search_path pinned and log_min_error_statement = panic: an error (a wrong
-- password, a bad token) must not write the caller's statement, with its
-- password or token, to the router's log.

\echo Use "CREATE EXTENSION audiotricks_router CASCADE" to load this file. \quit

CREATE SCHEMA audiotricks;
COMMENT ON SCHEMA audiotricks IS 'AudioTricks app API, served by the audiotricks_router extension over shards';

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'audiotricks_anon') THEN
        CREATE ROLE audiotricks_anon NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'audiotricks_user') THEN
        CREATE ROLE audiotricks_user NOLOGIN;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA audiotricks TO audiotricks_anon, audiotricks_user;

------------------------------------------------------------------------------
-- 1. Shards, directory
------------------------------------------------------------------------------
CREATE TABLE audiotricks_router.shards (
    shard       integer     NOT NULL PRIMARY KEY CHECK (shard >= 0),
    conninfo    text        NOT NULL,
    weight      integer     NOT NULL DEFAULT 1 CHECK (weight >= 0),
    added_at    timestamptz NOT NULL DEFAULT pg_catalog.now());
COMMENT ON TABLE audiotricks_router.shards IS
    'The shards: shard n is partition pn of the PL/Proxy server audiotricks_shards; new users go to shards in proportion to weight (0: none).';

CREATE TABLE audiotricks_router.directory (
    email       text        NOT NULL PRIMARY KEY,
    username    text        NOT NULL UNIQUE,
    user_id     uuid        UNIQUE,
    shard       integer     NOT NULL REFERENCES audiotricks_router.shards (shard),
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now());
CREATE INDEX directory_shard_idx ON audiotricks_router.directory (shard);
COMMENT ON TABLE audiotricks_router.directory IS
    'Every user: lower-case email and username (unique across all shards), user id (NULL only while the registration runs) and shard.';

SELECT pg_catalog.pg_extension_config_dump('audiotricks_router.shards', '');
SELECT pg_catalog.pg_extension_config_dump('audiotricks_router.directory', '');

CREATE TYPE audiotricks.history_entry AS (
    id uuid, user_id uuid, title varchar(500), audio_url text,
    file_size_bytes bigint, duration_seconds integer, transcript text,
    summary text, key_moments jsonb, processing_options jsonb,
    created_at timestamptz, rank real, cursor text);

------------------------------------------------------------------------------
-- 2. Administration (superusers only)
------------------------------------------------------------------------------
-- (Re)writes the PL/Proxy server audiotricks_shards from the shards table:
-- partition pn = shard n, modular_mapping so that any number of shards works
-- (a routing function returns the shard number itself).  The server is not
-- a member of the extension, so pg_dump keeps it; after a restore of only
-- the tables, call this again.
CREATE FUNCTION audiotricks_router.at_sync_cluster()
    RETURNS integer LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    n integer := 0;
    have text[];
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_foreign_server WHERE srvname = 'audiotricks_shards') THEN
        IF NOT EXISTS (SELECT FROM audiotricks_router.shards) THEN
            RETURN 0;           -- PL/Proxy takes no server without a partition
        END IF;
        EXECUTE 'CREATE SERVER audiotricks_shards FOREIGN DATA WRAPPER plproxy OPTIONS ('
             || 'modular_mapping ''1'', connection_lifetime ''1800'', query_timeout ''600'''
             || (SELECT pg_catalog.string_agg(pg_catalog.format(', %I %L', 'p' || h.shard, h.conninfo), '' ORDER BY h.shard)
                   FROM audiotricks_router.shards h)
             || ')';
        CREATE USER MAPPING FOR PUBLIC SERVER audiotricks_shards;
    END IF;
    SELECT s.srvoptions INTO have FROM pg_catalog.pg_foreign_server s WHERE s.srvname = 'audiotricks_shards';
    FOR r IN SELECT h.shard, h.conninfo FROM audiotricks_router.shards h ORDER BY h.shard LOOP
        IF EXISTS (SELECT FROM pg_catalog.unnest(have) o WHERE o LIKE 'p' || r.shard || '=%') THEN
            EXECUTE pg_catalog.format('ALTER SERVER audiotricks_shards OPTIONS (SET %I %L)', 'p' || r.shard, r.conninfo);
        ELSE
            EXECUTE pg_catalog.format('ALTER SERVER audiotricks_shards OPTIONS (ADD %I %L)', 'p' || r.shard, r.conninfo);
        END IF;
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION audiotricks_router.at_sync_cluster() IS
    'Creates or updates the PL/Proxy server audiotricks_shards from audiotricks_router.shards; returns the number of shards.';

CREATE FUNCTION audiotricks_router.at_add_shard(conninfo text, weight integer DEFAULT 1)
    RETURNS integer LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s integer;
BEGIN
    LOCK TABLE audiotricks_router.shards IN SHARE ROW EXCLUSIVE MODE;
    SELECT COALESCE(pg_catalog.max(h.shard) + 1, 0) INTO s FROM audiotricks_router.shards h;
    INSERT INTO audiotricks_router.shards (shard, conninfo, weight) VALUES (s, $1, $2);
    PERFORM audiotricks_router.at_sync_cluster();
    RETURN s;
END
$$;
COMMENT ON FUNCTION audiotricks_router.at_add_shard(text, integer) IS
    'Adds a shard (libpq connection string, best a pgbouncer in front of it; put passwords in the user mapping, not here) that takes new users at once in proportion to weight; returns its number.';

CREATE FUNCTION audiotricks_router.at_set_weight(shard integer, weight integer)
    RETURNS void LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE audiotricks_router.shards h SET weight = $2 WHERE h.shard = $1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no shard %', $1 USING ERRCODE = '22023';
    END IF;
END
$$;
COMMENT ON FUNCTION audiotricks_router.at_set_weight(integer, integer) IS
    'Sets the share of new users a shard takes (0: none); existing users stay where they are.';

------------------------------------------------------------------------------
-- 3. Placement and routing
------------------------------------------------------------------------------
-- The shard of a new user: the hash of the lower-case email picks a point
-- in the sum of the weights.
CREATE FUNCTION audiotricks_router.at_place(email text)
    RETURNS integer LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s integer;
BEGIN
    SELECT w.shard INTO s
      FROM (SELECT h.shard,
                   pg_catalog.sum(h.weight) OVER (ORDER BY h.shard) AS upto,
                   pg_catalog.sum(h.weight) OVER () AS total
              FROM audiotricks_router.shards h WHERE h.weight > 0) w
     WHERE w.upto > (pg_catalog.hashtextextended($1, 0) & 9223372036854775807) % w.total
     ORDER BY w.shard LIMIT 1;
    IF s IS NULL THEN
        RAISE EXCEPTION 'no shard takes new users'
            USING ERRCODE = '55000', HINT = 'Add one with audiotricks_router.at_add_shard or give one a weight above 0.';
    END IF;
    RETURN s;
END
$$;

-- The user id of a token, read from its payload WITHOUT verifying it: only
-- to route; the shard verifies the token fully.  NULL when malformed.
CREATE FUNCTION audiotricks_router.at_token_user(token text)
    RETURNS uuid LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p text;
BEGIN
    IF $1 IS NULL OR pg_catalog.octet_length($1) > 4096
       OR $1 !~ '^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$' THEN
        RETURN NULL;
    END IF;
    p := pg_catalog.translate(pg_catalog.split_part($1, '.', 2), '-_', '+/');
    IF pg_catalog.length(p) % 4 = 1 THEN
        RETURN NULL;
    END IF;
    p := p || pg_catalog.repeat('=', (4 - pg_catalog.length(p) % 4) % 4);
    BEGIN
        RETURN (pg_catalog.convert_from(pg_catalog.decode(p, 'base64'), 'UTF8')::jsonb
                OPERATOR(pg_catalog.->>) 'sub')::uuid;
    EXCEPTION WHEN data_exception THEN
        RETURN NULL;
    END;
END
$$;

-- RUN ON for calls that act for a signed-in user: the shard of the token's
-- user; 28000 when the token is malformed or its user is not in the directory.
CREATE FUNCTION audiotricks_router.at_token_shard(token text)
    RETURNS integer LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s integer;
BEGIN
    SELECT d.shard INTO s FROM audiotricks_router.directory d
     WHERE d.user_id = audiotricks_router.at_token_user($1);
    IF s IS NULL THEN
        RAISE EXCEPTION 'invalid or expired token' USING ERRCODE = '28000';
    END IF;
    RETURN s;
END
$$;

-- RUN ON at_logout: like at_token_shard, but a token the directory does not
-- know goes to the first shard, which answers false like one server would.
CREATE FUNCTION audiotricks_router.at_token_shard_or_first(token text)
    RETURNS integer LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
SELECT COALESCE(
    (SELECT d.shard FROM audiotricks_router.directory d
      WHERE d.user_id = audiotricks_router.at_token_user($1)),
    (SELECT pg_catalog.min(h.shard) FROM audiotricks_router.shards h))
$$;

-- RUN ON a shard number given as an argument
CREATE FUNCTION audiotricks_router.at_part(shard integer)
    RETURNS integer LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$ SELECT $1 $$;

-- Where a login goes: its user's shard; a login the directory does not know
-- goes to a shard chosen by its hash, prefixed with a space so that it
-- matches no user there (no email or username holds one), and that shard
-- does its bcrypt work and answers 28P01 like for a wrong password.
CREATE FUNCTION audiotricks_router.at_login_route(given text, OUT shard integer, OUT login text)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF pg_catalog.strpos($1, '@') > 0 THEN
        SELECT d.shard INTO shard FROM audiotricks_router.directory d
         WHERE d.email = pg_catalog.lower($1) AND d.user_id IS NOT NULL;
    ELSE
        SELECT d.shard INTO shard FROM audiotricks_router.directory d
         WHERE d.username = pg_catalog.lower($1) AND d.user_id IS NOT NULL;
    END IF;
    IF shard IS NOT NULL THEN
        login := $1;
        RETURN;
    END IF;
    login := ' ' || $1;
    SELECT h.shard INTO shard FROM audiotricks_router.shards h ORDER BY h.shard
    OFFSET (pg_catalog.hashtextextended(COALESCE(pg_catalog.lower($1), ''), 0) & 9223372036854775807)
           % GREATEST((SELECT pg_catalog.count(*) FROM audiotricks_router.shards), 1)
     LIMIT 1;
    IF shard IS NULL THEN
        RAISE EXCEPTION 'the router has no shards' USING ERRCODE = '55000',
            HINT = 'Add one with audiotricks_router.at_add_shard.';
    END IF;
END
$$;

------------------------------------------------------------------------------
-- 4. Calls to a given shard (internal; run by the API functions of 5)
------------------------------------------------------------------------------
CREATE FUNCTION audiotricks_router.p_register(shard integer, email text, username text, password text)
    RETURNS uuid LANGUAGE plproxy
AS $$
    CLUSTER 'audiotricks_shards';
    RUN ON audiotricks_router.at_part(shard);
    SELECT audiotricks.at_register(email, username, password);
$$;

CREATE FUNCTION audiotricks_router.p_login(shard integer, login text, password text)
    RETURNS TABLE(token text, user_id uuid, session_id uuid, expires_at timestamptz)
    LANGUAGE plproxy
AS $$
    CLUSTER 'audiotricks_shards';
    RUN ON audiotricks_router.at_part(shard);
    SELECT token, user_id, session_id, expires_at FROM audiotricks.at_login(login, password);
$$;

CREATE FUNCTION audiotricks_router.p_delete_account(token text, password text)
    RETURNS void LANGUAGE plproxy
AS $$
    CLUSTER 'audiotricks_shards';
    RUN ON audiotricks_router.at_token_shard(token);
    TARGET audiotricks_shard.at_delete_account;
$$;

CREATE FUNCTION audiotricks_router.p_unrouted_candidates(shard integer, older_than interval)
    RETURNS SETOF uuid LANGUAGE plproxy
AS $$
    CLUSTER 'audiotricks_shards';
    RUN ON audiotricks_router.at_part(shard);
    SELECT * FROM audiotricks_shard.at_unrouted_candidates(older_than);
$$;

CREATE FUNCTION audiotricks_router.p_drop_unrouted(shard integer, id uuid, older_than interval)
    RETURNS boolean LANGUAGE plproxy
AS $$
    CLUSTER 'audiotricks_shards';
    RUN ON audiotricks_router.at_part(shard);
    SELECT audiotricks_shard.at_drop_unrouted(id, older_than);
$$;

------------------------------------------------------------------------------
-- 5. The app API
------------------------------------------------------------------------------
-- Registration: the directory row first (its unique keys make duplicates
-- across all shards fail, and a concurrent registration of the same email
-- or username waits for the first one's outcome), then the user on the
-- shard, then the user id into the directory row, all in the caller's
-- router transaction.  If the shard refuses (invalid input), the router
-- transaction rolls back: no directory row.  If the router transaction fails
-- after the shard committed, the shard keeps a user no login reaches:
-- audiotricks_router.at_repair() removes it.
CREATE FUNCTION audiotricks.at_register(email text, username text, password text)
    RETURNS uuid LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET log_min_error_statement = panic
    SET client_min_messages = warning
AS $$
DECLARE
    e text := pg_catalog.lower($1);
    u text := pg_catalog.lower($2);
    s integer;
    id uuid;
    n bigint;
BEGIN
    IF e IS NULL OR u IS NULL THEN
        -- the shard validates (22023) with no side effect
        RETURN audiotricks_router.p_register(audiotricks_router.at_place(''), $1, $2, $3);
    END IF;
    s := audiotricks_router.at_place(e);
    INSERT INTO audiotricks_router.directory (email, username, shard)
    VALUES (e, u, s) ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n = 0 THEN
        IF EXISTS (SELECT FROM audiotricks_router.directory d WHERE d.email = e) THEN
            RAISE EXCEPTION 'email already registered' USING ERRCODE = '23505';
        END IF;
        RAISE EXCEPTION 'username already taken' USING ERRCODE = '23505';
    END IF;
    id := audiotricks_router.p_register(s, $1, $2, $3);
    UPDATE audiotricks_router.directory d SET user_id = id WHERE d.email = e;
    RETURN id;
END
$$;

-- The shard's 28P01 is raised again with its bare message: PL/Proxy's
-- prefix names the shard, and a login whose shard differs from the one its
-- hash picks would show that it exists.
CREATE FUNCTION audiotricks.at_login(login text, password text)
    RETURNS TABLE(token text, user_id uuid, session_id uuid, expires_at timestamptz)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER ROWS 1
    SET search_path = pg_catalog, pg_temp
    SET log_min_error_statement = panic
    SET client_min_messages = warning
AS $$
DECLARE
    r record;
BEGIN
    r := audiotricks_router.at_login_route($1);
    RETURN QUERY SELECT l.token, l.user_id, l.session_id, l.expires_at
                   FROM audiotricks_router.p_login(r.shard, r.login, $2) l;
EXCEPTION WHEN invalid_password THEN
    RAISE EXCEPTION 'invalid login or password' USING ERRCODE = '28P01';
END
$$;

CREATE FUNCTION audiotricks.at_delete_account(token text, password text)
    RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET log_min_error_statement = panic
    SET client_min_messages = warning
AS $$
BEGIN
    PERFORM audiotricks_router.p_delete_account($1, $2);
    DELETE FROM audiotricks_router.directory d WHERE d.user_id = audiotricks_router.at_token_user($1);
END
$$;

-- The rest: one PL/Proxy call each, on the shard of the token's user
-- (audiotricks_router.at_token_shard), where audiotricks_shard verifies the
-- token and runs the call in that one remote transaction.
CREATE FUNCTION audiotricks.at_refresh(token text)
    RETURNS TABLE(token text, user_id uuid, session_id uuid, expires_at timestamptz)
    LANGUAGE plproxy SECURITY DEFINER ROWS 1
    SET search_path = pg_catalog, pg_temp SET log_min_error_statement = panic
    SET client_min_messages = warning
AS $$
    CLUSTER 'audiotricks_shards';
    RUN ON audiotricks_router.at_token_shard(token);
$$;

CREATE FUNCTION audiotricks.at_logout(token text)
    RETURNS boolean LANGUAGE plproxy SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp SET log_min_error_statement = panic
    SET client_min_messages = warning
AS $$
    CLUSTER 'audiotricks_shards';
    RUN ON audiotricks_router.at_token_shard_or_first(token);
$$;

CREATE FUNCTION audiotricks.at_logout_all(token text)
    RETURNS integer LANGUAGE plproxy SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp SET log_min_error_statement = panic
    SET client_min_messages = warning
AS $$
    CLUSTER 'audiotricks_shards';
    RUN ON audiotricks_router.at_token_shard(token);
    TARGET audiotricks_shard.at_logout_all;
$$;

CREATE FUNCTION audiotricks.at_change_password(token text, current_password text, new_password text)
    RETURNS void LANGUAGE plproxy SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp SET log_min_error_statement = panic
    SET client_min_messages = warning
AS $$
    CLUSTER 'audiotricks_shards';
    RUN ON audiotricks_router.at_token_shard(token);
    TARGET audiotricks_shard.at_change_password;
$$;

CREATE FUNCTION audiotricks.at_list_sessions(token text)
    RETURNS TABLE(id uuid, created_at timestamptz, expires_at timestamptz, is_current boolean)
    LANGUAGE plproxy SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp SET log_min_error_statement = panic
    SET client_min_messages = warning
AS $$
    CLUSTER 'audiotricks_shards';
    RUN ON audiotricks_router.at_token_shard(token);
    TARGET audiotricks_shard.at_list_sessions;
$$;

CREATE FUNCTION audiotricks.at_get_settings(token text)
    RETURNS TABLE(preferred_language text, summary_quality text,
                  settings_json jsonb, updated_at timestamptz)
    LANGUAGE plproxy SECURITY DEFINER ROWS 1
    SET search_path = pg_catalog, pg_temp SET log_min_error_statement = panic
    SET client_min_messages = warning
AS $$
    CLUSTER 'audiotricks_shards';
    RUN ON audiotricks_router.at_token_shard(token);
    TARGET audiotricks_shard.at_get_settings;
$$;

CREATE FUNCTION audiotricks.at_update_settings(token text,
        preferred_language text DEFAULT NULL, summary_quality text DEFAULT NULL,
        settings_json jsonb DEFAULT NULL)
    RETURNS TABLE(preferred_language text, summary_quality text,
                  settings_json jsonb, updated_at timestamptz)
    LANGUAGE plproxy SECURITY DEFINER ROWS 1
    SET search_path = pg_catalog, pg_temp SET log_min_error_statement = panic
    SET client_min_messages = warning
AS $$
    CLUSTER 'audiotricks_shards';
    RUN ON audiotricks_router.at_token_shard(token);
    TARGET audiotricks_shard.at_update_settings;
$$;

CREATE FUNCTION audiotricks.at_set_api_key(token text, provider text, api_key text)
    RETURNS void LANGUAGE plproxy SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp SET log_min_error_statement = panic
    SET client_min_messages = warning
AS $$
    CLUSTER 'audiotricks_shards';
    RUN ON audiotricks_router.at_token_shard(token);
    TARGET audiotricks_shard.at_set_api_key;
$$;

CREATE FUNCTION audiotricks.at_get_api_key(token text, provider text)
    RETURNS text LANGUAGE plproxy SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp SET log_min_error_statement = panic
    SET client_min_messages = warning
AS $$
    CLUSTER 'audiotricks_shards';
    RUN ON audiotricks_router.at_token_shard(token);
    TARGET audiotricks_shard.at_get_api_key;
$$;

CREATE FUNCTION audiotricks.at_api_key_status(token text)
    RETURNS TABLE(provider text, is_set boolean, last4 text, set_at timestamptz)
    LANGUAGE plproxy SECURITY DEFINER ROWS 2
    SET search_path = pg_catalog, pg_temp SET log_min_error_statement = panic
    SET client_min_messages = warning
AS $$
    CLUSTER 'audiotricks_shards';
    RUN ON audiotricks_router.at_token_shard(token);
    TARGET audiotricks_shard.at_api_key_status;
$$;

CREATE FUNCTION audiotricks.at_history_add(token text,
        title text DEFAULT NULL, audio_url text DEFAULT NULL,
        file_size_bytes bigint DEFAULT NULL, duration_seconds integer DEFAULT NULL,
        transcript text DEFAULT NULL, summary text DEFAULT NULL,
        key_moments jsonb DEFAULT NULL, processing_options jsonb DEFAULT NULL)
    RETURNS uuid LANGUAGE plproxy SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp SET log_min_error_statement = panic
    SET client_min_messages = warning
AS $$
    CLUSTER 'audiotricks_shards';
    RUN ON audiotricks_router.at_token_shard(token);
    TARGET audiotricks_shard.at_history_add;
$$;

CREATE FUNCTION audiotricks.at_history_delete(token text, id uuid)
    RETURNS boolean LANGUAGE plproxy SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp SET log_min_error_statement = panic
    SET client_min_messages = warning
AS $$
    CLUSTER 'audiotricks_shards';
    RUN ON audiotricks_router.at_token_shard(token);
    TARGET audiotricks_shard.at_history_delete;
$$;

CREATE FUNCTION audiotricks.at_history_count(token text)
    RETURNS bigint LANGUAGE plproxy SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp SET log_min_error_statement = panic
    SET client_min_messages = warning
AS $$
    CLUSTER 'audiotricks_shards';
    RUN ON audiotricks_router.at_token_shard(token);
    TARGET audiotricks_shard.at_history_count;
$$;

-- ===================== BEGIN history page/search (cursor API) ===============
-- The cursor API: at_history_page(page_size, cursor), at_history_search(query,
-- page_size, cursor) returning audiotricks.history_entry, with the token
-- first.  The shard side adapts to the installed audiotricks (see the API
-- switch in audiotricks_shard--0.1.0.sql).
CREATE FUNCTION audiotricks.at_history_page(token text, page_size integer DEFAULT 20,
                                            cursor text DEFAULT NULL)
    RETURNS SETOF audiotricks.history_entry LANGUAGE plproxy SECURITY DEFINER ROWS 20
    SET search_path = pg_catalog, pg_temp SET log_min_error_statement = panic
    SET client_min_messages = warning
AS $$
    CLUSTER 'audiotricks_shards';
    RUN ON audiotricks_router.at_token_shard(token);
    TARGET audiotricks_shard.at_history_page;
$$;

CREATE FUNCTION audiotricks.at_history_search(token text, query text, page_size integer DEFAULT 20,
                                              cursor text DEFAULT NULL)
    RETURNS SETOF audiotricks.history_entry LANGUAGE plproxy SECURITY DEFINER ROWS 20
    SET search_path = pg_catalog, pg_temp SET log_min_error_statement = panic
    SET client_min_messages = warning
AS $$
    CLUSTER 'audiotricks_shards';
    RUN ON audiotricks_router.at_token_shard(token);
    TARGET audiotricks_shard.at_history_search;
$$;
-- ===================== END history page/search (cursor API) =================

------------------------------------------------------------------------------
-- 6. Repair
------------------------------------------------------------------------------
CREATE FUNCTION audiotricks_router.at_repair(older_than interval DEFAULT '10 minutes')
    RETURNS integer LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s integer;
    id uuid;
    n integer := 0;
BEGIN
    FOR s IN SELECT h.shard FROM audiotricks_router.shards h ORDER BY h.shard LOOP
        FOR id IN SELECT c FROM audiotricks_router.p_unrouted_candidates(s, $1) c LOOP
            IF NOT EXISTS (SELECT FROM audiotricks_router.directory d WHERE d.user_id = id)
               AND audiotricks_router.p_drop_unrouted(s, id, $1) THEN
                n := n + 1;
            END IF;
        END LOOP;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION audiotricks_router.at_repair(interval) IS
    'Deletes, on every shard, users that the directory lacks and that never logged in and are older than older_than (at least 1 minute): what a router failure between a shard''s registration and the directory''s commit leaves; returns how many.';

------------------------------------------------------------------------------
-- 7. Privileges
------------------------------------------------------------------------------
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA audiotricks FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA audiotricks_router FROM PUBLIC;

GRANT EXECUTE ON FUNCTION
    audiotricks.at_register(text, text, text),
    audiotricks.at_login(text, text),
    audiotricks.at_refresh(text),
    audiotricks.at_logout(text)
    TO audiotricks_anon, audiotricks_user;

GRANT EXECUTE ON FUNCTION
    audiotricks.at_logout_all(text),
    audiotricks.at_change_password(text, text, text),
    audiotricks.at_list_sessions(text),
    audiotricks.at_delete_account(text, text),
    audiotricks.at_get_settings(text),
    audiotricks.at_update_settings(text, text, text, jsonb),
    audiotricks.at_set_api_key(text, text, text),
    audiotricks.at_get_api_key(text, text),
    audiotricks.at_api_key_status(text),
    audiotricks.at_history_add(text, text, text, bigint, integer, text, text, jsonb, jsonb),
    audiotricks.at_history_page(text, integer, text),
    audiotricks.at_history_search(text, text, integer, text),
    audiotricks.at_history_delete(text, uuid),
    audiotricks.at_history_count(text)
    TO audiotricks_user;
