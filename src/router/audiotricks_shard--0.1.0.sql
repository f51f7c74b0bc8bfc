-- src/router/audiotricks_shard--0.1.0.sql
--
-- The shard side of the PL/Proxy router (src/router/audiotricks_router--0.1.0.sql,
-- README "Past one machine").  Install in every shard database, after
-- audiotricks:  CREATE EXTENSION audiotricks_shard;
--
-- PL/Proxy runs every call as one autocommit statement on the shard and its
-- connection is shared by all of the router's users, so nothing may rest on
-- session state: each entry point here takes the caller's token, verifies it
-- with audiotricks.at_authenticate (signature, expiry, a live session row ON
-- THIS SHARD, active user) and calls the API function in the same
-- transaction.  The identity lasts exactly that remote transaction.  A token
-- issued by another shard has no session row here and is refused (28000).
--
-- The entry points run as the caller (SECURITY INVOKER), so the identity is
-- established and used by the same role and the API functions' own checks
-- apply unchanged.  The router connects as a login role that is a member of
-- audiotricks_router (created here): audiotricks_user's rights, which the
-- invoker functions need (and which any application login has), plus these
-- entry points and the two repair helpers.
--
-- at_register, at_login, at_refresh, at_logout(token) and at_authenticate
-- need no wrapper: the router calls audiotricks.* directly.

\echo Use "CREATE EXTENSION audiotricks_shard" to load this file. \quit

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'audiotricks_router') THEN
        CREATE ROLE audiotricks_router NOLOGIN;
    END IF;
END
$$;
GRANT audiotricks_user TO audiotricks_router;
GRANT USAGE ON SCHEMA audiotricks_shard TO audiotricks_router;

-- The history row of at_history_page / at_history_search (the columns of
-- audiotricks.history_entry; PL/Proxy matches them by name).
CREATE TYPE audiotricks_shard.history_entry AS (
    id uuid, user_id uuid, title varchar(500), audio_url text,
    file_size_bytes bigint, duration_seconds integer, transcript text,
    summary text, key_moments jsonb, processing_options jsonb,
    created_at timestamptz, rank real, cursor text);

------------------------------------------------------------------------------
-- Accounts and sessions
------------------------------------------------------------------------------
CREATE FUNCTION audiotricks_shard.at_logout_all(token text)
    RETURNS integer LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM audiotricks.at_authenticate($1);
    RETURN audiotricks.at_logout_all();
END
$$;

CREATE FUNCTION audiotricks_shard.at_change_password(token text, current_password text, new_password text)
    RETURNS void LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM audiotricks.at_authenticate($1);
    PERFORM audiotricks.at_change_password($2, $3);
END
$$;

CREATE FUNCTION audiotricks_shard.at_list_sessions(token text)
    RETURNS TABLE(id uuid, created_at timestamptz, expires_at timestamptz, is_current boolean)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM audiotricks.at_authenticate($1);
    RETURN QUERY SELECT s.id, s.created_at, s.expires_at, s.is_current
                   FROM audiotricks.at_list_sessions() s;
END
$$;

CREATE FUNCTION audiotricks_shard.at_delete_account(token text, password text)
    RETURNS void LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM audiotricks.at_authenticate($1);
    PERFORM audiotricks.at_delete_account($2);
END
$$;

------------------------------------------------------------------------------
-- Settings and API keys
------------------------------------------------------------------------------
CREATE FUNCTION audiotricks_shard.at_get_settings(token text)
    RETURNS TABLE(preferred_language text, summary_quality text,
                  settings_json jsonb, updated_at timestamptz)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM audiotricks.at_authenticate($1);
    RETURN QUERY SELECT s.preferred_language, s.summary_quality, s.settings_json, s.updated_at
                   FROM audiotricks.at_get_settings() s;
END
$$;

-- (PL/pgSQL takes no argument named like an output column)
CREATE FUNCTION audiotricks_shard.at_update_settings(token text, new_preferred_language text,
                                                     new_summary_quality text, new_settings_json jsonb)
    RETURNS TABLE(preferred_language text, summary_quality text,
                  settings_json jsonb, updated_at timestamptz)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM audiotricks.at_authenticate($1);
    RETURN QUERY SELECT s.preferred_language, s.summary_quality, s.settings_json, s.updated_at
                   FROM audiotricks.at_update_settings($2, $3, $4) s;
END
$$;

CREATE FUNCTION audiotricks_shard.at_set_api_key(token text, provider text, api_key text)
    RETURNS void LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM audiotricks.at_authenticate($1);
    PERFORM audiotricks.at_set_api_key($2, $3);
END
$$;

CREATE FUNCTION audiotricks_shard.at_get_api_key(token text, provider text)
    RETURNS text LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM audiotricks.at_authenticate($1);
    RETURN audiotricks.at_get_api_key($2);
END
$$;

CREATE FUNCTION audiotricks_shard.at_api_key_status(token text)
    RETURNS TABLE(provider text, is_set boolean, last4 text, set_at timestamptz)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM audiotricks.at_authenticate($1);
    RETURN QUERY SELECT k.provider, k.is_set, k.last4, k.set_at FROM audiotricks.at_api_key_status() k;
END
$$;

------------------------------------------------------------------------------
-- History
------------------------------------------------------------------------------
CREATE FUNCTION audiotricks_shard.at_history_add(token text,
        title text, audio_url text, file_size_bytes bigint, duration_seconds integer,
        transcript text, summary text, key_moments jsonb, processing_options jsonb)
    RETURNS uuid LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM audiotricks.at_authenticate($1);
    RETURN audiotricks.at_history_add($2, $3, $4, $5, $6, $7, $8, $9);
END
$$;

CREATE FUNCTION audiotricks_shard.at_history_delete(token text, id uuid)
    RETURNS boolean LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM audiotricks.at_authenticate($1);
    RETURN audiotricks.at_history_delete($2);
END
$$;

CREATE FUNCTION audiotricks_shard.at_history_count(token text)
    RETURNS bigint LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM audiotricks.at_authenticate($1);
    RETURN audiotricks.at_history_count();
END
$$;

-- ===================== BEGIN history page/search API switch ================
-- at_history_page(token, page_size, cursor) and at_history_search(token,
-- query, page_size, cursor) return audiotricks_shard.history_entry rows.
-- Created for whichever API the installed audiotricks has:
--   cursor API  at_history_page(integer, text), at_history_search(text,
--               integer, text) returning audiotricks.history_entry: passed
--               through.
--   keyset API  at_history_page(integer, timestamptz, uuid), at_history_search(
--               text, integer): a stand-in cursor "<created_at in µs since
--               1970>_<id>" for the page; search returns its first page only
--               (rank and cursor NULL; a cursor is 0A000).
-- Once only the cursor API exists, the keyset branch can be deleted.
DO $do$
BEGIN
IF pg_catalog.to_regprocedure('audiotricks.at_history_page(integer,text)') IS NOT NULL THEN
    EXECUTE $f$
    CREATE FUNCTION audiotricks_shard.at_history_page(token text, page_size integer, cursor text)
        RETURNS SETOF audiotricks_shard.history_entry LANGUAGE plpgsql VOLATILE ROWS 20
        SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        PERFORM audiotricks.at_authenticate($1);
        RETURN QUERY SELECT h.id, h.user_id, h.title, h.audio_url, h.file_size_bytes,
                            h.duration_seconds, h.transcript, h.summary, h.key_moments,
                            h.processing_options, h.created_at, h.rank, h.cursor
                       FROM audiotricks.at_history_page($2, $3) h;
    END
    $$ $f$;
    EXECUTE $f$
    CREATE FUNCTION audiotricks_shard.at_history_search(token text, query text, page_size integer, cursor text)
        RETURNS SETOF audiotricks_shard.history_entry LANGUAGE plpgsql VOLATILE ROWS 20
        SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        PERFORM audiotricks.at_authenticate($1);
        RETURN QUERY SELECT h.id, h.user_id, h.title, h.audio_url, h.file_size_bytes,
                            h.duration_seconds, h.transcript, h.summary, h.key_moments,
                            h.processing_options, h.created_at, h.rank, h.cursor
                       FROM audiotricks.at_history_search($2, $3, $4) h;
    END
    $$ $f$;
ELSE
    EXECUTE $f$
    CREATE FUNCTION audiotricks_shard.at_history_page(token text, page_size integer, cursor text)
        RETURNS SETOF audiotricks_shard.history_entry LANGUAGE plpgsql VOLATILE ROWS 20
        SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        v_at timestamptz;
        v_after uuid;
    BEGIN
        PERFORM audiotricks.at_authenticate($1);
        IF $3 IS NOT NULL THEN
            IF $3 !~ '^[0-9]{1,18}_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
                RAISE EXCEPTION 'invalid cursor' USING ERRCODE = '22023';
            END IF;
            v_at := 'epoch'::timestamptz
                    + (pg_catalog.split_part($3, '_', 1) || ' microseconds')::interval;
            v_after := pg_catalog.split_part($3, '_', 2)::uuid;
        END IF;
        RETURN QUERY SELECT h.id, h.user_id, h.title, h.audio_url, h.file_size_bytes,
                            h.duration_seconds, h.transcript, h.summary, h.key_moments,
                            h.processing_options, h.created_at, NULL::real,
                            ((EXTRACT(epoch FROM h.created_at) * 1000000)::bigint)::text
                              || '_' || h.id::text
                       FROM audiotricks.at_history_page($2, v_at, v_after) h;
    END
    $$ $f$;
    EXECUTE $f$
    CREATE FUNCTION audiotricks_shard.at_history_search(token text, query text, page_size integer, cursor text)
        RETURNS SETOF audiotricks_shard.history_entry LANGUAGE plpgsql VOLATILE ROWS 20
        SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        PERFORM audiotricks.at_authenticate($1);
        IF $4 IS NOT NULL THEN
            RAISE EXCEPTION 'search cursors need the cursor API of audiotricks' USING ERRCODE = '0A000';
        END IF;
        RETURN QUERY SELECT h.id, h.user_id, h.title, h.audio_url, h.file_size_bytes,
                            h.duration_seconds, h.transcript, h.summary, h.key_moments,
                            h.processing_options, h.created_at, NULL::real, NULL::text
                       FROM audiotricks.at_history_search($2, $3) h;
    END
    $$ $f$;
END IF;
END
$do$;
-- ===================== END history page/search API switch ==================

------------------------------------------------------------------------------
-- Repair of a registration the router did not finish (README, "Past one
-- machine"): the router registers on the shard and then commits its
-- directory row; if the router fails in between, the shard keeps a user the
-- directory does not know.  audiotricks_router.at_router_repair() lists, per
-- shard, users that never logged in and are older than older_than (so no
-- registration still in flight), and drops those its directory lacks.  A
-- user never reaches a login without a directory row, so a user the
-- directory lacks never logged in.  SECURITY DEFINER: they read and delete
-- other users' rows; granted only to audiotricks_router.
------------------------------------------------------------------------------
CREATE FUNCTION audiotricks_shard.at_unrouted_candidates(older_than interval)
    RETURNS SETOF uuid LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
SELECT u.id FROM audiotricks.users u
 WHERE u.last_login_at IS NULL
   AND u.created_at < pg_catalog.now() - GREATEST($1, interval '1 minute')
$$;

CREATE FUNCTION audiotricks_shard.at_drop_unrouted(id uuid, older_than interval)
    RETURNS boolean LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
WITH d AS (
    DELETE FROM audiotricks.users u
     WHERE u.id = $1 AND u.last_login_at IS NULL
       AND u.created_at < pg_catalog.now() - GREATEST($2, interval '1 minute')
    RETURNING 1)
SELECT EXISTS (SELECT FROM d)
$$;

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA audiotricks_shard FROM PUBLIC;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA audiotricks_shard TO audiotricks_router;
