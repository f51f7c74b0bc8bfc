-- test/bench/plainsql.sql — the competitor: the same back end written the way
-- a PostgreSQL user would write it without audiotricks, following PostgREST's
-- user-management recipe (pgcrypto crypt/gen_salt('bf'), an HS256 JWT signed
-- and checked in SQL with hmac() and base64url, identity in a transaction-
-- local setting, RLS policies wrapped in (SELECT ...), pgp_sym_encrypt for
-- API keys, to_tsvector search), written carefully:
--   * everything schema-qualified; SECURITY DEFINER functions pin search_path;
--   * policies compare with (SELECT plainsql.current_user_id()), so the
--     identity is an InitPlan and the (user_id, created_at, id) index is used;
--   * two token checks: authenticate_pgjwt() is the pgjwt-style recipe
--     (sign()/verify() built from small SQL functions), authenticate() is the
--     fast hand-written PL/pgSQL version that inlines the whole check;
--   * two pagers: OFFSET (what most apps do) and keyset;
--   * two searches: the recipe's (SECURITY INVOKER, under RLS) and the one an
--     expert writes (SECURITY DEFINER with an explicit user_id condition, so
--     the btree_gin index on (user_id, search_tsv) can be used: the @@
--     operator is not leakproof, so under a policy it cannot be an index
--     condition).
-- Written for this benchmark from the recipes' published approach; no code
-- is copied from pgjwt or PostgREST.
--
-- Needs pgcrypto and btree_gin in schema public, and the database settings
-- app.jwt_secret and app.encryption_key (test/bench/run sets them).
\set ON_ERROR_STOP 1

CREATE SCHEMA plainsql;

CREATE TABLE plainsql.users (
    id              uuid            PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
    email           varchar(255)    NOT NULL,
    username        varchar(100)    NOT NULL,
    password_hash   varchar(255)    NOT NULL,
    created_at      timestamptz     NOT NULL DEFAULT pg_catalog.now(),
    updated_at      timestamptz     NOT NULL DEFAULT pg_catalog.now(),
    last_login_at   timestamptz,
    is_active       boolean         NOT NULL DEFAULT true
);

CREATE TABLE plainsql.sessions (
    id              uuid            PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
    user_id         uuid            NOT NULL REFERENCES plainsql.users ON DELETE CASCADE,
    token_hash      varchar(255)    NOT NULL UNIQUE,
    expires_at      timestamptz     NOT NULL,
    created_at      timestamptz     NOT NULL DEFAULT pg_catalog.now()
);

CREATE TABLE plainsql.user_settings (
    user_id                         uuid PRIMARY KEY REFERENCES plainsql.users ON DELETE CASCADE,
    openai_api_key_encrypted        bytea,
    elevenlabs_api_key_encrypted    bytea,
    preferred_language              varchar(10) NOT NULL DEFAULT 'en',
    summary_quality                 varchar(20) NOT NULL DEFAULT 'balanced',
    settings_json                   jsonb       NOT NULL DEFAULT '{}',
    updated_at                      timestamptz NOT NULL DEFAULT pg_catalog.now()
);

CREATE TABLE plainsql.audio_history (
    id                  uuid            PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
    user_id             uuid            NOT NULL REFERENCES plainsql.users ON DELETE CASCADE,
    title               varchar(500),
    audio_url           text,
    file_size_bytes     bigint,
    duration_seconds    integer,
    transcript          text,
    summary             text,
    key_moments         jsonb,
    processing_options  jsonb,
    created_at          timestamptz     NOT NULL DEFAULT pg_catalog.now(),
    search_tsv          tsvector        -- maintained by the trigger below
);

-- the search document, kept by a trigger (PostgreSQL manual, 12.4.3)
CREATE FUNCTION plainsql.history_tsv() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.search_tsv :=
        pg_catalog.setweight(pg_catalog.to_tsvector('pg_catalog.english', coalesce(NEW.title, '')), 'A') OPERATOR(pg_catalog.||)
        pg_catalog.setweight(pg_catalog.to_tsvector('pg_catalog.english', coalesce(NEW.summary, '')), 'B') OPERATOR(pg_catalog.||)
        pg_catalog.setweight(pg_catalog.to_tsvector('pg_catalog.english', coalesce(NEW.transcript, '')), 'C');
    RETURN NEW;
END
$$;

------------------------------------------------------------------------------
-- Identity: a transaction-local setting, set only by the token checks below
------------------------------------------------------------------------------
CREATE FUNCTION plainsql.current_user_id() RETURNS uuid
LANGUAGE sql STABLE AS $$
    SELECT NULLIF(pg_catalog.current_setting('app.user_id', true), '')::uuid
$$;

------------------------------------------------------------------------------
-- pgjwt-style JWT: small SQL functions, as in the recipe
------------------------------------------------------------------------------
CREATE FUNCTION plainsql.url_encode(data bytea) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT pg_catalog.translate(pg_catalog.encode(data, 'base64'), E'+/=\n', '-_')
$$;

CREATE FUNCTION plainsql.url_decode(data text) RETURNS bytea
LANGUAGE sql IMMUTABLE AS $$
    WITH t AS (SELECT pg_catalog.translate(data, '-_', '+/') AS s)
    SELECT pg_catalog.decode(t.s || pg_catalog.repeat('=', (4 - pg_catalog.length(t.s) % 4) % 4), 'base64')
      FROM t
$$;

CREATE FUNCTION plainsql.algorithm_sign(signables text, secret text, algorithm text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    WITH alg AS (
        SELECT CASE algorithm WHEN 'HS256' THEN 'sha256'
                              WHEN 'HS384' THEN 'sha384'
                              WHEN 'HS512' THEN 'sha512' END AS id)
    SELECT plainsql.url_encode(public.hmac(signables, secret, alg.id)) FROM alg
$$;

CREATE FUNCTION plainsql.sign(payload json, secret text, algorithm text DEFAULT 'HS256') RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    WITH header AS (
        SELECT plainsql.url_encode(pg_catalog.convert_to(
                   '{"alg":"' OPERATOR(pg_catalog.||) algorithm OPERATOR(pg_catalog.||) '","typ":"JWT"}', 'utf8')) AS data),
    body AS (
        SELECT plainsql.url_encode(pg_catalog.convert_to(payload::text, 'utf8')) AS data),
    signables AS (
        SELECT header.data OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) body.data AS data FROM header, body)
    SELECT signables.data OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||)
           plainsql.algorithm_sign(signables.data, secret, algorithm)
      FROM signables
$$;

CREATE FUNCTION plainsql.verify(token text, secret text, algorithm text DEFAULT 'HS256')
RETURNS TABLE(header json, payload json, valid boolean)
LANGUAGE sql IMMUTABLE AS $$
    SELECT pg_catalog.convert_from(plainsql.url_decode(r[1]), 'utf8')::json,
           pg_catalog.convert_from(plainsql.url_decode(r[2]), 'utf8')::json,
           r[3] OPERATOR(pg_catalog.=) plainsql.algorithm_sign(r[1] OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) r[2], secret, algorithm)
      FROM pg_catalog.regexp_split_to_array(token, '\.') r
$$;

-- the recipe's check: verify(), then the claims, then the session row
CREATE FUNCTION plainsql.authenticate_pgjwt(token text) RETURNS uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_payload json;
    v_valid boolean;
    v_user uuid;
BEGIN
    SELECT j.payload, j.valid INTO v_payload, v_valid
      FROM plainsql.verify(token, current_setting('app.jwt_secret')) j;
    IF v_valid IS NOT TRUE
       OR (v_payload->>'exp')::bigint <= extract(epoch FROM now())
       OR v_payload->>'iss' IS DISTINCT FROM 'plainsql' THEN
        RAISE EXCEPTION 'invalid or expired token' USING ERRCODE = '28000';
    END IF;
    SELECT s.user_id INTO v_user
      FROM plainsql.sessions s JOIN plainsql.users u ON u.id = s.user_id
     WHERE s.token_hash = encode(public.digest(token, 'sha256'), 'hex')
       AND s.id = (v_payload->>'sid')::uuid
       AND s.user_id = (v_payload->>'sub')::uuid
       AND s.expires_at > now()
       AND u.is_active;
    IF v_user IS NULL THEN
        RAISE EXCEPTION 'invalid or expired token' USING ERRCODE = '28000';
    END IF;
    PERFORM set_config('app.user_id', v_user::text, true);
    RETURN v_user;
END
$$;

-- the well-written version: one PL/pgSQL function, no helper calls, the
-- header compared as a constant, the signature computed once
CREATE FUNCTION plainsql.authenticate(token text) RETURNS uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_parts text[];
    v_body text;
    v_claims jsonb;
    v_user uuid;
BEGIN
    v_parts := string_to_array(token, '.');
    IF length(token) > 4096 OR array_length(v_parts, 1) <> 3
       OR v_parts[1] <> 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9'
       OR rtrim(translate(encode(public.hmac(v_parts[1] || '.' || v_parts[2],
                                             current_setting('app.jwt_secret'), 'sha256'),
                                 'base64'), '+/', '-_'), '=') <> v_parts[3] THEN
        RAISE EXCEPTION 'invalid or expired token' USING ERRCODE = '28000';
    END IF;
    v_body := translate(v_parts[2], '-_', '+/');
    v_claims := convert_from(decode(v_body || repeat('=', (4 - length(v_body) % 4) % 4), 'base64'), 'utf8')::jsonb;
    IF (v_claims->>'exp')::bigint <= extract(epoch FROM now())
       OR v_claims->>'iss' IS DISTINCT FROM 'plainsql' THEN
        RAISE EXCEPTION 'invalid or expired token' USING ERRCODE = '28000';
    END IF;
    SELECT s.user_id INTO v_user
      FROM plainsql.sessions s JOIN plainsql.users u ON u.id = s.user_id
     WHERE s.token_hash = encode(public.digest(token, 'sha256'), 'hex')
       AND s.id = (v_claims->>'sid')::uuid
       AND s.user_id = (v_claims->>'sub')::uuid
       AND s.expires_at > now()
       AND u.is_active;
    IF v_user IS NULL THEN
        RAISE EXCEPTION 'invalid or expired token' USING ERRCODE = '28000';
    END IF;
    PERFORM set_config('app.user_id', v_user::text, true);
    RETURN v_user;
END
$$;

------------------------------------------------------------------------------
-- Login: the recipe (crypt() compare, a session row, a signed JWT)
------------------------------------------------------------------------------
CREATE FUNCTION plainsql.login(login text, password text)
RETURNS TABLE(token text, user_id uuid, session_id uuid, expires_at timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_user plainsql.users;
    v_sid uuid := gen_random_uuid();
    v_now bigint := extract(epoch FROM now())::bigint;
    v_exp bigint := v_now + 7 * 86400;
    v_token text;
BEGIN
    IF position('@' IN login) > 0 THEN
        SELECT * INTO v_user FROM plainsql.users u WHERE lower(u.email) = lower(login);
    ELSE
        SELECT * INTO v_user FROM plainsql.users u WHERE lower(u.username) = lower(login);
    END IF;
    -- the same bcrypt work for unknown users
    IF v_user.id IS NULL OR NOT v_user.is_active
       OR public.crypt(password, coalesce(v_user.password_hash, public.gen_salt('bf', 12)))
          IS DISTINCT FROM v_user.password_hash THEN
        RAISE EXCEPTION 'invalid login or password' USING ERRCODE = '28P01';
    END IF;
    v_token := plainsql.sign(json_build_object(
        'sub', v_user.id, 'sid', v_sid, 'role', 'authenticated',
        'iat', v_now, 'exp', v_exp, 'iss', 'plainsql'),
        current_setting('app.jwt_secret'));
    INSERT INTO plainsql.sessions (id, user_id, token_hash, expires_at)
    VALUES (v_sid, v_user.id, encode(public.digest(v_token, 'sha256'), 'hex'), to_timestamp(v_exp));
    UPDATE plainsql.users u SET last_login_at = now() WHERE u.id = v_user.id;
    RETURN QUERY SELECT v_token, v_user.id, v_sid, to_timestamp(v_exp);
END
$$;

------------------------------------------------------------------------------
-- History
------------------------------------------------------------------------------
CREATE FUNCTION plainsql.history_add(
        title text DEFAULT NULL, audio_url text DEFAULT NULL,
        file_size_bytes bigint DEFAULT NULL, duration_seconds integer DEFAULT NULL,
        transcript text DEFAULT NULL, summary text DEFAULT NULL,
        key_moments jsonb DEFAULT NULL, processing_options jsonb DEFAULT NULL)
RETURNS uuid
LANGUAGE sql VOLATILE AS $$
    INSERT INTO plainsql.audio_history
        (user_id, title, audio_url, file_size_bytes, duration_seconds,
         transcript, summary, key_moments, processing_options)
    VALUES ((SELECT plainsql.current_user_id()), $1, $2, $3, $4, $5, $6, $7, $8)
    RETURNING id
$$;

-- OFFSET paging (page n = OFFSET (n - 1) * page_size): what most apps do
CREATE FUNCTION plainsql.history_page_offset(page_size integer, page_offset integer)
RETURNS SETOF plainsql.audio_history
LANGUAGE sql STABLE AS $$
    SELECT h.* FROM plainsql.audio_history h
     ORDER BY h.created_at DESC, h.id DESC
     LIMIT page_size OFFSET page_offset
$$;

-- keyset paging: the first page passes the defaults
CREATE FUNCTION plainsql.history_page(page_size integer DEFAULT 20,
        before_created_at timestamptz DEFAULT 'infinity',
        before_id uuid DEFAULT 'ffffffff-ffff-ffff-ffff-ffffffffffff')
RETURNS SETOF plainsql.audio_history
LANGUAGE sql STABLE AS $$
    SELECT h.* FROM plainsql.audio_history h
     WHERE (h.created_at, h.id) < (before_created_at, before_id)
     ORDER BY h.created_at DESC, h.id DESC
     LIMIT page_size
$$;

-- the recipe's search: under RLS
CREATE FUNCTION plainsql.history_search(query text, page_size integer DEFAULT 20)
RETURNS SETOF plainsql.audio_history
LANGUAGE sql STABLE AS $$
    SELECT h.* FROM plainsql.audio_history h,
           pg_catalog.websearch_to_tsquery('pg_catalog.english', query) q
     WHERE h.search_tsv OPERATOR(pg_catalog.@@) q
     ORDER BY pg_catalog.ts_rank(h.search_tsv, q) DESC, h.created_at DESC, h.id DESC
     LIMIT page_size
$$;

-- the expert's search: explicit user condition, so the GIN index applies
CREATE FUNCTION plainsql.history_search_definer(query text, page_size integer DEFAULT 20)
RETURNS SETOF plainsql.audio_history
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT h.* FROM plainsql.audio_history h,
           websearch_to_tsquery('english', query) q
     WHERE h.user_id = plainsql.current_user_id()
       AND h.search_tsv @@ q
     ORDER BY ts_rank(h.search_tsv, q) DESC, h.created_at DESC, h.id DESC
     LIMIT page_size
$$;

------------------------------------------------------------------------------
-- API keys with pgp_sym_encrypt under a database setting
------------------------------------------------------------------------------
CREATE FUNCTION plainsql.set_api_key(provider text, api_key text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF provider = 'openai' THEN
        UPDATE plainsql.user_settings
           SET openai_api_key_encrypted = public.pgp_sym_encrypt(api_key, pg_catalog.current_setting('app.encryption_key')),
               updated_at = pg_catalog.now()
         WHERE user_id = (SELECT plainsql.current_user_id());
    ELSIF provider = 'elevenlabs' THEN
        UPDATE plainsql.user_settings
           SET elevenlabs_api_key_encrypted = public.pgp_sym_encrypt(api_key, pg_catalog.current_setting('app.encryption_key')),
               updated_at = pg_catalog.now()
         WHERE user_id = (SELECT plainsql.current_user_id());
    ELSE
        RAISE EXCEPTION 'unknown provider' USING ERRCODE = '22023';
    END IF;
END
$$;

CREATE FUNCTION plainsql.get_api_key(provider text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT public.pgp_sym_decrypt(CASE provider WHEN 'openai' THEN s.openai_api_key_encrypted
                                                WHEN 'elevenlabs' THEN s.elevenlabs_api_key_encrypted END,
                                  pg_catalog.current_setting('app.encryption_key'))
      FROM plainsql.user_settings s
     WHERE s.user_id = (SELECT plainsql.current_user_id())
$$;

-- "is my key set?" the plain way: decrypt to show the last 4 characters
CREATE FUNCTION plainsql.api_key_status()
RETURNS TABLE (provider text, is_set boolean, last4 text)
LANGUAGE sql STABLE AS $$
    SELECT p.provider, p.enc IS NOT NULL,
           pg_catalog.right(public.pgp_sym_decrypt(p.enc, pg_catalog.current_setting('app.encryption_key')), 4)
      FROM plainsql.user_settings s,
           LATERAL (VALUES ('openai', s.openai_api_key_encrypted),
                           ('elevenlabs', s.elevenlabs_api_key_encrypted)) AS p(provider, enc)
     WHERE s.user_id = (SELECT plainsql.current_user_id())
$$;

------------------------------------------------------------------------------
-- Row-level security and privileges (applied by plainsql_finish.sql after the
-- bulk copy, together with the indexes and the trigger)
------------------------------------------------------------------------------
