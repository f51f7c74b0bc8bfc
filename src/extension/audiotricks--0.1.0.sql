/* src/extension/audiotricks--0.1.0.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION audiotricks CASCADE" to load this file. \quit

------------------------------------------------------------------------------
-- The install script of audiotricks 0.1.0, in this order:
--
--   1. Checks: the schema is the extension's own; the library is preloaded.
--   2. Roles: audiotricks_anon and audiotricks_user, USAGE on the schema.
--   3. Functions the tables use (column defaults, CHECK constraints, the
--      generated search column, triggers, policies): they must exist first.
--   4. Tables, one block each: columns and constraints (one CREATE TABLE),
--      indexes, triggers, comments, pg_dump configuration, row-level
--      security and policies, privileges.
--   5. Functions by area: identity; accounts and sessions; settings and
--      API keys; history; administration and operations.  Each has its
--      comment next to it.
--   6. Function privileges: EXECUTE is revoked from PUBLIC on every
--      function, then granted once per role.
--
-- Functions, tables and operators are named with their schema (operators
-- as OPERATOR(pg_catalog.=)), so no role's search_path changes what a name
-- means; built-in type names resolve in pg_catalog, searched first.
------------------------------------------------------------------------------

------------------------------------------------------------------------------
-- 1. Checks
------------------------------------------------------------------------------

-- Refuse a schema audiotricks that is not this extension's own.  CREATE
-- EXTENSION creates the control file's schema only when none of that name
-- exists (owned by the installing superuser, empty); otherwise it installs
-- into whatever schema has the name.  One a database owner created
-- beforehand, or that already holds objects, or where another role may
-- create objects, would let that role replace what the C code finds by the
-- name audiotricks.<table> and run it with the owner's rights.  The
-- superuser's own empty schema (left by DROP EXTENSION, or made by pg_dump's
-- restore) is accepted.
DO $schema$
DECLARE
    s pg_catalog.pg_namespace%ROWTYPE;
    why text;
BEGIN
    SELECT * INTO s FROM pg_catalog.pg_namespace
     WHERE nspname OPERATOR(pg_catalog.=) 'audiotricks';
    IF s.nspowner OPERATOR(pg_catalog.<>) (SELECT r.oid FROM pg_catalog.pg_roles r
                                           WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER) THEN
        why := pg_catalog.format('It is owned by role %I, not by %I, who is installing the extension.',
                                 pg_catalog.pg_get_userbyid(s.nspowner), CURRENT_USER);
    ELSIF EXISTS (SELECT FROM pg_catalog.pg_depend d
                   WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_namespace'::pg_catalog.regclass
                     AND d.refobjid OPERATOR(pg_catalog.=) s.oid
                     -- but this extension itself, recorded before the script runs
                     AND NOT (d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
                              AND d.objid OPERATOR(pg_catalog.=) (SELECT e.oid FROM pg_catalog.pg_extension e
                                                                   WHERE e.extname OPERATOR(pg_catalog.=) 'audiotricks')))
       OR EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.relnamespace OPERATOR(pg_catalog.=) s.oid)
       OR EXISTS (SELECT FROM pg_catalog.pg_proc p WHERE p.pronamespace OPERATOR(pg_catalog.=) s.oid)
       OR EXISTS (SELECT FROM pg_catalog.pg_type t WHERE t.typnamespace OPERATOR(pg_catalog.=) s.oid) THEN
        why := 'It already holds objects.';
    ELSIF EXISTS (SELECT FROM pg_catalog.aclexplode(s.nspacl) a
                   WHERE a.privilege_type OPERATOR(pg_catalog.=) 'CREATE'
                     AND a.grantee OPERATOR(pg_catalog.<>) s.nspowner) THEN
        why := 'Another role may create objects in it.';
    END IF;
    IF why IS NOT NULL THEN
        RAISE EXCEPTION 'schema "audiotricks" already exists and is not the extension''s own'
            USING ERRCODE = 'duplicate_schema', DETAIL = why,
                  HINT = 'CREATE EXTENSION audiotricks creates its schema itself, owned by the installing superuser: '
                         'drop or rename the existing schema first (after checking what it holds and who created it).';
    END IF;
END
$schema$;

-- Refuse to install unless the library is in shared_preload_libraries: its
-- secret settings are only safe, and its shared state only exists, then.
CREATE FUNCTION audiotricks.at_check_preload() RETURNS void
    LANGUAGE C VOLATILE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'at_check_preload';
COMMENT ON FUNCTION audiotricks.at_check_preload() IS
    'Raises 55000 unless audiotricks is in shared_preload_libraries; run by the install script.';
SELECT audiotricks.at_check_preload();

------------------------------------------------------------------------------
-- 2. Roles
--
-- Two NOLOGIN group roles carry every privilege the application needs; the
-- extension grants nothing to PUBLIC, not even USAGE on the schema.  Grant
-- them to your own roles (README, "Roles"):
--   audiotricks_anon  register, log in, check and end a token
--   audiotricks_user  everything a signed-in user does (includes anon's)
-- Roles are cluster-wide: DROP EXTENSION leaves them in place.
------------------------------------------------------------------------------
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'audiotricks_anon') THEN
        CREATE ROLE audiotricks_anon NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'audiotricks_user') THEN
        CREATE ROLE audiotricks_user NOLOGIN;
    END IF;
END
$roles$;

GRANT USAGE ON SCHEMA audiotricks TO audiotricks_anon, audiotricks_user;

-- The helpers that column defaults, CHECK constraints, generated columns,
-- index expressions and triggers call live in a schema of their own, so
-- that the schema of the API (and PostgREST, which exposes it) lists only
-- the API.  The application roles need USAGE to write rows; nothing here is
-- an API.  CREATE SCHEMA fails if a schema of this name exists already.
CREATE SCHEMA audiotricks_internal;
REVOKE ALL ON SCHEMA audiotricks_internal FROM PUBLIC;
GRANT USAGE ON SCHEMA audiotricks_internal TO audiotricks_anon, audiotricks_user;
COMMENT ON SCHEMA audiotricks_internal IS
    'audiotricks: helpers that constraints, defaults, generated columns and triggers call; not an API.';

------------------------------------------------------------------------------
-- 3. Functions the tables use
--
-- Column defaults, CHECK constraints, the generated search column, index
-- expressions and policies run these with the privileges of the role that
-- writes or reads the row, so they are granted to the application roles
-- (section 6).  The trigger functions are granted to nobody: EXECUTE on a
-- trigger function is checked when the trigger is created, not when it
-- fires.
------------------------------------------------------------------------------

-- Identifiers and identity (src/uuid.c, src/identity.c)
CREATE FUNCTION audiotricks.at_uuid_v7() RETURNS uuid
    LANGUAGE C VOLATILE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'at_uuid_v7';
COMMENT ON FUNCTION audiotricks.at_uuid_v7() IS
    'A new time-ordered UUID (RFC 9562 version 7), strictly increasing within a backend.';

CREATE FUNCTION audiotricks.at_current_user_id() RETURNS uuid
    LANGUAGE C STABLE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'at_current_user_id';
COMMENT ON FUNCTION audiotricks.at_current_user_id() IS
    'The user id of the verified token of this transaction (at_authenticate, else PostgREST''s bearer token in request.headers), or NULL.';

-- Triggers
CREATE FUNCTION audiotricks.at_touch_updated_at() RETURNS trigger
    LANGUAGE C
    AS 'MODULE_PATHNAME', 'at_touch_updated_at';
COMMENT ON FUNCTION audiotricks.at_touch_updated_at() IS
    'BEFORE UPDATE trigger: sets updated_at to the transaction timestamp.';

-- Deactivating a user ends their sessions in the same transaction, whatever
-- the path (at_deactivate_account or an administrator's UPDATE), so that the
-- token check reads only sessions.  Reactivation does not revive them.
CREATE FUNCTION audiotricks.at_end_sessions_on_deactivate() RETURNS trigger
    LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_end_sessions_on_deactivate';
COMMENT ON FUNCTION audiotricks.at_end_sessions_on_deactivate() IS
    'AFTER UPDATE OF is_active row trigger on users: deletes the sessions of a user who becomes inactive.';

CREATE FUNCTION audiotricks.at_revoked_families_changed() RETURNS trigger
    LANGUAGE C
    AS 'MODULE_PATHNAME', 'at_revoked_families_changed';
COMMENT ON FUNCTION audiotricks.at_revoked_families_changed() IS
    'Statement trigger on revoked_families: every backend re-reads the table (the token check keeps a copy) once the change commits.';

-- Deleting history is audited once per statement, whatever the path
-- (at_history_delete, PostgREST DELETE /audio_history, plain SQL).
CREATE FUNCTION audiotricks.at_audit_history_delete() RETURNS trigger
    LANGUAGE C
    AS 'MODULE_PATHNAME', 'at_audit_history_delete';
COMMENT ON FUNCTION audiotricks.at_audit_history_delete() IS
    'AFTER DELETE statement trigger on audio_history: records a history_deleted audit event.';

-- Validation (src/validate.c).  Validation lives in table constraints, so
-- at_history_add, a direct INSERT or UPDATE (PostgREST's POST/PATCH
-- /audio_history) and at_update_settings are all covered.  The JSONB checks
-- raise 23514 naming the offending key; keys the seed does not list are
-- allowed.
CREATE FUNCTION audiotricks.at_check_key_moments(key_moments jsonb) RETURNS boolean
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'at_check_key_moments';
COMMENT ON FUNCTION audiotricks.at_check_key_moments(jsonb) IS
    'True for an array of {timestamp "HH:MM:SS", description string, confidence number 0..1 (optional)}, at most 256 kB (262144 bytes); raises 23514 naming the element and key otherwise. Used by a CHECK constraint.';

CREATE FUNCTION audiotricks.at_check_processing_options(processing_options jsonb) RETURNS boolean
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'at_check_processing_options';
COMMENT ON FUNCTION audiotricks.at_check_processing_options(jsonb) IS
    'True for an object whose listed keys have their types (language, model, summaryStyle: string; includeTimestamps, speakerDiarization: boolean), at most 64 kB (65536 bytes); raises 23514 naming the key otherwise. Used by a CHECK constraint.';

CREATE FUNCTION audiotricks.at_check_settings_json(settings_json jsonb) RETURNS boolean
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'at_check_settings_json';
COMMENT ON FUNCTION audiotricks.at_check_settings_json(jsonb) IS
    'True for an object whose listed keys have their types (theme: string; autoSave: boolean; notifications: {email, browser: boolean}; audioDefaults: {format, quality: string}), at most 16 kB (16384 bytes); raises 23514 naming the key otherwise. Used by a CHECK constraint.';

CREATE FUNCTION audiotricks.at_check_audio_url(audio_url text) RETURNS boolean
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'at_check_audio_url';
COMMENT ON FUNCTION audiotricks.at_check_audio_url(text) IS
    'True for an http or https URL with a host, without whitespace, at most 2048 characters; raises 23514 otherwise. Used by a CHECK constraint.';

-- Size limits in bytes (octet_length for text, the binary form for jsonb;
-- README, "Validation"): checked from the value's header, before anything
-- is detoasted or parsed.
CREATE FUNCTION audiotricks.at_check_transcript(transcript text) RETURNS boolean
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'at_check_transcript';
COMMENT ON FUNCTION audiotricks.at_check_transcript(text) IS
    'True for a transcript of at most 8 MiB (8388608 bytes); raises 23514 naming the column and the limit otherwise. Used by a CHECK constraint.';

CREATE FUNCTION audiotricks.at_check_summary(summary text) RETURNS boolean
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'at_check_summary';
COMMENT ON FUNCTION audiotricks.at_check_summary(text) IS
    'True for a summary of at most 64 kB (65536 bytes); raises 23514 naming the column and the limit otherwise. Used by a CHECK constraint.';

-- Full-text search (src/history_index.c): the configuration of an entry's
-- language and its search document, for audio_history's generated column
-- and indexes.  A configuration is named by its schema-qualified name as
-- text ('pg_catalog.english'), never regconfig: pg_upgrade refuses a user
-- column of a reg* type that holds OIDs.
CREATE FUNCTION audiotricks_internal.at_search_config(language text) RETURNS text
    LANGUAGE C IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'at_search_config';
COMMENT ON FUNCTION audiotricks_internal.at_search_config(text) IS
    'The schema-qualified name of the text search configuration for a language code (ISO 639-1 such as de, a tag such as pt-BR, or a name such as german); pg_catalog.simple for NULL or an unknown language.';

CREATE FUNCTION audiotricks_internal.at_history_tsv(search_config text, processing_options jsonb,
                                                    title text, summary text, transcript text)
    RETURNS tsvector
    LANGUAGE C IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'at_history_tsv';
COMMENT ON FUNCTION audiotricks_internal.at_history_tsv(text, jsonb, text, text, text) IS
    'The search document of a history entry: title (weight A), summary (B), transcript (C) in the configuration of processing_options.language, else search_config (a schema-qualified name; 42704 if it names none). Bounded, so that it never fails for size: reads at most the first 1 MB of each text and keeps words while the lexemes and positions fit in a tsvector (1 MB); words past that are stored but not searchable.';

CREATE FUNCTION audiotricks_internal.at_history_tsv_config(search_config text, processing_options jsonb)
    RETURNS text
    LANGUAGE C IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'at_history_tsv_config';
COMMENT ON FUNCTION audiotricks_internal.at_history_tsv_config(text, jsonb) IS
    'The schema-qualified name of the configuration a history entry''s search document is made in: that of processing_options.language, else search_config (42704 if it names none).';

------------------------------------------------------------------------------
-- 4. Tables
--
-- The tables belong to the extension; pg_extension_config_dump makes
-- pg_dump keep their rows.  Row-level security is enabled and forced on
-- every table; a row belongs to the user of the verified token.  The
-- identity is wrapped in a scalar subquery so that it is computed once per
-- query (an InitPlan) and the indexes on user_id stay usable.  Privileges
-- are least privilege: PUBLIC gets nothing, and the secret columns
-- (password_hash, token_hash, the encrypted API keys) are granted to no
-- application role.
------------------------------------------------------------------------------

-- users ---------------------------------------------------------------------
CREATE TABLE audiotricks.users (
    id              uuid            NOT NULL DEFAULT audiotricks.at_uuid_v7(),
    email           varchar(255)    NOT NULL,
    username        varchar(100)    NOT NULL,
    password_hash   varchar(255)    NOT NULL,
    created_at      timestamptz     NOT NULL DEFAULT pg_catalog.now(),
    updated_at      timestamptz     NOT NULL DEFAULT pg_catalog.now(),
    last_login_at   timestamptz,
    is_active       boolean         NOT NULL DEFAULT true,
    CONSTRAINT users_pkey PRIMARY KEY (id),
    CONSTRAINT users_email_check
        CHECK (email OPERATOR(pg_catalog.~) '^[^@[:space:][:cntrl:]]+@[^@[:space:][:cntrl:]]+$'),
    CONSTRAINT users_username_check
        CHECK (username OPERATOR(pg_catalog.~) '^[A-Za-z0-9_-]{1,100}$')
);
CREATE UNIQUE INDEX users_email_key ON audiotricks.users (pg_catalog.lower(email));
CREATE UNIQUE INDEX users_username_key ON audiotricks.users (pg_catalog.lower(username));
CREATE TRIGGER users_touch_updated_at BEFORE UPDATE ON audiotricks.users
    FOR EACH ROW EXECUTE FUNCTION audiotricks.at_touch_updated_at();
CREATE TRIGGER users_end_sessions_on_deactivate
    AFTER UPDATE OF is_active ON audiotricks.users
    FOR EACH ROW WHEN (OLD.is_active AND NOT NEW.is_active)
    EXECUTE FUNCTION audiotricks.at_end_sessions_on_deactivate();

COMMENT ON TABLE audiotricks.users IS 'Stores user account information.';
COMMENT ON COLUMN audiotricks.users.id IS 'Unique user identifier';
COMMENT ON COLUMN audiotricks.users.email IS 'User''s email address (unique, case-insensitively)';
COMMENT ON COLUMN audiotricks.users.username IS 'Display username (unique, case-insensitively; ASCII letters, digits, _ and -)';
COMMENT ON COLUMN audiotricks.users.password_hash IS 'bcrypt hashed password (never readable by application roles)';
COMMENT ON COLUMN audiotricks.users.created_at IS 'Account creation time';
COMMENT ON COLUMN audiotricks.users.updated_at IS 'Last modification time';
COMMENT ON COLUMN audiotricks.users.last_login_at IS 'Last successful login';
COMMENT ON COLUMN audiotricks.users.is_active IS 'Account active status';
SELECT pg_catalog.pg_extension_config_dump('audiotricks.users', '');

ALTER TABLE audiotricks.users ENABLE ROW LEVEL SECURITY;
ALTER TABLE audiotricks.users FORCE ROW LEVEL SECURITY;
CREATE POLICY users_own ON audiotricks.users
    USING (id OPERATOR(pg_catalog.=) (SELECT audiotricks.at_current_user_id()))
    WITH CHECK (id OPERATOR(pg_catalog.=) (SELECT audiotricks.at_current_user_id()));

REVOKE ALL ON audiotricks.users FROM PUBLIC;
GRANT SELECT (id, email, username, created_at, updated_at, last_login_at, is_active)
    ON audiotricks.users TO audiotricks_user;

-- sessions ------------------------------------------------------------------
CREATE TABLE audiotricks.sessions (
    id              uuid            NOT NULL DEFAULT audiotricks.at_uuid_v7(),
    user_id         uuid            NOT NULL,
    token_hash      varchar(255)    NOT NULL,
    expires_at      timestamptz     NOT NULL,
    created_at      timestamptz     NOT NULL DEFAULT pg_catalog.now(),
    family_id       uuid            NOT NULL DEFAULT audiotricks.at_uuid_v7(),
    refreshed_at    timestamptz,
    CONSTRAINT sessions_pkey PRIMARY KEY (id),
    CONSTRAINT sessions_token_hash_key UNIQUE (token_hash),
    CONSTRAINT sessions_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES audiotricks.users (id) ON DELETE CASCADE
);
CREATE INDEX sessions_user_id_idx ON audiotricks.sessions (user_id);
CREATE INDEX sessions_family_id_idx ON audiotricks.sessions (family_id);

COMMENT ON TABLE audiotricks.sessions IS 'Manages active user sessions for JWT authentication.';
COMMENT ON COLUMN audiotricks.sessions.id IS 'Session identifier';
COMMENT ON COLUMN audiotricks.sessions.user_id IS 'Reference to users.id';
COMMENT ON COLUMN audiotricks.sessions.token_hash IS 'SHA256 hash of JWT (hex; never readable by application roles)';
COMMENT ON COLUMN audiotricks.sessions.expires_at IS 'Session expiration time';
COMMENT ON COLUMN audiotricks.sessions.created_at IS 'Session creation time';
COMMENT ON COLUMN audiotricks.sessions.family_id IS 'Refresh family: the id of the login session this one descends from by at_refresh (extra column: reuse of a refreshed token ends the family)';
COMMENT ON COLUMN audiotricks.sessions.refreshed_at IS 'When at_refresh replaced this session (extra column: a refreshed session is no longer live, and presenting its token again is reuse)';
SELECT pg_catalog.pg_extension_config_dump('audiotricks.sessions', '');

ALTER TABLE audiotricks.sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE audiotricks.sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY sessions_own ON audiotricks.sessions
    USING (user_id OPERATOR(pg_catalog.=) (SELECT audiotricks.at_current_user_id()))
    WITH CHECK (user_id OPERATOR(pg_catalog.=) (SELECT audiotricks.at_current_user_id()));

REVOKE ALL ON audiotricks.sessions FROM PUBLIC;
GRANT SELECT (id, user_id, expires_at, created_at, family_id, refreshed_at)
    ON audiotricks.sessions TO audiotricks_user;

-- revoked_families ----------------------------------------------------------
-- Revoked refresh families (extra table).  Reuse of a refreshed token ends
-- its whole family; the revocation is a row here, written only by the
-- extension's audit writer in its own transaction (so the failing call that
-- detected the reuse cannot roll it back, and no application transaction
-- can hold a lock that delays it).  The token check and at_refresh refuse
-- every session whose family is listed, also one committed after the
-- revocation by a refresh that was already in flight.
-- at_purge_expired_sessions removes a row once its family has no sessions.
-- No policy and no grant: application roles neither read nor write it.
CREATE TABLE audiotricks.revoked_families (
    family_id       uuid            NOT NULL,
    revoked_at      timestamptz     NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT revoked_families_pkey PRIMARY KEY (family_id)
);
CREATE TRIGGER revoked_families_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON audiotricks.revoked_families
    FOR EACH STATEMENT EXECUTE FUNCTION audiotricks.at_revoked_families_changed();

COMMENT ON TABLE audiotricks.revoked_families IS 'Refresh families ended by token reuse; every session of a listed family is refused (written only by the audit writer)';
COMMENT ON COLUMN audiotricks.revoked_families.family_id IS 'sessions.family_id of the ended family';
COMMENT ON COLUMN audiotricks.revoked_families.revoked_at IS 'When the reuse was recorded';
SELECT pg_catalog.pg_extension_config_dump('audiotricks.revoked_families', '');

ALTER TABLE audiotricks.revoked_families ENABLE ROW LEVEL SECURITY;
ALTER TABLE audiotricks.revoked_families FORCE ROW LEVEL SECURITY;

REVOKE ALL ON audiotricks.revoked_families FROM PUBLIC;

-- user_settings -------------------------------------------------------------
CREATE TABLE audiotricks.user_settings (
    user_id                         uuid            NOT NULL,
    openai_api_key_encrypted        text,
    elevenlabs_api_key_encrypted    text,
    preferred_language              varchar(10)     NOT NULL DEFAULT 'en',
    summary_quality                 varchar(20)     NOT NULL DEFAULT 'balanced',
    settings_json                   jsonb           NOT NULL DEFAULT '{}',
    updated_at                      timestamptz     NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT user_settings_pkey PRIMARY KEY (user_id),
    CONSTRAINT user_settings_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES audiotricks.users (id) ON DELETE CASCADE,
    CONSTRAINT user_settings_preferred_language_check
        CHECK (preferred_language OPERATOR(pg_catalog.~) '^[A-Za-z]{2,3}([_-][A-Za-z0-9]{1,8})*$'),
    CONSTRAINT user_settings_summary_quality_check
        CHECK (summary_quality OPERATOR(pg_catalog.=) ANY (ARRAY['fast', 'balanced', 'detailed']::pg_catalog.text[])),
    CONSTRAINT user_settings_settings_json_check
        CHECK (audiotricks.at_check_settings_json(settings_json))
);
CREATE TRIGGER user_settings_touch_updated_at BEFORE UPDATE ON audiotricks.user_settings
    FOR EACH ROW EXECUTE FUNCTION audiotricks.at_touch_updated_at();

COMMENT ON TABLE audiotricks.user_settings IS 'Stores user preferences and encrypted API keys.';
COMMENT ON COLUMN audiotricks.user_settings.user_id IS 'Reference to users.id';
COMMENT ON COLUMN audiotricks.user_settings.openai_api_key_encrypted IS 'Encrypted OpenAI API key (AES-256-GCM; never readable by application roles)';
COMMENT ON COLUMN audiotricks.user_settings.elevenlabs_api_key_encrypted IS 'Encrypted ElevenLabs API key (AES-256-GCM; never readable by application roles)';
COMMENT ON COLUMN audiotricks.user_settings.preferred_language IS
    'Language preference: a language tag such as en or pt-BR; also the search language of history entries without processing_options.language';
COMMENT ON COLUMN audiotricks.user_settings.summary_quality IS
    'Summary generation quality: fast, balanced or detailed';
COMMENT ON COLUMN audiotricks.user_settings.settings_json IS
    'Additional settings: theme string, autoSave boolean, notifications {email, browser: boolean}, audioDefaults {format, quality: string}; other keys allowed';
COMMENT ON COLUMN audiotricks.user_settings.updated_at IS 'Last update time';
SELECT pg_catalog.pg_extension_config_dump('audiotricks.user_settings', '');

ALTER TABLE audiotricks.user_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE audiotricks.user_settings FORCE ROW LEVEL SECURITY;
CREATE POLICY user_settings_own ON audiotricks.user_settings
    USING (user_id OPERATOR(pg_catalog.=) (SELECT audiotricks.at_current_user_id()))
    WITH CHECK (user_id OPERATOR(pg_catalog.=) (SELECT audiotricks.at_current_user_id()));

REVOKE ALL ON audiotricks.user_settings FROM PUBLIC;
GRANT SELECT (user_id, preferred_language, summary_quality, settings_json, updated_at)
    ON audiotricks.user_settings TO audiotricks_user;
GRANT UPDATE (preferred_language, summary_quality, settings_json)
    ON audiotricks.user_settings TO audiotricks_user;

-- audio_history -------------------------------------------------------------
-- Default of search_config.  It reads user_settings, so it comes after that
-- table.  The SQL functions have SQL-standard bodies (BEGIN ATOMIC): parsed
-- once, here, and stored with the OIDs of what they use, so that a schema
-- renamed later and replaced by someone else's audiotricks never changes
-- what they read or write (a body in quotes is parsed by name at every first
-- call).
CREATE FUNCTION audiotricks_internal.at_default_search_config() RETURNS text
    LANGUAGE SQL STABLE PARALLEL RESTRICTED
BEGIN ATOMIC
SELECT audiotricks_internal.at_search_config(
    (SELECT s.preferred_language::pg_catalog.text FROM audiotricks.user_settings s
      WHERE s.user_id OPERATOR(pg_catalog.=) audiotricks.at_current_user_id()));
END;
COMMENT ON FUNCTION audiotricks_internal.at_default_search_config() IS
    'Default of audio_history.search_config: the schema-qualified name of the configuration of the current user''s preferred_language, or pg_catalog.simple without identity.';

-- search_config is fixed when the entry is written (the writer's
-- preferred_language; processing_options.language wins when given);
-- search_tsv is derived from it.  Neither is writable by application roles.
CREATE TABLE audiotricks.audio_history (
    id                  uuid            NOT NULL DEFAULT audiotricks.at_uuid_v7(),
    user_id             uuid            NOT NULL DEFAULT audiotricks.at_current_user_id(),
    title               varchar(500),
    audio_url           text,
    file_size_bytes     bigint,
    duration_seconds    integer,
    transcript          text,
    summary             text,
    key_moments         jsonb,
    processing_options  jsonb,
    created_at          timestamptz     NOT NULL DEFAULT pg_catalog.now(),
    search_config       text            NOT NULL
        DEFAULT audiotricks_internal.at_default_search_config(),
    search_tsv          tsvector        NOT NULL
        GENERATED ALWAYS AS (audiotricks_internal.at_history_tsv(search_config, processing_options,
                                                        title, summary, transcript)) STORED,
    CONSTRAINT audio_history_pkey PRIMARY KEY (id),
    CONSTRAINT audio_history_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES audiotricks.users (id) ON DELETE CASCADE,
    CONSTRAINT audio_history_audio_url_check
        CHECK (audiotricks.at_check_audio_url(audio_url)),
    CONSTRAINT audio_history_file_size_bytes_check
        CHECK (file_size_bytes OPERATOR(pg_catalog.>=) 0),
    CONSTRAINT audio_history_duration_seconds_check
        CHECK (duration_seconds OPERATOR(pg_catalog.>=) 0),
    CONSTRAINT audio_history_key_moments_check
        CHECK (audiotricks.at_check_key_moments(key_moments)),
    CONSTRAINT audio_history_processing_options_check
        CHECK (audiotricks.at_check_processing_options(processing_options)),
    CONSTRAINT audio_history_transcript_check
        CHECK (audiotricks.at_check_transcript(transcript)),
    CONSTRAINT audio_history_summary_check
        CHECK (audiotricks.at_check_summary(summary))
);
CREATE INDEX audio_history_user_created_idx
    ON audiotricks.audio_history (user_id, created_at DESC, id DESC);
-- btree_gin puts user_id in the same GIN index, so a search reads only the
-- caller's matching entries.
CREATE INDEX audio_history_search_idx
    ON audiotricks.audio_history USING gin (user_id, search_tsv);
-- The languages of a user's entries, so that at_history_search parses the
-- query only in those (src/history_search.c, user_configs).
CREATE INDEX audio_history_config_idx
    ON audiotricks.audio_history
    (user_id, audiotricks_internal.at_history_tsv_config(search_config, processing_options));
CREATE TRIGGER audio_history_audit_delete AFTER DELETE ON audiotricks.audio_history
    REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION audiotricks.at_audit_history_delete();

COMMENT ON TABLE audiotricks.audio_history IS 'Tracks audio processing history for users.';
COMMENT ON COLUMN audiotricks.audio_history.id IS 'History entry identifier';
COMMENT ON COLUMN audiotricks.audio_history.user_id IS 'Reference to users.id (defaults to the current user)';
COMMENT ON COLUMN audiotricks.audio_history.title IS 'Audio title/filename';
COMMENT ON COLUMN audiotricks.audio_history.audio_url IS 'Source audio URL';
COMMENT ON COLUMN audiotricks.audio_history.file_size_bytes IS 'File size in bytes';
COMMENT ON COLUMN audiotricks.audio_history.duration_seconds IS 'Audio duration';
COMMENT ON COLUMN audiotricks.audio_history.transcript IS 'Full transcription';
COMMENT ON COLUMN audiotricks.audio_history.summary IS 'Generated summary';
COMMENT ON COLUMN audiotricks.audio_history.key_moments IS 'Key moments data';
COMMENT ON COLUMN audiotricks.audio_history.processing_options IS 'Processing settings used';
COMMENT ON COLUMN audiotricks.audio_history.created_at IS 'Processing time';
COMMENT ON COLUMN audiotricks.audio_history.search_config IS
    'Extra column: schema-qualified name of the text search configuration of the entry''s language when it was written, such as pg_catalog.english (processing_options.language wins over this)';
COMMENT ON COLUMN audiotricks.audio_history.search_tsv IS
    'Extra column, generated: the full-text search document (title A, summary B, transcript C) that at_history_search matches';
SELECT pg_catalog.pg_extension_config_dump('audiotricks.audio_history', '');

ALTER TABLE audiotricks.audio_history ENABLE ROW LEVEL SECURITY;
ALTER TABLE audiotricks.audio_history FORCE ROW LEVEL SECURITY;
CREATE POLICY audio_history_own ON audiotricks.audio_history
    USING (user_id OPERATOR(pg_catalog.=) (SELECT audiotricks.at_current_user_id()))
    WITH CHECK (user_id OPERATOR(pg_catalog.=) (SELECT audiotricks.at_current_user_id()));

REVOKE ALL ON audiotricks.audio_history FROM PUBLIC;
GRANT SELECT, DELETE ON audiotricks.audio_history TO audiotricks_user;
GRANT INSERT (user_id, title, audio_url, file_size_bytes, duration_seconds,
              transcript, summary, key_moments, processing_options)
    ON audiotricks.audio_history TO audiotricks_user;
GRANT UPDATE (title, audio_url, file_size_bytes, duration_seconds,
              transcript, summary, key_moments, processing_options)
    ON audiotricks.audio_history TO audiotricks_user;

-- audit_log -----------------------------------------------------------------
-- The audit trail of account events (src/audit.c).
CREATE TABLE audiotricks.audit_log (
    id              uuid            NOT NULL DEFAULT audiotricks.at_uuid_v7(),
    user_id         uuid,
    session_id      uuid,
    event           text            NOT NULL,
    detail          jsonb           NOT NULL DEFAULT '{}',
    client_addr     inet,
    created_at      timestamptz     NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT audit_log_pkey PRIMARY KEY (id),
    CONSTRAINT audit_log_event_check
        CHECK (event OPERATOR(pg_catalog.~) '^[a-z_]{1,32}$')
);
CREATE INDEX audit_log_user_created_idx ON audiotricks.audit_log (user_id, created_at DESC);
CREATE INDEX audit_log_created_idx ON audiotricks.audit_log (created_at);

COMMENT ON TABLE audiotricks.audit_log IS 'Append-only trail of account events. Never holds a password, token, key or plaintext.';
COMMENT ON COLUMN audiotricks.audit_log.id IS 'Event identifier (time-ordered)';
COMMENT ON COLUMN audiotricks.audit_log.user_id IS 'The user the event is about; no foreign key, so events outlive the user (set to NULL when the account is deleted)';
COMMENT ON COLUMN audiotricks.audit_log.session_id IS 'The session involved, if any';
COMMENT ON COLUMN audiotricks.audit_log.event IS 'What happened: registered, login, login_failed, login_throttled, logout, logout_session, logout_all, refresh, refresh_reuse, password_changed, api_key_set, api_key_cleared, keys_rotated, history_deleted, account_deactivated, account_deleted';
COMMENT ON COLUMN audiotricks.audit_log.detail IS 'Small JSON detail from fixed strings (never secrets)';
COMMENT ON COLUMN audiotricks.audit_log.client_addr IS 'Client IP address of the connection, if TCP';
COMMENT ON COLUMN audiotricks.audit_log.created_at IS 'When it happened';
SELECT pg_catalog.pg_extension_config_dump('audiotricks.audit_log', '');

-- users read their own events; nobody but the owner writes, changes or deletes
ALTER TABLE audiotricks.audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audiotricks.audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_log_read_own ON audiotricks.audit_log FOR SELECT
    USING (user_id OPERATOR(pg_catalog.=) (SELECT audiotricks.at_current_user_id()));

REVOKE ALL ON audiotricks.audit_log FROM PUBLIC;
GRANT SELECT ON audiotricks.audit_log TO audiotricks_user;

------------------------------------------------------------------------------
-- 5. Functions by area
------------------------------------------------------------------------------

------------------------------------------------------------------------------
-- 5a. Identity (src/identity.c, src/token.c)
--
-- at_current_user_id (section 3) and the functions below take no
-- SECURITY DEFINER and no SET clause: the token check (at_authenticate,
-- at_current_user_id, at_postgrest_pre_request) reads the session index
-- directly, which keeps the hot path free of a GUC save/restore.
------------------------------------------------------------------------------
CREATE FUNCTION audiotricks.at_authenticate(token text)
    RETURNS uuid
    LANGUAGE C VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'at_authenticate';
COMMENT ON FUNCTION audiotricks.at_authenticate(text) IS
    'Verifies a session token (signature, expiry, live session, active user) and makes its user the identity of this transaction; returns the user id.';

CREATE FUNCTION audiotricks.at_postgrest_pre_request()
    RETURNS void
    LANGUAGE C VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'at_postgrest_pre_request';
COMMENT ON FUNCTION audiotricks.at_postgrest_pre_request() IS
    'PostgREST db-pre-request hook: raises 28000 when the request''s bearer token is bad, expired or revoked.';

CREATE FUNCTION audiotricks.at_require_user_id() RETURNS uuid
    LANGUAGE C STABLE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'at_require_user_id';
COMMENT ON FUNCTION audiotricks.at_require_user_id() IS
    'The user id of this transaction''s verified identity; raises 42501 "not authenticated" without one.';

------------------------------------------------------------------------------
-- 5b. Accounts and sessions (src/accounts.c, src/session.c, src/password.c)
--
-- Functions that read or write other users' rows (a login must find the
-- user before anyone is authenticated) run as the extension's owner, the
-- superuser who created it, with search_path pinned.  Those that need no
-- identity (at_register, at_login, at_refresh, the maintenance functions of
-- 5e) are SECURITY DEFINER.  Those that act for the identity (at_logout,
-- at_logout_all, at_change_password, at_list_sessions, at_logout_session,
-- at_deactivate_account, at_delete_account, at_set_api_key, at_get_api_key)
-- are not: SECURITY DEFINER would hide who called them, and the identity is
-- bound to the role that established it, so they switch to the owner in C
-- (IdentityCallAsOwner, src/identity.c) after noting their caller; another
-- role's SECURITY DEFINER code calling them finds no identity.
------------------------------------------------------------------------------
CREATE FUNCTION audiotricks.at_register(email text, username text, password text)
    RETURNS uuid
    LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_register';
COMMENT ON FUNCTION audiotricks.at_register(text, text, text) IS
    'Validates and creates a user (bcrypt at audiotricks.bcrypt_cost) and their user_settings row; returns the user id. Called by anonymous clients.';

CREATE FUNCTION audiotricks.at_login(login text, password text)
    RETURNS TABLE(token text, user_id uuid, session_id uuid, expires_at timestamptz)
    LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    ROWS 1
    AS 'MODULE_PATHNAME', 'at_login';
COMMENT ON FUNCTION audiotricks.at_login(text, text) IS
    'Checks an email or username and password; issues an HS256 session token and records its SHA-256 in sessions. Called by anonymous clients.';

CREATE FUNCTION audiotricks.at_refresh(token text)
    RETURNS TABLE(token text, user_id uuid, session_id uuid, expires_at timestamptz)
    LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    ROWS 1
    AS 'MODULE_PATHNAME', 'at_refresh';
COMMENT ON FUNCTION audiotricks.at_refresh(text) IS
    'Exchanges a valid token for a new one (same user and session family) and ends the old session; reuse of a refreshed token ends the whole family.';

CREATE FUNCTION audiotricks.at_logout(token text DEFAULT NULL)
    RETURNS boolean
    LANGUAGE C VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_logout';
COMMENT ON FUNCTION audiotricks.at_logout(text) IS
    'Ends the given token''s session, or with no argument the current one; false when there was no live session.';

CREATE FUNCTION audiotricks.at_logout_all()
    RETURNS integer
    LANGUAGE C VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_logout_all';
COMMENT ON FUNCTION audiotricks.at_logout_all() IS
    'Ends every session of the current user; returns how many.';

CREATE FUNCTION audiotricks.at_logout_session(session_id uuid)
    RETURNS boolean
    LANGUAGE C VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_logout_session';
COMMENT ON FUNCTION audiotricks.at_logout_session(uuid) IS
    'Ends one of the current user''s sessions; false when it is not theirs or not live.';

CREATE FUNCTION audiotricks.at_list_sessions()
    RETURNS TABLE(id uuid, created_at timestamptz, expires_at timestamptz, is_current boolean)
    LANGUAGE C STABLE PARALLEL RESTRICTED
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_list_sessions';
COMMENT ON FUNCTION audiotricks.at_list_sessions() IS
    'The current user''s live sessions, newest first, and which one is the current one.';

CREATE FUNCTION audiotricks.at_change_password(current_password text, new_password text)
    RETURNS void
    LANGUAGE C VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_change_password';
COMMENT ON FUNCTION audiotricks.at_change_password(text, text) IS
    'Checks the current password, stores a new bcrypt hash, and ends the user''s other sessions.';

CREATE FUNCTION audiotricks.at_deactivate_account(password text)
    RETURNS void
    LANGUAGE C VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_deactivate_account';
COMMENT ON FUNCTION audiotricks.at_deactivate_account(text) IS
    'Checks the password, deactivates the current user and ends all their sessions.';

CREATE FUNCTION audiotricks.at_delete_account(password text)
    RETURNS void
    LANGUAGE C VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_delete_account';
COMMENT ON FUNCTION audiotricks.at_delete_account(text) IS
    'Checks the password and deletes the current user with everything of theirs; their audit events stay, without user id or address.';

------------------------------------------------------------------------------
-- 5c. Settings and encrypted API keys (src/keys.c)
--
-- The settings functions are SQL functions that run as the caller, so the
-- policy applies (direct SELECT/UPDATE of these columns works as well).
--
-- API keys: AES-256-GCM under master keys read from audiotricks.key_file
-- (README, "Encrypted API keys").  Who may call what:
--   at_set_api_key, at_get_api_key  audiotricks_user: only the caller's own
--       keys, bound to user and provider; they read the encrypted columns,
--       granted to no application role, as the extension owner (switched to
--       in C, not SECURITY DEFINER: see 5b).
--   at_encrypt_key, at_decrypt_key  superusers only (granted to nobody): the
--       raw pair decrypts anything sealed with it, so an application role must
--       not hold it.  Values of at_set_api_key never open here anyway (another
--       domain in the associated data).
--   at_rotate_api_keys (5e)         superusers only (operations, after adding
--       a new current key): SECURITY DEFINER so it can be granted to an
--       operations role that must see every row.
------------------------------------------------------------------------------
CREATE FUNCTION audiotricks.at_get_settings()
    RETURNS TABLE(preferred_language text, summary_quality text,
                  settings_json jsonb, updated_at timestamptz)
    LANGUAGE SQL STABLE PARALLEL RESTRICTED ROWS 1
BEGIN ATOMIC
SELECT s.preferred_language::pg_catalog.text, s.summary_quality::pg_catalog.text,
       s.settings_json, s.updated_at
  FROM audiotricks.user_settings s
 WHERE s.user_id OPERATOR(pg_catalog.=) (SELECT audiotricks.at_require_user_id());
END;
COMMENT ON FUNCTION audiotricks.at_get_settings() IS
    'The current user''s preferred_language, summary_quality, settings_json and updated_at; 42501 without identity.';

CREATE FUNCTION audiotricks.at_update_settings(
        preferred_language text DEFAULT NULL,
        summary_quality text DEFAULT NULL,
        settings_json jsonb DEFAULT NULL)
    RETURNS TABLE(preferred_language text, summary_quality text,
                  settings_json jsonb, updated_at timestamptz)
    LANGUAGE SQL VOLATILE PARALLEL UNSAFE ROWS 1
BEGIN ATOMIC
UPDATE audiotricks.user_settings s
   SET preferred_language = COALESCE($1, s.preferred_language),
       summary_quality = COALESCE($2, s.summary_quality),
       settings_json = COALESCE($3, s.settings_json)
 WHERE s.user_id OPERATOR(pg_catalog.=) (SELECT audiotricks.at_require_user_id())
   AND audiotricks.at_check_settings_json($3) IS NOT FALSE
RETURNING s.preferred_language::pg_catalog.text, s.summary_quality::pg_catalog.text,
          s.settings_json, s.updated_at;
END;
COMMENT ON FUNCTION audiotricks.at_update_settings(text, text, jsonb) IS
    'Sets the given settings of the current user (NULL leaves one unchanged; settings_json is replaced whole) and returns them; 42501 without identity, 23514 or 22001 for invalid values.';

CREATE FUNCTION audiotricks.at_set_api_key(provider text, api_key text)
    RETURNS void
    LANGUAGE C VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_set_api_key';
COMMENT ON FUNCTION audiotricks.at_set_api_key(text, text) IS
    'Stores the current user''s API key for provider (openai or elevenlabs), encrypted and bound to user and provider; NULL clears it. Called by signed-in users.';

CREATE FUNCTION audiotricks.at_get_api_key(provider text)
    RETURNS text
    LANGUAGE C STABLE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_get_api_key';
COMMENT ON FUNCTION audiotricks.at_get_api_key(text) IS
    'The current user''s plaintext API key for provider (openai or elevenlabs), or NULL. Called by signed-in users.';

CREATE FUNCTION audiotricks.at_encrypt_key(plaintext text, context text DEFAULT '')
    RETURNS text
    LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'at_encrypt_key';
COMMENT ON FUNCTION audiotricks.at_encrypt_key(text, text) IS
    'AES-256-GCM of plaintext under the current master key with a fresh nonce; context is bound as associated data. Returns at1.<key id>.<fingerprint>.<nonce>.<ciphertext>. Superusers only.';

-- STABLE: the same value within a statement (the key file is looked at again
-- only between statements); PostgREST also serves STABLE functions over GET.
CREATE FUNCTION audiotricks.at_decrypt_key(ciphertext text, context text DEFAULT '')
    RETURNS text
    LANGUAGE C STABLE STRICT PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'at_decrypt_key';
COMMENT ON FUNCTION audiotricks.at_decrypt_key(text, text) IS
    'Inverse of at_encrypt_key with the same context; fails (22P02, 55000, 22000) on a malformed value, an unknown or different key, a wrong context or tampering. Superusers only.';

------------------------------------------------------------------------------
-- 5d. Audio history (src/history_*.c, src/validate.c)
--
-- The history functions touch only the caller's rows and run as the caller
-- (SECURITY INVOKER).  at_history_add, at_history_count and
-- at_history_delete are SQL functions, so the policies apply to their
-- statements.  at_history_page and at_history_search are C functions: they
-- require SELECT on audio_history and read its indexes directly, restricted
-- to the verified identity (which is what the shipped policy allows):
-- at_history_page so that a page costs no planning, at_history_search
-- because the tsvector match operator is not leakproof and so could not use
-- the search index under a policy.  When the table carries any other policy
-- they run their query through SPI under row-level security instead
-- (src/history_page.c and src/history_search.c explain).
------------------------------------------------------------------------------
CREATE FUNCTION audiotricks_internal.at_check_history_sizes(transcript text, summary text,
                                                   key_moments jsonb, processing_options jsonb)
    RETURNS boolean
    LANGUAGE C IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'at_check_history_sizes';
COMMENT ON FUNCTION audiotricks_internal.at_check_history_sizes(text, text, jsonb, jsonb) IS
    'True when each non-NULL argument is within its column''s size limit; raises 23514 as that column''s CHECK constraint would otherwise. at_history_add calls it before it inserts, so an oversized entry is refused before its search document is made.';

CREATE FUNCTION audiotricks.at_history_add(
        title text DEFAULT NULL, audio_url text DEFAULT NULL,
        file_size_bytes bigint DEFAULT NULL, duration_seconds integer DEFAULT NULL,
        transcript text DEFAULT NULL, summary text DEFAULT NULL,
        key_moments jsonb DEFAULT NULL, processing_options jsonb DEFAULT NULL)
    RETURNS uuid
    LANGUAGE SQL VOLATILE PARALLEL UNSAFE
BEGIN ATOMIC
INSERT INTO audiotricks.audio_history
    (user_id, title, audio_url, file_size_bytes, duration_seconds,
     transcript, summary, key_moments, processing_options)
SELECT (SELECT audiotricks.at_require_user_id()), $1, $2, $3, $4, $5, $6, $7, $8
 WHERE audiotricks_internal.at_check_history_sizes($5, $6, $7, $8)
RETURNING id;
END;
COMMENT ON FUNCTION audiotricks.at_history_add(text, text, bigint, integer, text, text, jsonb, jsonb) IS
    'Adds a history entry for the current user and returns its id; raises 42501 without identity, 23514 or 22001 for invalid values (sizes are checked before the insert).';

-- The rows of at_history_page and at_history_search: the user-facing
-- columns of audio_history (not its search internals), the rank of a search
-- result and the row's cursor.
CREATE TYPE audiotricks.history_entry AS (
    id                  uuid,
    user_id             uuid,
    title               varchar(500),
    audio_url           text,
    file_size_bytes     bigint,
    duration_seconds    integer,
    transcript          text,
    summary             text,
    key_moments         jsonb,
    processing_options  jsonb,
    created_at          timestamptz,
    rank                real,
    cursor              text
);
COMMENT ON TYPE audiotricks.history_entry IS
    'A history entry as at_history_page and at_history_search return it: the columns of audio_history a user sees, rank (at_history_search: its ts_rank; at_history_page: NULL) and cursor (pass it back to continue after this row).';

-- Cursor paging in C (src/history_page.c, src/cursor.h): the call descends
-- the (user_id, created_at DESC, id DESC) index once, right after the
-- cursor's row, and stops after page_size rows, with nothing to parse or
-- plan, so a page costs the same at any depth and whether the caller's
-- statement gets a generic or a custom plan.  A cursor is opaque, URL-safe
-- text holding the row's exact sort key (microseconds, id), which a client's
-- own copy of created_at may not (a JavaScript Date keeps milliseconds).
-- It applies the shipped policy's rule (the identity's own rows) itself; if
-- an administrator adds policies of their own to audio_history it runs the
-- equivalent query under row-level security instead, so those apply too.
CREATE FUNCTION audiotricks.at_history_page(
        page_size integer DEFAULT 20,
        cursor text DEFAULT NULL)
    RETURNS SETOF audiotricks.history_entry
    LANGUAGE C STABLE PARALLEL RESTRICTED ROWS 20
    AS 'MODULE_PATHNAME', 'at_history_page';
COMMENT ON FUNCTION audiotricks.at_history_page(integer, text) IS
    'The current user''s history, newest first, each row with its cursor: pass a row''s cursor to continue after it (every row exactly once, also among rows sharing a created_at). page_size NULL means 20, outside 1-100 raises 22023; an invalid cursor (damaged, or of a search) raises 22023; 42501 without identity.';

CREATE FUNCTION audiotricks.at_history_count()
    RETURNS bigint
    LANGUAGE SQL STABLE PARALLEL RESTRICTED
BEGIN ATOMIC
SELECT pg_catalog.count(*) FROM audiotricks.audio_history h
 WHERE h.user_id OPERATOR(pg_catalog.=) (SELECT audiotricks.at_require_user_id());
END;
COMMENT ON FUNCTION audiotricks.at_history_count() IS
    'How many history entries the current user has (for page numbers); 42501 without identity.';

-- PARALLEL UNSAFE: it parses the query in a subtransaction, which a parallel
-- query does not allow.
CREATE FUNCTION audiotricks.at_history_search(query text, page_size integer DEFAULT 20,
                                              cursor text DEFAULT NULL)
    RETURNS SETOF audiotricks.history_entry
    LANGUAGE C STABLE PARALLEL UNSAFE ROWS 20
    AS 'MODULE_PATHNAME', 'at_history_search';
COMMENT ON FUNCTION audiotricks.at_history_search(text, integer, text) IS
    'Full-text search (web search syntax) over the current user''s titles, summaries and transcripts, best match first (rank DESC, then newest), each row with its rank and cursor: pass a row''s cursor with the same query to continue after it. 42501 without identity; 22023 for a page size outside 1-100, a query over 1000 characters, or an invalid cursor (damaged, of a page, or of another query).';

CREATE FUNCTION audiotricks.at_history_delete(id uuid)
    RETURNS boolean
    LANGUAGE SQL VOLATILE PARALLEL UNSAFE
BEGIN ATOMIC
WITH d AS (
    DELETE FROM audiotricks.audio_history h
     WHERE h.id OPERATOR(pg_catalog.=) $1
       AND h.user_id OPERATOR(pg_catalog.=) (SELECT audiotricks.at_require_user_id())
    RETURNING 1)
SELECT EXISTS (SELECT FROM d);
END;
COMMENT ON FUNCTION audiotricks.at_history_delete(uuid) IS
    'Deletes one of the current user''s history entries; true if it was deleted, false if there is no such entry of theirs; 42501 without identity.';

------------------------------------------------------------------------------
-- 5e. Administration and operations
--
-- For superusers or an operations role they are granted to; none is
-- executable by the application roles.  Schedule the purges with pg_cron.
------------------------------------------------------------------------------
CREATE FUNCTION audiotricks.at_purge_expired_sessions()
    RETURNS integer
    LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_purge_expired_sessions';
COMMENT ON FUNCTION audiotricks.at_purge_expired_sessions() IS
    'Deletes expired sessions and returns how many (schedule it with pg_cron); also forgets revoked families that have no session left. Not executable by application roles.';

CREATE FUNCTION audiotricks.at_purge_audit_log(older_than interval DEFAULT '1 year', batch_size integer DEFAULT 10000)
    RETURNS bigint
    LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_purge_audit_log';
COMMENT ON FUNCTION audiotricks.at_purge_audit_log(interval, integer) IS
    'Deletes audit events older than older_than, batch_size rows per statement; returns how many (schedule it with pg_cron). Not executable by application roles.';

CREATE FUNCTION audiotricks.at_rotate_api_keys(batch_size integer DEFAULT 1000)
    RETURNS TABLE(rotated bigint, remaining bigint)
    LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    ROWS 1
    AS 'MODULE_PATHNAME', 'at_rotate_api_keys';
COMMENT ON FUNCTION audiotricks.at_rotate_api_keys(integer) IS
    'Re-encrypts the stored API keys of up to batch_size rows under the current master key (skipping locked rows); returns values rotated and values still under other keys. Not executable by application roles.';

-- (src/admission.c)
CREATE FUNCTION audiotricks.at_password_checks(OUT running integer, OUT waiting integer)
    RETURNS record
    LANGUAGE C VOLATILE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'at_password_checks';
COMMENT ON FUNCTION audiotricks.at_password_checks() IS
    'Password hashes (bcrypt) running now and callers waiting for a place under audiotricks.max_concurrent_password_checks; NULLs without shared_preload_libraries. Superusers and pg_monitor only.';

------------------------------------------------------------------------------
-- 6. Function privileges
--
-- Nothing is executable by PUBLIC.  audiotricks_anon may register, log in,
-- refresh and check and end a token.  audiotricks_user holds all of that and
-- everything a signed-in user calls, and also the helpers that column
-- defaults, CHECK constraints, the generated column, index expressions and
-- the SQL functions run with the caller's privileges.  Not granted to any
-- role: at_check_preload, the trigger functions, at_encrypt_key,
-- at_decrypt_key and the functions of 5e (at_password_checks goes to
-- pg_monitor).
------------------------------------------------------------------------------
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA audiotricks FROM PUBLIC;

GRANT EXECUTE ON FUNCTION
    audiotricks.at_current_user_id(),
    audiotricks.at_authenticate(text),
    audiotricks.at_postgrest_pre_request(),
    audiotricks.at_register(text, text, text),
    audiotricks.at_login(text, text),
    audiotricks.at_refresh(text),
    audiotricks.at_logout(text)
    TO audiotricks_anon;

GRANT EXECUTE ON FUNCTION
    -- section 3
    audiotricks.at_uuid_v7(),
    audiotricks.at_current_user_id(),
    audiotricks.at_check_key_moments(jsonb),
    audiotricks.at_check_processing_options(jsonb),
    audiotricks.at_check_settings_json(jsonb),
    audiotricks.at_check_audio_url(text),
    audiotricks.at_check_transcript(text),
    audiotricks.at_check_summary(text),
    -- 5a identity
    audiotricks.at_authenticate(text),
    audiotricks.at_postgrest_pre_request(),
    audiotricks.at_require_user_id(),
    -- 5b accounts and sessions
    audiotricks.at_register(text, text, text),
    audiotricks.at_login(text, text),
    audiotricks.at_refresh(text),
    audiotricks.at_logout(text),
    audiotricks.at_logout_all(),
    audiotricks.at_logout_session(uuid),
    audiotricks.at_list_sessions(),
    audiotricks.at_change_password(text, text),
    audiotricks.at_deactivate_account(text),
    audiotricks.at_delete_account(text),
    -- 5c settings and API keys
    audiotricks.at_get_settings(),
    audiotricks.at_update_settings(text, text, jsonb),
    audiotricks.at_set_api_key(text, text),
    audiotricks.at_get_api_key(text),
    -- 5d history
    audiotricks.at_history_add(text, text, bigint, integer, text, text, jsonb, jsonb),
    audiotricks.at_history_page(integer, text),
    audiotricks.at_history_count(),
    audiotricks.at_history_search(text, integer, text),
    audiotricks.at_history_delete(uuid)
    TO audiotricks_user;

GRANT EXECUTE ON FUNCTION audiotricks.at_password_checks() TO pg_monitor;

-- History search helpers in audiotricks_internal (section 3 and 5d): the
-- generated column, the index expression, search_config's default and
-- at_history_add run them as the role that writes the row.
REVOKE ALL ON FUNCTION
    audiotricks_internal.at_search_config(text),
    audiotricks_internal.at_history_tsv(text, jsonb, text, text, text),
    audiotricks_internal.at_history_tsv_config(text, jsonb),
    audiotricks_internal.at_default_search_config(),
    audiotricks_internal.at_check_history_sizes(text, text, jsonb, jsonb)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    audiotricks_internal.at_search_config(text),
    audiotricks_internal.at_history_tsv(text, jsonb, text, text, text),
    audiotricks_internal.at_history_tsv_config(text, jsonb),
    audiotricks_internal.at_default_search_config(),
    audiotricks_internal.at_check_history_sizes(text, text, jsonb, jsonb)
    TO audiotricks_user;
