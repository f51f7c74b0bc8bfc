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

-- The two other schemas, audiotricks_internal (helpers that constraints,
-- defaults and triggers call) and audiotricks_api (what PostgREST exposes),
-- are created by this script and so belong to the extension: DROP EXTENSION
-- drops them and pg_dump does not dump them.  Any schema of either name that
-- exists already is therefore someone else's and is refused, with the same
-- error as a squatted audiotricks (CREATE SCHEMA alone would say only
-- "already exists").
DO $schemas$
DECLARE
    n text;
BEGIN
    FOREACH n IN ARRAY ARRAY['audiotricks_internal', 'audiotricks_api'] LOOP
        IF EXISTS (SELECT FROM pg_catalog.pg_namespace
                    WHERE nspname OPERATOR(pg_catalog.=) n) THEN
            RAISE EXCEPTION 'schema "%" already exists and is not the extension''s own', n
                USING ERRCODE = 'duplicate_schema',
                      DETAIL = 'CREATE EXTENSION audiotricks creates it, and DROP EXTENSION drops it, so one that exists was made by someone else.',
                      HINT = 'Drop or rename the existing schema first (after checking what it holds and who created it).';
        END IF;
    END LOOP;
END
$schemas$;

CREATE SCHEMA audiotricks_internal;
REVOKE ALL ON SCHEMA audiotricks_internal FROM PUBLIC;
COMMENT ON SCHEMA audiotricks_internal IS
    'audiotricks: helpers that constraints, defaults, generated columns and triggers call; not an API.';

CREATE SCHEMA audiotricks_api;
REVOKE ALL ON SCHEMA audiotricks_api FROM PUBLIC;
COMMENT ON SCHEMA audiotricks_api IS
    'AudioTricks API: the views and functions a signed-in or anonymous client may use (the schema PostgREST exposes). Every row is the caller''s own.';

-- Refuse to install unless the library is in shared_preload_libraries: its
-- secret settings are only safe, and its shared state only exists, then.
CREATE FUNCTION audiotricks_internal.at_check_preload() RETURNS void
    LANGUAGE C VOLATILE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'at_check_preload';
COMMENT ON FUNCTION audiotricks_internal.at_check_preload() IS
    'Raises 55000 unless audiotricks is in shared_preload_libraries; run by the install script.';
SELECT audiotricks_internal.at_check_preload();

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
-- index expressions and triggers call live in audiotricks_internal (created
-- in section 1), so that the schema PostgREST exposes lists only the API.
-- The application roles need USAGE there to write rows; nothing in it is an
-- API.  audiotricks_api is the schema PostgREST exposes (section 7).
GRANT USAGE ON SCHEMA audiotricks_internal TO audiotricks_anon, audiotricks_user;
GRANT USAGE ON SCHEMA audiotricks_api TO audiotricks_anon, audiotricks_user;

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
CREATE FUNCTION audiotricks_internal.at_touch_updated_at() RETURNS trigger
    LANGUAGE C
    AS 'MODULE_PATHNAME', 'at_touch_updated_at';
COMMENT ON FUNCTION audiotricks_internal.at_touch_updated_at() IS
    'BEFORE UPDATE trigger: sets updated_at to the transaction timestamp.';

-- Deactivating a user ends their sessions in the same transaction, whatever
-- the path (at_deactivate_account or an administrator's UPDATE), so that the
-- token check reads only sessions.  Reactivation does not revive them.
CREATE FUNCTION audiotricks_internal.at_end_sessions_on_deactivate() RETURNS trigger
    LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_end_sessions_on_deactivate';
COMMENT ON FUNCTION audiotricks_internal.at_end_sessions_on_deactivate() IS
    'AFTER UPDATE OF is_active row trigger on users: deletes the sessions of a user who becomes inactive.';

CREATE FUNCTION audiotricks_internal.at_revoked_families_changed() RETURNS trigger
    LANGUAGE C
    AS 'MODULE_PATHNAME', 'at_revoked_families_changed';
COMMENT ON FUNCTION audiotricks_internal.at_revoked_families_changed() IS
    'Statement trigger on revoked_families: every backend re-reads the table (the token check keeps a copy) once the change commits.';

-- Deleting history is audited once per statement, whatever the path
-- (at_history_delete, PostgREST DELETE /audio_history, plain SQL).
CREATE FUNCTION audiotricks_internal.at_audit_history_delete() RETURNS trigger
    LANGUAGE C
    AS 'MODULE_PATHNAME', 'at_audit_history_delete';
COMMENT ON FUNCTION audiotricks_internal.at_audit_history_delete() IS
    'AFTER DELETE statement trigger on audio_history: records a history_deleted audit event.';

-- Every INSERT, UPDATE and DELETE on users, user_settings and audio_history
-- is audited row by row (src/audit_trigger.c): table, row id, operation and
-- the names of the columns set, never their values.
CREATE FUNCTION audiotricks_internal.at_audit_row() RETURNS trigger
    LANGUAGE C
    AS 'MODULE_PATHNAME', 'at_audit_row';
COMMENT ON FUNCTION audiotricks_internal.at_audit_row() IS
    'AFTER INSERT OR UPDATE OR DELETE row trigger (arguments: the user column, the id column, the table''s name, which a partition''s copy of the trigger keeps): records a data_changed audit event in the user''s chain, as the extension''s owner.';

CREATE FUNCTION audiotricks_internal.at_audit_chain_head() RETURNS trigger
    LANGUAGE C
    AS 'MODULE_PATHNAME', 'at_audit_chain_head';
COMMENT ON FUNCTION audiotricks_internal.at_audit_chain_head() IS
    'Deferred AFTER INSERT row trigger on audit_log: at commit, moves the chain''s head (audit_chain_heads) to its last event.';

-- Validation (src/validate.c).  Validation lives in table constraints, so
-- at_history_add, a direct INSERT or UPDATE (PostgREST's POST/PATCH
-- /audio_history) and at_update_settings are all covered.  The JSONB checks
-- raise 23514 naming the offending key; keys the seed does not list are
-- allowed.
CREATE FUNCTION audiotricks_internal.at_check_key_moments(key_moments jsonb) RETURNS boolean
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'at_check_key_moments';
COMMENT ON FUNCTION audiotricks_internal.at_check_key_moments(jsonb) IS
    'True for an array of {timestamp "HH:MM:SS", description string, confidence number 0..1 (optional)}, at most 256 kB (262144 bytes); raises 23514 naming the element and key otherwise. Used by a CHECK constraint.';

CREATE FUNCTION audiotricks_internal.at_check_processing_options(processing_options jsonb) RETURNS boolean
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'at_check_processing_options';
COMMENT ON FUNCTION audiotricks_internal.at_check_processing_options(jsonb) IS
    'True for an object whose listed keys have their types (language, model, summaryStyle: string; includeTimestamps, speakerDiarization: boolean), at most 64 kB (65536 bytes); raises 23514 naming the key otherwise. Used by a CHECK constraint.';

CREATE FUNCTION audiotricks_internal.at_check_settings_json(settings_json jsonb) RETURNS boolean
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'at_check_settings_json';
COMMENT ON FUNCTION audiotricks_internal.at_check_settings_json(jsonb) IS
    'True for an object whose listed keys have their types (theme: string; autoSave: boolean; notifications: {email, browser: boolean}; audioDefaults: {format, quality: string}), at most 16 kB (16384 bytes); raises 23514 naming the key otherwise. Used by a CHECK constraint.';

CREATE FUNCTION audiotricks_internal.at_check_audio_url(audio_url text) RETURNS boolean
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'at_check_audio_url';
COMMENT ON FUNCTION audiotricks_internal.at_check_audio_url(text) IS
    'True for an http or https URL with a host, without whitespace, at most 2048 characters; raises 23514 otherwise. Used by a CHECK constraint.';

-- The simple rules (a comparison, a list, a pattern) are CHECK constraints
-- of the form at_check_rule(<rule holds>, table, column, constraint, rule),
-- so that a violation says which field broke which rule, with the table,
-- column and constraint in the error's fields.
CREATE FUNCTION audiotricks_internal.at_check_rule(passes boolean, table_name text, column_name text,
                                                   constraint_name text, rule text)
    RETURNS boolean
    LANGUAGE C IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'at_check_rule';
COMMENT ON FUNCTION audiotricks_internal.at_check_rule(boolean, text, text, text, text) IS
    'True when passes is true or NULL; otherwise raises 23514 "<column_name> <rule>" with schema, table, column and constraint set in the error. Used by CHECK constraints.';

-- Size limits in bytes (octet_length for text, the binary form for jsonb;
-- README, "Validation"): checked from the value's header, before anything
-- is detoasted or parsed.
CREATE FUNCTION audiotricks_internal.at_check_transcript(transcript text) RETURNS boolean
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'at_check_transcript';
COMMENT ON FUNCTION audiotricks_internal.at_check_transcript(text) IS
    'True for a transcript of at most 8 MiB (8388608 bytes); raises 23514 naming the column and the limit otherwise. Used by a CHECK constraint.';

CREATE FUNCTION audiotricks_internal.at_check_summary(summary text) RETURNS boolean
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'at_check_summary';
COMMENT ON FUNCTION audiotricks_internal.at_check_summary(text) IS
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
    -- extra column: when the email address was proven (at_verify_email)
    email_verified_at timestamptz,
    CONSTRAINT users_pkey PRIMARY KEY (id),
    CONSTRAINT users_email_check
        CHECK (email OPERATOR(pg_catalog.~) '^[^@[:space:][:cntrl:]]+@[^@[:space:][:cntrl:]]+$'),
    CONSTRAINT users_username_check
        CHECK (username OPERATOR(pg_catalog.~) '^[A-Za-z0-9_-]{1,100}$')
);
CREATE UNIQUE INDEX users_email_key ON audiotricks.users (pg_catalog.lower(email));
CREATE UNIQUE INDEX users_username_key ON audiotricks.users (pg_catalog.lower(username));
CREATE TRIGGER users_touch_updated_at BEFORE UPDATE ON audiotricks.users
    FOR EACH ROW EXECUTE FUNCTION audiotricks_internal.at_touch_updated_at();
CREATE TRIGGER users_end_sessions_on_deactivate
    AFTER UPDATE OF is_active ON audiotricks.users
    FOR EACH ROW WHEN (OLD.is_active AND NOT NEW.is_active)
    EXECUTE FUNCTION audiotricks_internal.at_end_sessions_on_deactivate();
CREATE TRIGGER users_audit AFTER INSERT OR UPDATE OR DELETE ON audiotricks.users
    FOR EACH ROW EXECUTE FUNCTION audiotricks_internal.at_audit_row('id', 'id', 'users');

COMMENT ON TABLE audiotricks.users IS 'Stores user account information.';
COMMENT ON COLUMN audiotricks.users.id IS 'Unique user identifier';
COMMENT ON COLUMN audiotricks.users.email IS 'User''s email address (unique, case-insensitively)';
COMMENT ON COLUMN audiotricks.users.username IS 'Display username (unique, case-insensitively; ASCII letters, digits, _ and -)';
COMMENT ON COLUMN audiotricks.users.password_hash IS 'bcrypt hashed password (never readable by application roles)';
COMMENT ON COLUMN audiotricks.users.created_at IS 'Account creation time';
COMMENT ON COLUMN audiotricks.users.updated_at IS 'Last modification time';
COMMENT ON COLUMN audiotricks.users.last_login_at IS 'Last successful login';
COMMENT ON COLUMN audiotricks.users.is_active IS 'Account active status';
COMMENT ON COLUMN audiotricks.users.email_verified_at IS 'When the current email address was verified; NULL while it is not';
SELECT pg_catalog.pg_extension_config_dump('audiotricks.users', '');

ALTER TABLE audiotricks.users ENABLE ROW LEVEL SECURITY;
ALTER TABLE audiotricks.users FORCE ROW LEVEL SECURITY;
CREATE POLICY users_own ON audiotricks.users
    USING (id OPERATOR(pg_catalog.=) (SELECT audiotricks.at_current_user_id()))
    WITH CHECK (id OPERATOR(pg_catalog.=) (SELECT audiotricks.at_current_user_id()));

REVOKE ALL ON audiotricks.users FROM PUBLIC;
GRANT SELECT (id, email, username, created_at, updated_at, last_login_at, is_active,
              email_verified_at)
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
    FOR EACH STATEMENT EXECUTE FUNCTION audiotricks_internal.at_revoked_families_changed();

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
    openai_api_key_set_at           timestamptz,
    elevenlabs_api_key_set_at       timestamptz,
    CONSTRAINT user_settings_pkey PRIMARY KEY (user_id),
    CONSTRAINT user_settings_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES audiotricks.users (id) ON DELETE CASCADE,
    CONSTRAINT user_settings_preferred_language_check
        CHECK (audiotricks_internal.at_check_rule(
            preferred_language OPERATOR(pg_catalog.~) '^[A-Za-z]{2,3}([_-][A-Za-z0-9]{1,8})*$',
            'user_settings', 'preferred_language', 'user_settings_preferred_language_check',
            'must be a language tag such as en or pt-BR')),
    CONSTRAINT user_settings_summary_quality_check
        CHECK (audiotricks_internal.at_check_rule(
            summary_quality OPERATOR(pg_catalog.=) ANY (ARRAY['fast', 'balanced', 'detailed']::pg_catalog.text[]),
            'user_settings', 'summary_quality', 'user_settings_summary_quality_check',
            'must be fast, balanced or detailed')),
    CONSTRAINT user_settings_settings_json_check
        CHECK (audiotricks_internal.at_check_settings_json(settings_json))
);
CREATE TRIGGER user_settings_touch_updated_at BEFORE UPDATE ON audiotricks.user_settings
    FOR EACH ROW EXECUTE FUNCTION audiotricks_internal.at_touch_updated_at();
CREATE TRIGGER user_settings_audit AFTER INSERT OR UPDATE OR DELETE ON audiotricks.user_settings
    FOR EACH ROW EXECUTE FUNCTION audiotricks_internal.at_audit_row('user_id', 'user_id', 'user_settings');

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
COMMENT ON COLUMN audiotricks.user_settings.openai_api_key_set_at IS
    'When the OpenAI API key was set, NULL when none is (extra column: at_api_key_status shows it without decrypting for the date; key rotation keeps it)';
COMMENT ON COLUMN audiotricks.user_settings.elevenlabs_api_key_set_at IS
    'When the ElevenLabs API key was set, NULL when none is (extra column: at_api_key_status shows it without decrypting for the date; key rotation keeps it)';
SELECT pg_catalog.pg_extension_config_dump('audiotricks.user_settings', '');

ALTER TABLE audiotricks.user_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE audiotricks.user_settings FORCE ROW LEVEL SECURITY;
CREATE POLICY user_settings_own ON audiotricks.user_settings
    USING (user_id OPERATOR(pg_catalog.=) (SELECT audiotricks.at_current_user_id()))
    WITH CHECK (user_id OPERATOR(pg_catalog.=) (SELECT audiotricks.at_current_user_id()));

REVOKE ALL ON audiotricks.user_settings FROM PUBLIC;
GRANT SELECT (user_id, preferred_language, summary_quality, settings_json, updated_at,
              openai_api_key_set_at, elevenlabs_api_key_set_at)
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
    LANGUAGE C STABLE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'at_default_search_config';
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
    CONSTRAINT audio_history_pkey PRIMARY KEY (id, created_at),
    CONSTRAINT audio_history_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES audiotricks.users (id) ON DELETE CASCADE,
    CONSTRAINT audio_history_audio_url_check
        CHECK (audiotricks_internal.at_check_audio_url(audio_url)),
    CONSTRAINT audio_history_file_size_bytes_check
        CHECK (audiotricks_internal.at_check_rule(file_size_bytes OPERATOR(pg_catalog.>=) 0,
            'audio_history', 'file_size_bytes', 'audio_history_file_size_bytes_check', 'must be 0 or more')),
    CONSTRAINT audio_history_duration_seconds_check
        CHECK (audiotricks_internal.at_check_rule(duration_seconds OPERATOR(pg_catalog.>=) 0,
            'audio_history', 'duration_seconds', 'audio_history_duration_seconds_check', 'must be 0 or more')),
    CONSTRAINT audio_history_key_moments_check
        CHECK (audiotricks_internal.at_check_key_moments(key_moments)),
    CONSTRAINT audio_history_processing_options_check
        CHECK (audiotricks_internal.at_check_processing_options(processing_options)),
    CONSTRAINT audio_history_transcript_check
        CHECK (audiotricks_internal.at_check_transcript(transcript)),
    CONSTRAINT audio_history_summary_check
        CHECK (audiotricks_internal.at_check_summary(summary))
) PARTITION BY RANGE (created_at);
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
    FOR EACH STATEMENT EXECUTE FUNCTION audiotricks_internal.at_audit_history_delete();
CREATE TRIGGER audio_history_audit AFTER INSERT OR UPDATE OR DELETE ON audiotricks.audio_history
    FOR EACH ROW EXECUTE FUNCTION audiotricks_internal.at_audit_row('user_id', 'id', 'audio_history');

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

-- audio_history partitions (src/history_partitions.c) ------------------------
-- Partitioned by RANGE (created_at), the leading key of every read's order,
-- so a page walks the partitions newest first and stops when full.  The
-- primary key must hold the partition key: (id, created_at).  The range
-- partitions are made by at_maintain_history_partitions, as the owner, and
-- added to the extension; the DEFAULT partition made here holds any row no
-- range partition covers yet (imports, clock jumps, the first rows of a
-- fresh install, a restore) until the maintenance moves them out.
-- Partitions have row-level security enabled, no policy and no grant: only
-- the parent's policies apply to their rows.  pg_dump writes the rows of
-- every partition as the DEFAULT partition's (the filter below ends in a
-- UNION ALL over the parent, in the column order pg_dump lists): it cannot
-- restore partitions of its own under the extension's indexes
-- (history_partitions.c explains).
CREATE TABLE audiotricks.audio_history_default PARTITION OF audiotricks.audio_history DEFAULT;
ALTER TABLE audiotricks.audio_history_default ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON audiotricks.audio_history_default FROM PUBLIC;
COMMENT ON TABLE audiotricks.audio_history_default IS
    'Default partition of audio_history: rows no range partition covers yet; maintenance moves them into the partitions it makes. Read it through audio_history.';
SELECT pg_catalog.pg_extension_config_dump('audiotricks.audio_history_default',
    'WHERE false UNION ALL SELECT id, user_id, title, audio_url, file_size_bytes, duration_seconds,'
    ' transcript, summary, key_moments, processing_options, created_at, search_config'
    ' FROM audiotricks.audio_history');

CREATE FUNCTION audiotricks_internal.at_history_partitions_due() RETURNS trigger
    LANGUAGE C
    AS 'MODULE_PATHNAME', 'at_history_partitions_due';
COMMENT ON FUNCTION audiotricks_internal.at_history_partitions_due() IS
    'BEFORE INSERT statement trigger on audio_history: starts partition maintenance in a background worker when the current period or the last one it keeps made has no partition (at most once a minute per backend); never waits or fails the insert.';
CREATE TRIGGER audio_history_partitions_due BEFORE INSERT ON audiotricks.audio_history
    FOR EACH STATEMENT EXECUTE FUNCTION audiotricks_internal.at_history_partitions_due();

CREATE FUNCTION audiotricks.at_maintain_history_partitions()
    RETURNS TABLE (action text, partition text, range_from timestamptz,
                   range_to timestamptz, moved_rows bigint)
    LANGUAGE C VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'at_maintain_history_partitions';
COMMENT ON FUNCTION audiotricks.at_maintain_history_partitions() IS
    'Makes the missing audio_history partitions of the current period and the next audiotricks.history_partitions_ahead (moving the default partition''s rows of their ranges in), and drops those whose range ended before now() - audiotricks.history_retention, recording a history_partition_dropped audit event each. One row per action. Extension owner or superuser only (42501).';
REVOKE ALL ON FUNCTION audiotricks.at_maintain_history_partitions() FROM PUBLIC;

-- audit_log -----------------------------------------------------------------
-- The audit trail (src/audit.c, src/audit_chain.c, src/audit_trigger.c):
-- account events and every row change of users, user_settings and
-- audio_history.  Each row belongs to a hash chain (chain_id, seq); the
-- chain's head is in audit_chain_heads.
CREATE TABLE audiotricks.audit_log (
    id              uuid            NOT NULL DEFAULT audiotricks.at_uuid_v7(),
    user_id         uuid,
    session_id      uuid,
    event           text            NOT NULL,
    detail          jsonb           NOT NULL DEFAULT '{}',
    client_addr     inet,
    created_at      timestamptz     NOT NULL DEFAULT pg_catalog.now(),
    db_role         name,
    actor_id        uuid,
    table_name      text,
    row_id          uuid,
    operation       text,
    changed_columns text[],
    chain_id        uuid            NOT NULL,
    seq             bigint          NOT NULL,
    subject_hash    bytea           NOT NULL,
    prev_hash       bytea,
    hash            bytea           NOT NULL,
    CONSTRAINT audit_log_pkey PRIMARY KEY (id),
    CONSTRAINT audit_log_chain_seq_key UNIQUE (chain_id, seq)
);
-- No CHECK constraints: only the owner writes here, and AuditAppend
-- (src/audit_chain.c) checks event (^[a-z_]{1,32}$) and operation (INSERT,
-- UPDATE, DELETE) before it writes; a CHECK would be parsed again at every
-- audited write (its executor starts afresh), a third of the audit's cost.
CREATE INDEX audit_log_user_created_idx ON audiotricks.audit_log (user_id, created_at DESC);
CREATE INDEX audit_log_created_idx ON audiotricks.audit_log (created_at);
CREATE CONSTRAINT TRIGGER audit_log_chain_head AFTER INSERT ON audiotricks.audit_log
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION audiotricks_internal.at_audit_chain_head();

COMMENT ON TABLE audiotricks.audit_log IS 'Append-only trail of account events and row changes, in per-user hash chains (at_verify_audit_chain). Never holds a password, token, key, transcript or other value.';
COMMENT ON COLUMN audiotricks.audit_log.id IS 'Event identifier (time-ordered)';
COMMENT ON COLUMN audiotricks.audit_log.user_id IS 'The user the event is about; no foreign key, so events outlive the user (set to NULL when the account is deleted)';
COMMENT ON COLUMN audiotricks.audit_log.session_id IS 'The session involved, if any';
COMMENT ON COLUMN audiotricks.audit_log.event IS 'What happened: registered, login, login_failed, login_throttled, logout, logout_session, logout_all, refresh, refresh_reuse, password_changed, api_key_set, api_key_cleared, keys_rotated, history_deleted, history_partition_dropped, account_deactivated, account_deleted, password_reset_requested, password_reset, email_verification_requested, email_verified, email_change_requested, email_changed, username_changed, registration_requested, registration_for_existing_email, login_unverified, throttle_cleared, data_changed (a row change), audit_purged (retention)';
COMMENT ON COLUMN audiotricks.audit_log.detail IS 'Small JSON detail from fixed strings (never secrets)';
COMMENT ON COLUMN audiotricks.audit_log.client_addr IS 'Client IP address of the connection, if TCP (set to NULL when the account is deleted)';
COMMENT ON COLUMN audiotricks.audit_log.created_at IS 'When it happened';
COMMENT ON COLUMN audiotricks.audit_log.db_role IS 'The database role that ran the statement (SET ROLE''s role, not a SECURITY DEFINER function''s)';
COMMENT ON COLUMN audiotricks.audit_log.actor_id IS 'The user of the verified token that made the change, if any (set to NULL when the account is deleted)';
COMMENT ON COLUMN audiotricks.audit_log.table_name IS 'A row change: the table (users, user_settings, audio_history)';
COMMENT ON COLUMN audiotricks.audit_log.row_id IS 'A row change: the row''s id (user_settings: its user_id)';
COMMENT ON COLUMN audiotricks.audit_log.operation IS 'A row change: INSERT, UPDATE or DELETE';
COMMENT ON COLUMN audiotricks.audit_log.changed_columns IS 'A row change: the names of the columns set (INSERT: not null; UPDATE: changed; DELETE: NULL), never their values';
COMMENT ON COLUMN audiotricks.audit_log.chain_id IS 'The hash chain of the event (audit_chain_heads); not the user id, so an anonymised chain names nobody';
COMMENT ON COLUMN audiotricks.audit_log.seq IS 'Position in the chain, from 1 without gaps (retention removes whole prefixes)';
COMMENT ON COLUMN audiotricks.audit_log.subject_hash IS 'SHA-256 of id, user_id, actor_id and client_addr: how the personal fields enter the chain, so anonymising them keeps it verifiable';
COMMENT ON COLUMN audiotricks.audit_log.prev_hash IS 'hash of the previous event of the chain (NULL for the first)';
COMMENT ON COLUMN audiotricks.audit_log.hash IS 'SHA-256 of prev_hash and the event''s fields (README, "Audit log")';
SELECT pg_catalog.pg_extension_config_dump('audiotricks.audit_log', '');

-- users read their own events; nobody but the owner writes, changes or deletes
ALTER TABLE audiotricks.audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audiotricks.audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_log_read_own ON audiotricks.audit_log FOR SELECT
    USING (user_id OPERATOR(pg_catalog.=) (SELECT audiotricks.at_current_user_id()));

REVOKE ALL ON audiotricks.audit_log FROM PUBLIC;
GRANT SELECT ON audiotricks.audit_log TO audiotricks_user;

-- audit_chain_heads ---------------------------------------------------------
-- The last event of each audit chain (src/audit_chain.c).  A user has two
-- chains: events of the application's transactions (detached false), whose
-- head each appending transaction locks until it ends, and events of the
-- detached audit writer (detached true), whose head the writer takes with
-- SKIP LOCKED.  Events without a user go to two global chains, chain_id
-- 00000000-0000-0000-0000-000000000000 and ...0001.  No policy and no grant:
-- application roles neither read nor write it.
CREATE TABLE audiotricks.audit_chain_heads (
    chain_id        uuid            NOT NULL,
    user_id         uuid,
    detached        boolean         NOT NULL,
    seq             bigint          NOT NULL,
    hash            bytea,
    CONSTRAINT audit_chain_heads_pkey PRIMARY KEY (chain_id)
);
CREATE UNIQUE INDEX audit_chain_heads_user_key
    ON audiotricks.audit_chain_heads (user_id, detached) WHERE user_id IS NOT NULL;

COMMENT ON TABLE audiotricks.audit_chain_heads IS 'The last seq and hash of each audit chain; a chain''s writers serialize on its row.';
COMMENT ON COLUMN audiotricks.audit_chain_heads.chain_id IS 'audit_log.chain_id (random; fixed for the two global chains)';
COMMENT ON COLUMN audiotricks.audit_chain_heads.user_id IS 'The chain''s user; NULL for the global chains and once the account is deleted';
COMMENT ON COLUMN audiotricks.audit_chain_heads.detached IS 'true: the audit writer''s chain of the user';
COMMENT ON COLUMN audiotricks.audit_chain_heads.seq IS 'seq of the chain''s last event';
COMMENT ON COLUMN audiotricks.audit_chain_heads.hash IS 'hash of the chain''s last event';
SELECT pg_catalog.pg_extension_config_dump('audiotricks.audit_chain_heads', '');

ALTER TABLE audiotricks.audit_chain_heads ENABLE ROW LEVEL SECURITY;
ALTER TABLE audiotricks.audit_chain_heads FORCE ROW LEVEL SECURITY;

REVOKE ALL ON audiotricks.audit_chain_heads FROM PUBLIC;

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

CREATE FUNCTION audiotricks_internal.at_require_user_id() RETURNS uuid
    LANGUAGE C STABLE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'at_require_user_id';
COMMENT ON FUNCTION audiotricks_internal.at_require_user_id() IS
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
 WHERE s.user_id OPERATOR(pg_catalog.=) (SELECT audiotricks_internal.at_require_user_id());
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
 WHERE s.user_id OPERATOR(pg_catalog.=) (SELECT audiotricks_internal.at_require_user_id())
   AND audiotricks_internal.at_check_settings_json($3) IS NOT FALSE
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
    'Stores the current user''s API key for provider (openai or elevenlabs), encrypted and bound to user and provider, and when it was set; NULL or an empty string clears both. Called by signed-in users.';

CREATE FUNCTION audiotricks.at_api_key_status()
    RETURNS TABLE(provider text, is_set boolean, last4 text, set_at timestamptz)
    LANGUAGE C STABLE PARALLEL UNSAFE ROWS 2
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_api_key_status';
COMMENT ON FUNCTION audiotricks.at_api_key_status() IS
    'One row per provider (openai, elevenlabs) for the current user: whether a key is set, its last 4 characters (NULL for keys under 8 characters) and when it was set; never the key. 42501 without identity. Called by signed-in users.';

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
-- (SECURITY INVOKER).  at_history_count and at_history_delete are SQL
-- functions, and at_history_add runs its INSERT through a kept SPI plan
-- (src/history_add.c), so the policies apply to their statements.
-- at_history_page and at_history_search are C functions: they
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
    LANGUAGE C VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'at_history_add';
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
 WHERE h.user_id OPERATOR(pg_catalog.=) (SELECT audiotricks_internal.at_require_user_id());
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
       AND h.user_id OPERATOR(pg_catalog.=) (SELECT audiotricks_internal.at_require_user_id())
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
    'Deletes audit events older than older_than (whole chain prefixes), batch_size rows per statement, recording an audit_purged event in each chain it shortens; returns how many (schedule it with pg_cron). Not executable by application roles.';

CREATE FUNCTION audiotricks.at_verify_audit_chain(for_user_id uuid DEFAULT NULL)
    RETURNS TABLE(user_id uuid, events bigint, ok boolean, first_bad_id uuid, reason text,
                  chain_id uuid, last_hash bytea)
    LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_verify_audit_chain';
COMMENT ON FUNCTION audiotricks.at_verify_audit_chain(uuid) IS
    'Verifies the audit hash chains of a user (both of theirs), or with NULL every chain: one row per chain with its events, ok, the first bad event and why, its chain_id and last hash. Reads one snapshot, locks nothing writers wait for. Superusers and pg_monitor only.';

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
-- Account recovery and identity changes
--
-- (src/throttle_sql.c, src/recovery.c, src/client_addr.c)  Who may call
-- what is granted at the end of this block; section 6 revokes PUBLIC's
-- EXECUTE on all of them.
------------------------------------------------------------------------------

-- A third group role: the mail sender.  It may only take the outbox
-- (at_mail_outbox), which is the one way to a token's plaintext.
DO $mailer$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'audiotricks_mailer') THEN
        CREATE ROLE audiotricks_mailer NOLOGIN;
    END IF;
END
$mailer$;
GRANT USAGE ON SCHEMA audiotricks TO audiotricks_mailer;

-- account_tokens -------------------------------------------------------------
-- Password reset and email verification tokens: only their SHA-256.
CREATE TABLE audiotricks.account_tokens (
    id              uuid            NOT NULL DEFAULT audiotricks.at_uuid_v7(),
    -- no foreign key, as in mail_outbox: its check would make a real
    -- request slower than a decoy's (which has no user).  Every use joins
    -- users, so a token outliving its user is dead; at_delete_account
    -- deletes the user's tokens, at_purge_expired_tokens the rest.
    user_id         uuid,
    purpose         text            NOT NULL,
    token_hash      text            NOT NULL,
    new_email       text,
    expires_at      timestamptz     NOT NULL,
    created_at      timestamptz     NOT NULL DEFAULT pg_catalog.now(),
    -- a pending registration (purpose register): the account to create
    username        text,
    password_hash   text,
    CONSTRAINT account_tokens_pkey PRIMARY KEY (id),
    CONSTRAINT account_tokens_hash_key UNIQUE (token_hash),
    -- one live token per account and purpose: a new request overwrites the
    -- last one in place (INSERT ... ON CONFLICT DO UPDATE), the same one-row
    -- write as a decoy's insert (a NULL user never conflicts)
    CONSTRAINT account_tokens_user_purpose_key UNIQUE (user_id, purpose),
    CONSTRAINT account_tokens_purpose_check
        CHECK (purpose OPERATOR(pg_catalog.=) ANY (ARRAY['reset', 'verify', 'email_change', 'register']))
);
CREATE INDEX account_tokens_expires_idx ON audiotricks.account_tokens (expires_at);
-- a pending email change reserves its new address: one account at a time
CREATE UNIQUE INDEX account_tokens_new_email_key ON audiotricks.account_tokens (pg_catalog.lower(new_email))
    WHERE purpose OPERATOR(pg_catalog.=) 'email_change';
COMMENT ON TABLE audiotricks.account_tokens IS 'Live password reset and email verification tokens, by SHA-256 only; a token is deleted when used or replaced. Granted to no role.';
COMMENT ON COLUMN audiotricks.account_tokens.id IS 'Token row identifier (time-ordered); for register, the id the account gets';
COMMENT ON COLUMN audiotricks.account_tokens.user_id IS 'The account; for the decoy of a request that named no account, a keyed hash of what it named (no user: never usable)';
COMMENT ON COLUMN audiotricks.account_tokens.purpose IS 'reset, verify (the current email), email_change (new_email) or register (a pending registration of new_email, keyed by a hash of it)';
COMMENT ON COLUMN audiotricks.account_tokens.username IS 'For register: the username of the account to create';
COMMENT ON COLUMN audiotricks.account_tokens.password_hash IS 'For register: the bcrypt hash of the account to create';
COMMENT ON COLUMN audiotricks.account_tokens.token_hash IS 'SHA-256 of the token, hex; the token itself is never stored';
COMMENT ON COLUMN audiotricks.account_tokens.new_email IS 'The address the token was mailed to; for email_change, the one that replaces the current address once verified (reserved meanwhile)';
COMMENT ON COLUMN audiotricks.account_tokens.expires_at IS 'When the token stops working (audiotricks.reset_ttl after it was issued)';
COMMENT ON COLUMN audiotricks.account_tokens.created_at IS 'When it was issued';
SELECT pg_catalog.pg_extension_config_dump('audiotricks.account_tokens', '');
ALTER TABLE audiotricks.account_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE audiotricks.account_tokens FORCE ROW LEVEL SECURITY;
REVOKE ALL ON audiotricks.account_tokens FROM PUBLIC;

-- mail_outbox ----------------------------------------------------------------
-- Mails for audiotricks_mailer to send (src/mailer.c).
CREATE TABLE audiotricks.mail_outbox (
    id              uuid            NOT NULL,
    -- no foreign key: its check would make a real request slower than a
    -- decoy (which has no user); a mail outliving its user is harmless
    user_id         uuid,
    recipient       text,
    kind            text            NOT NULL,
    token_sealed    text,
    created_at      timestamptz     NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT mail_outbox_pkey PRIMARY KEY (id),
    CONSTRAINT mail_outbox_kind_check
        CHECK (kind OPERATOR(pg_catalog.=) ANY (ARRAY['password_reset', 'email_verification', 'email_change', 'registration_attempt', 'none']))
);
COMMENT ON TABLE audiotricks.mail_outbox IS 'Mails waiting for audiotricks_mailer (at_mail_outbox takes them). Granted to no role.';
COMMENT ON COLUMN audiotricks.mail_outbox.id IS 'Mail identifier (time-ordered); bound into its token''s ciphertext';
COMMENT ON COLUMN audiotricks.mail_outbox.user_id IS 'The account it is about; NULL for a decoy';
COMMENT ON COLUMN audiotricks.mail_outbox.recipient IS 'Address to send to; NULL for a decoy';
COMMENT ON COLUMN audiotricks.mail_outbox.kind IS 'password_reset, email_verification, email_change, registration_attempt, or none (a decoy, never sent)';
COMMENT ON COLUMN audiotricks.mail_outbox.token_sealed IS 'The token, AES-256-GCM under the master key (domain M, bound to id and kind); NULL when the mail carries none';
COMMENT ON COLUMN audiotricks.mail_outbox.created_at IS 'When it was queued';
SELECT pg_catalog.pg_extension_config_dump('audiotricks.mail_outbox', '');
ALTER TABLE audiotricks.mail_outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE audiotricks.mail_outbox FORCE ROW LEVEL SECURITY;
REVOKE ALL ON audiotricks.mail_outbox FROM PUBLIC;

-- Password reset (src/recovery.c).  SECURITY DEFINER: they read and write
-- tables no application role holds.
CREATE FUNCTION audiotricks.at_request_password_reset(login text)
    RETURNS void
    LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_request_password_reset';
COMMENT ON FUNCTION audiotricks.at_request_password_reset(text) IS
    'Queues a one-time password reset token for the account an email or username names, to the mailer only; answers the same, in the same time, when it names none.';

CREATE FUNCTION audiotricks.at_reset_password(token text, new_password text)
    RETURNS void
    LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_reset_password';
COMMENT ON FUNCTION audiotricks.at_reset_password(text, text) IS
    'Sets a new password with a reset token (used once), ends every session of the user.';

CREATE FUNCTION audiotricks.at_mail_outbox(max_mails integer DEFAULT 100)
    RETURNS TABLE(id uuid, recipient text, kind text, token text, created_at timestamptz)
    LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_mail_outbox';
COMMENT ON FUNCTION audiotricks.at_mail_outbox(integer) IS
    'Takes up to max_mails queued mails (deletes and returns them, tokens in plaintext). For audiotricks_mailer only.';

CREATE FUNCTION audiotricks.at_purge_expired_tokens()
    RETURNS integer
    LANGUAGE C VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_purge_expired_tokens';
COMMENT ON FUNCTION audiotricks.at_purge_expired_tokens() IS
    'Deletes expired reset and verification tokens; returns how many (schedule it with pg_cron). Not executable by application roles.';

-- Email verification and identity changes (src/recovery.c, src/accounts.c).
-- at_verify_email needs no identity (the token is the proof): SECURITY
-- DEFINER.  The others act for the identity and switch to the owner in C
-- (see 5b).
CREATE FUNCTION audiotricks.at_request_email_verification()
    RETURNS void
    LANGUAGE C VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_request_email_verification';
COMMENT ON FUNCTION audiotricks.at_request_email_verification() IS
    'Mails the signed-in user a token that verifies their current email address; nothing when it is verified.';

CREATE FUNCTION audiotricks.at_verify_email(token text)
    RETURNS void
    LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_verify_email';
COMMENT ON FUNCTION audiotricks.at_verify_email(text) IS
    'Uses a mailed registration token (creates the account), verification token (the address is verified) or email change token (the new address replaces the old). Called by anonymous clients.';

CREATE FUNCTION audiotricks.at_change_email(current_password text, new_email text)
    RETURNS void
    LANGUAGE C VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_change_email';
COMMENT ON FUNCTION audiotricks.at_change_email(text, text) IS
    'Checks the password and mails a token to the new address, which replaces the current one once verified (at_verify_email); reserved meanwhile.';

CREATE FUNCTION audiotricks.at_change_username(current_password text, new_username text)
    RETURNS void
    LANGUAGE C VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_change_username';
COMMENT ON FUNCTION audiotricks.at_change_username(text, text) IS
    'Checks the password and changes the signed-in user''s username (unique case-insensitively).';

-- Login throttle administration (README, "Login throttling"): not for the
-- application roles; grant them to an operations role if needed.
CREATE FUNCTION audiotricks.at_login_throttle_status(login text)
    RETURNS TABLE(failures integer, throttled boolean, window_ends timestamptz, addresses_throttled integer)
    LANGUAGE C VOLATILE PARALLEL RESTRICTED SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    ROWS 1
    AS 'MODULE_PATHNAME', 'at_login_throttle_status';
COMMENT ON FUNCTION audiotricks.at_login_throttle_status(text) IS
    'For the account a login names: failed logins counted against its per-account ceiling this window, whether it is refused, when the window ends, from how many addresses it is refused. Not executable by application roles.';

CREATE FUNCTION audiotricks.at_clear_login_throttle(login text)
    RETURNS boolean
    LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_clear_login_throttle';
COMMENT ON FUNCTION audiotricks.at_clear_login_throttle(text) IS
    'Forgets every failed login counted for the account a login names (all addresses, its ceiling, its password re-checks); false when it names none. Not executable by application roles.';

REVOKE ALL ON FUNCTION
    audiotricks.at_login_throttle_status(text),
    audiotricks.at_clear_login_throttle(text),
    audiotricks.at_request_password_reset(text),
    audiotricks.at_reset_password(text, text),
    audiotricks.at_mail_outbox(integer),
    audiotricks.at_purge_expired_tokens(),
    audiotricks.at_request_email_verification(),
    audiotricks.at_verify_email(text),
    audiotricks.at_change_email(text, text),
    audiotricks.at_change_username(text, text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    audiotricks.at_request_password_reset(text),
    audiotricks.at_reset_password(text, text),
    audiotricks.at_verify_email(text)
    TO audiotricks_anon, audiotricks_user;
GRANT EXECUTE ON FUNCTION
    audiotricks.at_request_email_verification(),
    audiotricks.at_change_email(text, text),
    audiotricks.at_change_username(text, text)
    TO audiotricks_user;
GRANT EXECUTE ON FUNCTION audiotricks.at_mail_outbox(integer) TO audiotricks_mailer;
-- end of "Account recovery and identity changes"


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
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA audiotricks_internal FROM PUBLIC;

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
    audiotricks_internal.at_check_rule(boolean, text, text, text, text),
    audiotricks_internal.at_check_key_moments(jsonb),
    audiotricks_internal.at_check_processing_options(jsonb),
    audiotricks_internal.at_check_settings_json(jsonb),
    audiotricks_internal.at_check_audio_url(text),
    audiotricks_internal.at_check_transcript(text),
    audiotricks_internal.at_check_summary(text),
    audiotricks_internal.at_search_config(text),
    audiotricks_internal.at_history_tsv(text, jsonb, text, text, text),
    audiotricks_internal.at_history_tsv_config(text, jsonb),
    audiotricks_internal.at_default_search_config(),
    -- 5a identity
    audiotricks.at_authenticate(text),
    audiotricks.at_postgrest_pre_request(),
    audiotricks_internal.at_require_user_id(),
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
    audiotricks.at_api_key_status(),
    -- 5d history
    audiotricks_internal.at_check_history_sizes(text, text, jsonb, jsonb),
    audiotricks.at_history_add(text, text, bigint, integer, text, text, jsonb, jsonb),
    audiotricks.at_history_page(integer, text),
    audiotricks.at_history_count(),
    audiotricks.at_history_search(text, integer, text),
    audiotricks.at_history_delete(uuid)
    TO audiotricks_user;

GRANT EXECUTE ON FUNCTION audiotricks.at_password_checks() TO pg_monitor;
GRANT EXECUTE ON FUNCTION audiotricks.at_verify_audit_chain(uuid) TO pg_monitor;

------------------------------------------------------------------------------
-- 7. The API schema audiotricks_api (what PostgREST exposes)
--
-- PostgREST turns GET /users?select=* into SELECT "schema"."users".*, which
-- fails with 42501 on a table whose secret columns the role may not read;
-- and the tables keep every column of the seed.  So PostgREST exposes this
-- schema instead: one view per table with exactly the columns application
-- roles may read, and the functions an application calls.
--
-- The views are security_invoker: the caller's own privileges, and so the
-- tables' row-level security policies and column grants, apply to every
-- read and write through them.  Each selects one table's columns and nothing
-- else, so PostgreSQL updates the table through it (POST, PATCH and DELETE
-- with Prefer: return=representation); the table's defaults, constraints and
-- triggers apply.  What a view allows is what the table allows its roles:
--   users, audit_log    read only
--   sessions            read only (end a session with at_logout_session, which
--                       also audits it)
--   user_settings       read, PATCH of preferred_language, summary_quality,
--                       settings_json (API keys only through at_set_api_key)
--   audio_history       read, POST, PATCH, DELETE
--
-- The functions are the C functions of schema audiotricks declared again
-- under the same symbols (the same code, with no wrapper to cross), and thin
-- SQL wrappers for the functions that are SQL in audiotricks (settings and
-- history), whose statements then live in one place.  Operations functions
-- (purges, key rotation, raw encryption, at_password_checks) and
-- at_postgrest_pre_request (PostgREST's hook, called by its schema-qualified
-- name) are not here: they are no endpoint.
------------------------------------------------------------------------------
CREATE VIEW audiotricks_api.users WITH (security_invoker = true) AS
SELECT id, email, username, created_at, updated_at, last_login_at, is_active,
       email_verified_at
  FROM audiotricks.users;
COMMENT ON VIEW audiotricks_api.users IS 'The signed-in user''s account (one row; no password hash).';
COMMENT ON COLUMN audiotricks_api.users.id IS 'Unique user identifier';
COMMENT ON COLUMN audiotricks_api.users.email IS 'User''s email address (unique, case-insensitively)';
COMMENT ON COLUMN audiotricks_api.users.username IS 'Display username (unique, case-insensitively; ASCII letters, digits, _ and -)';
COMMENT ON COLUMN audiotricks_api.users.created_at IS 'Account creation time';
COMMENT ON COLUMN audiotricks_api.users.updated_at IS 'Last modification time';
COMMENT ON COLUMN audiotricks_api.users.last_login_at IS 'Last successful login';
COMMENT ON COLUMN audiotricks_api.users.is_active IS 'Account active status';
COMMENT ON COLUMN audiotricks_api.users.email_verified_at IS 'When the current email address was verified; NULL while it is not';

CREATE VIEW audiotricks_api.sessions WITH (security_invoker = true) AS
SELECT id, user_id, expires_at, created_at, family_id, refreshed_at
  FROM audiotricks.sessions;
COMMENT ON VIEW audiotricks_api.sessions IS 'The signed-in user''s sessions (no token hash); read only: end one with at_logout_session.';
COMMENT ON COLUMN audiotricks_api.sessions.id IS 'Session identifier';
COMMENT ON COLUMN audiotricks_api.sessions.user_id IS 'Reference to users.id';
COMMENT ON COLUMN audiotricks_api.sessions.expires_at IS 'Session expiration time';
COMMENT ON COLUMN audiotricks_api.sessions.created_at IS 'Session creation time';
COMMENT ON COLUMN audiotricks_api.sessions.family_id IS 'Refresh family: the id of the login session this one descends from by at_refresh';
COMMENT ON COLUMN audiotricks_api.sessions.refreshed_at IS 'When at_refresh replaced this session (no longer live)';

CREATE VIEW audiotricks_api.user_settings WITH (security_invoker = true) AS
SELECT user_id, preferred_language, summary_quality, settings_json, updated_at,
       openai_api_key_set_at, elevenlabs_api_key_set_at
  FROM audiotricks.user_settings;
COMMENT ON VIEW audiotricks_api.user_settings IS 'The signed-in user''s settings (no API keys: see at_api_key_status and at_set_api_key); PATCH preferred_language, summary_quality, settings_json.';
COMMENT ON COLUMN audiotricks_api.user_settings.user_id IS 'Reference to users.id';
COMMENT ON COLUMN audiotricks_api.user_settings.preferred_language IS 'Language preference: a language tag such as en or pt-BR';
COMMENT ON COLUMN audiotricks_api.user_settings.summary_quality IS 'Summary generation quality: fast, balanced or detailed';
COMMENT ON COLUMN audiotricks_api.user_settings.settings_json IS 'Additional settings: theme string, autoSave boolean, notifications {email, browser: boolean}, audioDefaults {format, quality: string}; other keys allowed';
COMMENT ON COLUMN audiotricks_api.user_settings.updated_at IS 'Last update time';
COMMENT ON COLUMN audiotricks_api.user_settings.openai_api_key_set_at IS 'When the OpenAI API key was set, NULL when none is';
COMMENT ON COLUMN audiotricks_api.user_settings.elevenlabs_api_key_set_at IS 'When the ElevenLabs API key was set, NULL when none is';

CREATE VIEW audiotricks_api.audio_history WITH (security_invoker = true) AS
SELECT id, user_id, title, audio_url, file_size_bytes, duration_seconds,
       transcript, summary, key_moments, processing_options, created_at
  FROM audiotricks.audio_history;
COMMENT ON VIEW audiotricks_api.audio_history IS 'The signed-in user''s audio processing history; POST, PATCH and DELETE work (user_id defaults to the signed-in user).';
COMMENT ON COLUMN audiotricks_api.audio_history.id IS 'History entry identifier';
COMMENT ON COLUMN audiotricks_api.audio_history.user_id IS 'Reference to users.id (defaults to the current user)';
COMMENT ON COLUMN audiotricks_api.audio_history.title IS 'Audio title/filename';
COMMENT ON COLUMN audiotricks_api.audio_history.audio_url IS 'Source audio URL';
COMMENT ON COLUMN audiotricks_api.audio_history.file_size_bytes IS 'File size in bytes';
COMMENT ON COLUMN audiotricks_api.audio_history.duration_seconds IS 'Audio duration';
COMMENT ON COLUMN audiotricks_api.audio_history.transcript IS 'Full transcription';
COMMENT ON COLUMN audiotricks_api.audio_history.summary IS 'Generated summary';
COMMENT ON COLUMN audiotricks_api.audio_history.key_moments IS 'Key moments data';
COMMENT ON COLUMN audiotricks_api.audio_history.processing_options IS 'Processing settings used';
COMMENT ON COLUMN audiotricks_api.audio_history.created_at IS 'Processing time';

CREATE VIEW audiotricks_api.audit_log WITH (security_invoker = true) AS
SELECT id, user_id, session_id, event, detail, client_addr, created_at
  FROM audiotricks.audit_log;
COMMENT ON VIEW audiotricks_api.audit_log IS 'The signed-in user''s account events; read only.';
COMMENT ON COLUMN audiotricks_api.audit_log.id IS 'Event identifier (time-ordered)';
COMMENT ON COLUMN audiotricks_api.audit_log.user_id IS 'The user the event is about';
COMMENT ON COLUMN audiotricks_api.audit_log.session_id IS 'The session involved, if any';
COMMENT ON COLUMN audiotricks_api.audit_log.event IS 'What happened (registered, login, logout, api_key_set, history_deleted, ...)';
COMMENT ON COLUMN audiotricks_api.audit_log.detail IS 'Small JSON detail (never secrets)';
COMMENT ON COLUMN audiotricks_api.audit_log.client_addr IS 'Client IP address of the connection, if TCP';
COMMENT ON COLUMN audiotricks_api.audit_log.created_at IS 'When it happened';

REVOKE ALL ON audiotricks_api.users, audiotricks_api.sessions, audiotricks_api.user_settings,
              audiotricks_api.audio_history, audiotricks_api.audit_log FROM PUBLIC;
GRANT SELECT ON audiotricks_api.users, audiotricks_api.sessions, audiotricks_api.user_settings,
                audiotricks_api.audio_history, audiotricks_api.audit_log TO audiotricks_user;
GRANT UPDATE (preferred_language, summary_quality, settings_json)
    ON audiotricks_api.user_settings TO audiotricks_user;
GRANT INSERT (user_id, title, audio_url, file_size_bytes, duration_seconds,
              transcript, summary, key_moments, processing_options),
      UPDATE (title, audio_url, file_size_bytes, duration_seconds,
              transcript, summary, key_moments, processing_options),
      DELETE
    ON audiotricks_api.audio_history TO audiotricks_user;

-- Identity, accounts and sessions: the C functions again
CREATE FUNCTION audiotricks_api.at_uuid_v7() RETURNS uuid
    LANGUAGE C VOLATILE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'at_uuid_v7';
COMMENT ON FUNCTION audiotricks_api.at_uuid_v7() IS
    'A new time-ordered UUID (RFC 9562 version 7).';

CREATE FUNCTION audiotricks_api.at_current_user_id() RETURNS uuid
    LANGUAGE C STABLE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'at_current_user_id';
COMMENT ON FUNCTION audiotricks_api.at_current_user_id() IS
    'The user id of the request''s verified bearer token, or NULL.';

CREATE FUNCTION audiotricks_api.at_authenticate(token text) RETURNS uuid
    LANGUAGE C VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'at_authenticate';
COMMENT ON FUNCTION audiotricks_api.at_authenticate(text) IS
    'Verifies a session token (signature, expiry, live session, active user) and returns its user id; 28000 otherwise.';

CREATE FUNCTION audiotricks_api.at_register(email text, username text, password text) RETURNS uuid
    LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_register';
COMMENT ON FUNCTION audiotricks_api.at_register(text, text, text) IS
    'Creates an account (email, username, password) and returns its user id; 22023 for an invalid value, 23505 when taken. Called by anonymous clients.';

CREATE FUNCTION audiotricks_api.at_login(login text, password text)
    RETURNS TABLE(token text, user_id uuid, session_id uuid, expires_at timestamptz)
    LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    ROWS 1
    AS 'MODULE_PATHNAME', 'at_login';
COMMENT ON FUNCTION audiotricks_api.at_login(text, text) IS
    'Logs in with email or username and password; returns a session token (HS256 JWT) for the Authorization header. 28P01 for any failure.';

CREATE FUNCTION audiotricks_api.at_refresh(token text)
    RETURNS TABLE(token text, user_id uuid, session_id uuid, expires_at timestamptz)
    LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    ROWS 1
    AS 'MODULE_PATHNAME', 'at_refresh';
COMMENT ON FUNCTION audiotricks_api.at_refresh(text) IS
    'Exchanges a valid token for a new one and ends the old session; reuse of a refreshed token ends the whole family.';

CREATE FUNCTION audiotricks_api.at_logout(token text DEFAULT NULL) RETURNS boolean
    LANGUAGE C VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_logout';
COMMENT ON FUNCTION audiotricks_api.at_logout(text) IS
    'Ends the given token''s session, or with no argument the bearer''s; false when there was no live session.';

CREATE FUNCTION audiotricks_api.at_logout_all() RETURNS integer
    LANGUAGE C VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_logout_all';
COMMENT ON FUNCTION audiotricks_api.at_logout_all() IS
    'Ends every session of the signed-in user; returns how many.';

CREATE FUNCTION audiotricks_api.at_logout_session(session_id uuid) RETURNS boolean
    LANGUAGE C VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_logout_session';
COMMENT ON FUNCTION audiotricks_api.at_logout_session(uuid) IS
    'Ends one of the signed-in user''s sessions; false when it is not theirs or not live.';

CREATE FUNCTION audiotricks_api.at_list_sessions()
    RETURNS TABLE(id uuid, created_at timestamptz, expires_at timestamptz, is_current boolean)
    LANGUAGE C STABLE PARALLEL RESTRICTED
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_list_sessions';
COMMENT ON FUNCTION audiotricks_api.at_list_sessions() IS
    'The signed-in user''s live sessions, newest first, and which one is the current one.';

CREATE FUNCTION audiotricks_api.at_change_password(current_password text, new_password text) RETURNS void
    LANGUAGE C VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_change_password';
COMMENT ON FUNCTION audiotricks_api.at_change_password(text, text) IS
    'Checks the current password, stores the new one, and ends the user''s other sessions.';

CREATE FUNCTION audiotricks_api.at_deactivate_account(password text) RETURNS void
    LANGUAGE C VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_deactivate_account';
COMMENT ON FUNCTION audiotricks_api.at_deactivate_account(text) IS
    'Checks the password, deactivates the signed-in user and ends all their sessions.';

CREATE FUNCTION audiotricks_api.at_delete_account(password text) RETURNS void
    LANGUAGE C VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_delete_account';
COMMENT ON FUNCTION audiotricks_api.at_delete_account(text) IS
    'Checks the password and deletes the signed-in user with everything of theirs.';

-- Settings and API keys
CREATE FUNCTION audiotricks_api.at_get_settings()
    RETURNS TABLE(preferred_language text, summary_quality text,
                  settings_json jsonb, updated_at timestamptz)
    LANGUAGE SQL STABLE PARALLEL RESTRICTED ROWS 1
BEGIN ATOMIC
SELECT s.preferred_language, s.summary_quality, s.settings_json, s.updated_at
  FROM audiotricks.at_get_settings() s;
END;
COMMENT ON FUNCTION audiotricks_api.at_get_settings() IS
    'The signed-in user''s preferred_language, summary_quality, settings_json and updated_at.';

CREATE FUNCTION audiotricks_api.at_update_settings(
        preferred_language text DEFAULT NULL,
        summary_quality text DEFAULT NULL,
        settings_json jsonb DEFAULT NULL)
    RETURNS TABLE(preferred_language text, summary_quality text,
                  settings_json jsonb, updated_at timestamptz)
    LANGUAGE SQL VOLATILE PARALLEL UNSAFE ROWS 1
BEGIN ATOMIC
SELECT s.preferred_language, s.summary_quality, s.settings_json, s.updated_at
  FROM audiotricks.at_update_settings($1, $2, $3) s;
END;
COMMENT ON FUNCTION audiotricks_api.at_update_settings(text, text, jsonb) IS
    'Sets the given settings of the signed-in user (NULL leaves one unchanged) and returns them; 23514 names the field and rule of an invalid value.';

CREATE FUNCTION audiotricks_api.at_set_api_key(provider text, api_key text) RETURNS void
    LANGUAGE C VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_set_api_key';
COMMENT ON FUNCTION audiotricks_api.at_set_api_key(text, text) IS
    'Stores the signed-in user''s API key for provider (openai or elevenlabs), encrypted; NULL or an empty string clears it.';

CREATE FUNCTION audiotricks_api.at_get_api_key(provider text) RETURNS text
    LANGUAGE C STABLE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_get_api_key';
COMMENT ON FUNCTION audiotricks_api.at_get_api_key(text) IS
    'The signed-in user''s plaintext API key for provider (openai or elevenlabs), or NULL.';

CREATE FUNCTION audiotricks_api.at_api_key_status()
    RETURNS TABLE(provider text, is_set boolean, last4 text, set_at timestamptz)
    LANGUAGE C STABLE PARALLEL UNSAFE ROWS 2
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_api_key_status';
COMMENT ON FUNCTION audiotricks_api.at_api_key_status() IS
    'Per provider (openai, elevenlabs): whether the signed-in user''s key is set, its last 4 characters (NULL under 8 characters) and when it was set; never the key.';

-- History
CREATE FUNCTION audiotricks_api.at_history_add(
        title text DEFAULT NULL, audio_url text DEFAULT NULL,
        file_size_bytes bigint DEFAULT NULL, duration_seconds integer DEFAULT NULL,
        transcript text DEFAULT NULL, summary text DEFAULT NULL,
        key_moments jsonb DEFAULT NULL, processing_options jsonb DEFAULT NULL)
    RETURNS uuid
    LANGUAGE C VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'at_history_add';
COMMENT ON FUNCTION audiotricks_api.at_history_add(text, text, bigint, integer, text, text, jsonb, jsonb) IS
    'Adds a history entry for the signed-in user and returns its id; 23514 names the field and rule of an invalid value.';

CREATE FUNCTION audiotricks_api.at_history_count() RETURNS bigint
    LANGUAGE SQL STABLE PARALLEL RESTRICTED
BEGIN ATOMIC
SELECT audiotricks.at_history_count();
END;
COMMENT ON FUNCTION audiotricks_api.at_history_count() IS
    'How many history entries the signed-in user has.';

CREATE FUNCTION audiotricks_api.at_history_delete(id uuid) RETURNS boolean
    LANGUAGE SQL VOLATILE PARALLEL UNSAFE
BEGIN ATOMIC
SELECT audiotricks.at_history_delete($1);
END;
COMMENT ON FUNCTION audiotricks_api.at_history_delete(uuid) IS
    'Deletes one of the signed-in user''s history entries; false if there is no such entry of theirs.';

CREATE FUNCTION audiotricks_api.at_history_page(page_size integer DEFAULT 20, cursor text DEFAULT NULL)
    RETURNS SETOF audiotricks.history_entry
    LANGUAGE C STABLE PARALLEL RESTRICTED ROWS 20
    AS 'MODULE_PATHNAME', 'at_history_page';
COMMENT ON FUNCTION audiotricks_api.at_history_page(integer, text) IS
    'The signed-in user''s history, newest first, a page at a time; page_size 1-100 (default 20); pass a row''s cursor to continue after it.';

CREATE FUNCTION audiotricks_api.at_history_search(query text, page_size integer DEFAULT 20, cursor text DEFAULT NULL)
    RETURNS SETOF audiotricks.history_entry
    LANGUAGE C STABLE PARALLEL UNSAFE ROWS 20
    AS 'MODULE_PATHNAME', 'at_history_search';
COMMENT ON FUNCTION audiotricks_api.at_history_search(text, integer, text) IS
    'Full-text search (web search syntax) over the signed-in user''s titles, summaries and transcripts, best match first, with its rank; pass a row''s cursor to continue after it.';


-- Privileges: nothing for PUBLIC; anon's list, then the signed-in user's.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA audiotricks_api FROM PUBLIC;

GRANT EXECUTE ON FUNCTION
    audiotricks_api.at_current_user_id(),
    audiotricks_api.at_authenticate(text),
    audiotricks_api.at_register(text, text, text),
    audiotricks_api.at_login(text, text),
    audiotricks_api.at_refresh(text),
    audiotricks_api.at_logout(text)
    TO audiotricks_anon;

GRANT EXECUTE ON FUNCTION
    audiotricks_api.at_uuid_v7(),
    audiotricks_api.at_current_user_id(),
    audiotricks_api.at_authenticate(text),
    audiotricks_api.at_register(text, text, text),
    audiotricks_api.at_login(text, text),
    audiotricks_api.at_refresh(text),
    audiotricks_api.at_logout(text),
    audiotricks_api.at_logout_all(),
    audiotricks_api.at_logout_session(uuid),
    audiotricks_api.at_list_sessions(),
    audiotricks_api.at_change_password(text, text),
    audiotricks_api.at_deactivate_account(text),
    audiotricks_api.at_delete_account(text),
    audiotricks_api.at_get_settings(),
    audiotricks_api.at_update_settings(text, text, jsonb),
    audiotricks_api.at_set_api_key(text, text),
    audiotricks_api.at_get_api_key(text),
    audiotricks_api.at_api_key_status(),
    audiotricks_api.at_history_add(text, text, bigint, integer, text, text, jsonb, jsonb),
    audiotricks_api.at_history_count(),
    audiotricks_api.at_history_delete(uuid),
    audiotricks_api.at_history_page(integer, text),
    audiotricks_api.at_history_search(text, integer, text)
    TO audiotricks_user;

------------------------------------------------------------------------------
-- Account recovery and identity changes in the API (src/recovery.c): the
-- C functions of that block of section 5 again, under the same symbols.
-- at_mail_outbox and the throttle administration are no endpoint.
------------------------------------------------------------------------------
CREATE FUNCTION audiotricks_api.at_request_password_reset(login text) RETURNS void
    LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_request_password_reset';
COMMENT ON FUNCTION audiotricks_api.at_request_password_reset(text) IS
    'Mails a one-time password reset token to the account an email or username names; answers the same whether or not it names one. Called by anonymous clients.';

CREATE FUNCTION audiotricks_api.at_reset_password(token text, new_password text) RETURNS void
    LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_reset_password';
COMMENT ON FUNCTION audiotricks_api.at_reset_password(text, text) IS
    'Sets a new password with a mailed reset token (used once) and ends every session of the account; 28000 for a bad or expired token.';

CREATE FUNCTION audiotricks_api.at_request_email_verification() RETURNS void
    LANGUAGE C VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_request_email_verification';
COMMENT ON FUNCTION audiotricks_api.at_request_email_verification() IS
    'Mails the signed-in user a token that verifies their email address; nothing when it is verified.';

CREATE FUNCTION audiotricks_api.at_verify_email(token text) RETURNS void
    LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_verify_email';
COMMENT ON FUNCTION audiotricks_api.at_verify_email(text) IS
    'Uses a mailed registration, verification or email change token; 28000 for a bad or expired token, 23505 when the address or username was taken meanwhile. Called by anonymous clients.';

CREATE FUNCTION audiotricks_api.at_change_email(current_password text, new_email text) RETURNS void
    LANGUAGE C VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_change_email';
COMMENT ON FUNCTION audiotricks_api.at_change_email(text, text) IS
    'Checks the password and mails a token to the new address; it replaces the current one once verified.';

CREATE FUNCTION audiotricks_api.at_change_username(current_password text, new_username text) RETURNS void
    LANGUAGE C VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'at_change_username';
COMMENT ON FUNCTION audiotricks_api.at_change_username(text, text) IS
    'Checks the password and changes the signed-in user''s username; 23505 when taken.';

REVOKE ALL ON FUNCTION
    audiotricks_api.at_request_password_reset(text),
    audiotricks_api.at_reset_password(text, text),
    audiotricks_api.at_request_email_verification(),
    audiotricks_api.at_verify_email(text),
    audiotricks_api.at_change_email(text, text),
    audiotricks_api.at_change_username(text, text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    audiotricks_api.at_request_password_reset(text),
    audiotricks_api.at_reset_password(text, text),
    audiotricks_api.at_verify_email(text)
    TO audiotricks_anon, audiotricks_user;
GRANT EXECUTE ON FUNCTION
    audiotricks_api.at_request_email_verification(),
    audiotricks_api.at_change_email(text, text),
    audiotricks_api.at_change_username(text, text)
    TO audiotricks_user;
-- end of "Account recovery and identity changes in the API"
